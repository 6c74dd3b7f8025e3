"""Whole photos: detect every face, align it, restore it with OSDFace, paste it back.

OSDFace restores 512x512 faces aligned to the FFHQ template (``osdface.faces.template``).
``FaceRestorer`` turns any photo into such crops and back, in two steps that callers can also
take one at a time (the app detects on the CPU, then restores on the GPU; the comparison
restores the same faces twice):

1. ``detect``: find faces with a pluggable detector (default: facexlib's RetinaFace ResNet-50),
   keep those of at least ``min_face_size`` pixels, at most ``max_faces``, in a stable order;
2. ``restore_faces``: align each to the 512x512 FFHQ template, restore the crops with the
   pipeline, ``batch_size`` faces per call (so memory stays bounded however many faces a photo
   holds), and paste each back (``osdface.faces.paste``: facexlib's feathered square mask, or its
   ParseNet face mask with ``use_parse=True``); the background is resampled (Lanczos, or an
   ``osdface.restorers.backgrounds`` model) when ``upscale`` > 1: only the faces gain real detail. In a
   black-and-white photo the restored faces are made grey too.

``restore`` does both. The restorer works with any object with the pipeline's call signature
(``pipeline(list_of_pil_faces, prompt=..., color_fix=..., generator=...).images``), so its
geometry can be tested without the model. It is safe to share between threads: it keeps no
per-photo state; the detector and parser models are shared read-only (RetinaFace keeps scratch
state on itself, so detection takes a lock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from osdface.faces.detection import DetectedFace, FaceDetection, FaceDetector, detect_faces
from osdface.faces.facexlib_models import RetinaFaceDetector, load_parsenet
from osdface.faces.options import RestoredFace, RestoreOptions, RestoreResult
from osdface.faces.paste import paste_faces
from osdface.faces.template import FACE_SIZE, FFHQ_TEMPLATE_512, align_face, square_face
from osdface.images.conversion import to_pil
from osdface.images.reading import ImageSource, ImageTooLargeError, load_image
from osdface.weights.facexlib_files import FacexlibWeights


class FaceRestorer:
    """Restore every face of whole photos with an OSDFace pipeline (see the module docstring).

    pipeline: an ``OSDFacePipeline`` or any object with its call signature.
    detector: a ``FaceDetector``; default RetinaFace ResNet-50, loaded on the first photo.
    options: default ``RestoreOptions``; ``restore`` can override them per call.
    use_parse: paste with facexlib's ParseNet face mask instead of the feathered square.
    face_parser: a ParseNet to use for that mask (implies ``use_parse``); default: facexlib's,
        loaded on the first photo.
    weights: where facexlib's weights come from (default ``FacexlibWeights.from_env()``).
    device: device of the facexlib models (default: the pipeline's, else CPU).
    background: with ``upscale`` > 1, enlarges the photo before the faces are pasted on it
        (an ``osdface.restorers.backgrounds.BackgroundUpscaler``, e.g. Real-ESRGAN); None: resampled.
    """

    def __init__(
        self,
        pipeline: Any,
        detector: FaceDetector | None = None,
        *,
        options: RestoreOptions | None = None,
        use_parse: bool = False,
        face_parser: torch.nn.Module | None = None,
        weights: FacexlibWeights | None = None,
        device: str | torch.device | None = None,
        background: Callable[[np.ndarray, tuple[int, int]], np.ndarray] | None = None,
    ):
        self.pipeline = pipeline
        self.background = background
        self.options = options or RestoreOptions()
        self.use_parse = use_parse or face_parser is not None
        self.weights = weights
        self._device = None if device is None else torch.device(device)
        self._detector = detector
        self._parser = face_parser
        self._load_lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        """Where the facexlib models go when they load: the ``device`` given, else the
        pipeline's device at that moment, else the CPU."""
        return self._device or torch.device(getattr(self.pipeline, "device", None) or "cpu")

    @property
    def detector(self) -> FaceDetector:
        """The face detector, loading the default RetinaFace on first use."""
        with self._load_lock:
            if self._detector is None:
                self._detector = RetinaFaceDetector.load(
                    "resnet50", weights=self._weights(), device=self.device
                )
            return self._detector

    def _face_parser(self) -> torch.nn.Module | None:
        if not self.use_parse:
            return None
        with self._load_lock:
            if self._parser is None:
                self._parser = load_parsenet(self._weights(), self.device)
            return self._parser

    def _weights(self) -> FacexlibWeights:
        return self.weights or FacexlibWeights.from_env()

    def restore(
        self, image: ImageSource, options: RestoreOptions | None = None, **overrides: Any
    ) -> RestoreResult:
        """Restore every face of ``image`` (a path, bytes, file, PIL image or (H, W, 3) RGB
        uint8 array; see ``load_image``): ``detect``, then ``restore_faces``. ``overrides``
        replace fields of the options."""
        options = replace(options or self.options, **overrides)
        started = time.perf_counter()
        photo = load_image(image, max_pixels=options.max_pixels)  # (H, W, 3) RGB uint8
        if options.aligned:
            result = self.restore_faces(photo, None, options)
        else:
            self._check_output_size(photo, options)
            tick = time.perf_counter()
            faces = self.detect(photo, options).faces
            detect_seconds = time.perf_counter() - tick
            result = self.restore_faces(photo, faces, options)
            result.timings = {"detect": detect_seconds, **result.timings}
        result.timings["total"] = time.perf_counter() - started
        return result

    def detect(self, photo: np.ndarray, options: RestoreOptions | None = None) -> FaceDetection:
        """The faces of ``photo`` ((H, W, 3) RGB uint8) that ``restore_faces`` should restore."""
        return detect_faces(self.detector, photo, options or self.options)

    def restore_faces(
        self,
        photo: np.ndarray,
        faces: Sequence[DetectedFace] | None,
        options: RestoreOptions | None = None,
        **overrides: Any,
    ) -> RestoreResult:
        """Align ``faces`` (found by ``detect`` on this ``photo``, (H, W, 3) RGB uint8),
        restore them and paste them back; no detection. No faces: the photo (resampled when
        ``upscale`` > 1) with ``no_face_found``. With ``options.aligned`` the photo is one
        aligned face and ``faces`` must be None."""
        options = replace(options or self.options, **overrides)
        if options.aligned:
            if faces is not None:
                raise ValueError("restore_faces: with aligned=True the photo is the face; pass faces=None")
            return self._restore_aligned(photo, options)
        if faces is None:
            raise ValueError(
                "restore_faces: pass the faces found by detect() (faces=None is for aligned faces)"
            )
        self._check_output_size(photo, options)
        timings: dict[str, float] = {}
        if not faces:
            return RestoreResult(
                image=to_pil(self.resample(photo, options, timings)),
                faces=[],
                no_face_found=True,
                timings=timings,
                upscale=options.upscale,
            )

        tick = time.perf_counter()
        aligned = [align_face(photo, face.landmarks) for face in faces]  # (crop RGB uint8, affine)
        input_crops = [to_pil(crop) for crop, _ in aligned]
        timings["align"] = time.perf_counter() - tick

        restored_crops: list[Image.Image] = []
        for start in range(0, len(input_crops), options.batch_size):
            chunk = input_crops[start : start + options.batch_size]
            generators = face_generators(options.seed, range(start, start + len(chunk)))
            restored_crops.extend(self.run_pipeline(chunk, generators, options, timings))
        restored_crops = keep_gray(restored_crops, is_gray(photo))

        affines = [affine for _, affine in aligned]
        pasted = self.paste(photo, restored_crops, affines, options, timings)
        restored_faces = [
            RestoredFace(
                box=tuple(float(v) for v in face.box),
                landmarks=np.array(face.landmarks, dtype=np.float64),
                score=float(face.score),
                input_crop=input_crop,
                restored_crop=restored_crop,
                affine=affine.copy(),
            )
            for face, input_crop, restored_crop, affine in zip(faces, input_crops, restored_crops, affines)
        ]
        return RestoreResult(
            image=to_pil(pasted),
            faces=restored_faces,
            no_face_found=False,
            timings=timings,
            upscale=options.upscale,
        )

    # ---------------------------------------------------------------- aligned faces

    def _restore_aligned(self, face: np.ndarray, options: RestoreOptions) -> RestoreResult:
        height, width = face.shape[:2]
        crop = square_face(face)
        timings: dict[str, float] = {}
        restored = self.run_pipeline([crop], face_generators(options.seed, [0]), options, timings)
        restored = keep_gray(restored, is_gray(face))[0]
        output = restored
        size = round(FACE_SIZE * options.upscale)
        if size != FACE_SIZE:
            output = restored.resize((size, size), Image.Resampling.LANCZOS)
        to_input = width / FACE_SIZE
        face_info = RestoredFace(
            box=(0.0, 0.0, float(width), float(height)),
            landmarks=FFHQ_TEMPLATE_512 * to_input,
            score=None,
            input_crop=crop,
            restored_crop=restored,
            affine=np.array([[1.0 / to_input, 0.0, 0.0], [0.0, 1.0 / to_input, 0.0]]),
        )
        return RestoreResult(
            image=output, faces=[face_info], no_face_found=False, timings=timings, upscale=options.upscale
        )

    # ---------------------------------------------------------------- whole photos

    @staticmethod
    def _check_output_size(photo: np.ndarray, options: RestoreOptions) -> None:
        height, width = photo.shape[:2]
        out_w, out_h = int(width * options.upscale), int(height * options.upscale)
        if options.max_output_pixels is not None and out_w * out_h > options.max_output_pixels:
            raise ImageTooLargeError(
                f"upscale {options.upscale} would make a {out_w}x{out_h} image "
                f"({out_w * out_h / 1e6:.1f} megapixels, over the limit of {options.max_output_pixels / 1e6:.1f})",
                fix="use a smaller upscale or downscale the photo",
            )

    def resample(self, photo: np.ndarray, options: RestoreOptions, timings: dict[str, float]) -> np.ndarray:
        """The photo at the output size, without its faces: (H', W', 3) RGB uint8 (the photo
        itself when ``upscale`` is 1)."""
        if options.upscale == 1.0:
            return photo
        size = (int(photo.shape[1] * options.upscale), int(photo.shape[0] * options.upscale))
        if self.background is not None:
            return self._upscaled_background(photo, size, timings)
        return cv2.resize(photo, size, interpolation=cv2.INTER_LANCZOS4)

    def paste(
        self,
        photo: np.ndarray,
        crops: list[Image.Image],
        affines: list[np.ndarray],
        options: RestoreOptions,
        timings: dict[str, float],
    ) -> np.ndarray:
        """The restored ``crops`` (PIL RGB 512x512) on the photo ((H, W, 3) RGB uint8) or its
        upscaled background, each through its ``affine`` (photo -> crop): (H', W', 3) RGB uint8."""
        parser = self._face_parser()
        tick = time.perf_counter()
        upsampled = None
        if self.background is not None and options.upscale != 1.0:
            upsampled = self.resample(photo, options, timings)[:, :, ::-1]
        # paste.py works in BGR, the order of facexlib's paste-back and of its face parser.
        pasted = paste_faces(
            np.ascontiguousarray(photo[:, :, ::-1]),
            [np.ascontiguousarray(np.asarray(crop)[:, :, ::-1]) for crop in crops],
            # facexlib's get_inverse_affine: crop -> photo, scaled to the output
            [cv2.invertAffineTransform(affine) * options.upscale for affine in affines],
            upscale=options.upscale,
            face_parse=parser,
            upsampled=None if upsampled is None else np.ascontiguousarray(upsampled),
        )
        timings["paste"] = time.perf_counter() - tick - timings.get("background", 0.0)
        return np.ascontiguousarray(pasted[:, :, ::-1])

    def _upscaled_background(
        self, photo: np.ndarray, size: tuple[int, int], timings: dict[str, float]
    ) -> np.ndarray:
        """(H, W, 3) RGB uint8 -> the background upscaler's (height, width, 3) RGB uint8 at
        ``size`` (width, height), timed as ``background``."""
        tick = time.perf_counter()
        image = np.ascontiguousarray(self.background(photo, size))
        timings["background"] = time.perf_counter() - tick
        if image.shape != (size[1], size[0], 3) or image.dtype != np.uint8:
            raise RuntimeError(
                f"the background upscaler returned {image.dtype} {image.shape}, expected {size}"
            )
        return image

    def run_pipeline(
        self,
        crops: list[Image.Image],
        generators: list[torch.Generator] | None,
        options: RestoreOptions,
        timings: dict[str, float],
        *,
        pipeline: Any = None,
    ) -> list[Image.Image]:
        """One pipeline call on ``crops`` (PIL RGB 512x512), one generator per crop (see
        ``face_generators``), checked and timed into ``timings``. ``pipeline``: another with the
        same call signature (a clip's other restorers); default this restorer's."""
        pipeline = self.pipeline if pipeline is None else pipeline
        tick = time.perf_counter()
        output = pipeline(crops, prompt=options.prompt, color_fix=options.color_fix, generator=generators)
        timings["restore"] = timings.get("restore", 0.0) + time.perf_counter() - tick
        for stage, seconds in (getattr(output, "timings", None) or {}).items():
            if stage != "total":  # our "restore" is the wall time of the same calls
                timings[stage] = timings.get(stage, 0.0) + float(seconds)
        images = list(output.images)
        if len(images) != len(crops):
            raise RuntimeError(f"the pipeline returned {len(images)} images for {len(crops)} faces")
        for image in images:
            if not isinstance(image, Image.Image) or image.size != (FACE_SIZE, FACE_SIZE):
                raise RuntimeError(
                    f"the pipeline must return {FACE_SIZE}x{FACE_SIZE} PIL images, got "
                    f"{type(image).__name__} {getattr(image, 'size', '')}"
                )
        return [image.convert("RGB") for image in images]


def is_gray(image: np.ndarray) -> bool:
    """(H, W, 3) RGB uint8 with three equal channels: a black-and-white photo or scan."""
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))


def keep_gray(faces: list[Image.Image], gray: bool) -> list[Image.Image]:
    """A black-and-white photo gets black-and-white faces: the model may add a tint, and a
    tinted face pasted into a grey photo stands out."""
    return [face.convert("L").convert("RGB") for face in faces] if gray else faces


def face_generators(seed: int | None, numbers: Iterable[int]) -> list[torch.Generator] | None:
    """One CPU generator per face, seeded ``seed + number``: the pipeline then gives a face the
    same result whatever the batch it is in, on any device. Photos number their faces in order;
    clips by track, so a face keeps its noise from frame to frame. None: unseeded."""
    if seed is None:
        return None
    return [torch.Generator("cpu").manual_seed(int(seed) + int(number)) for number in numbers]
