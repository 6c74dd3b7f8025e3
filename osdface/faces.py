"""Whole photos: detect every face, align it, restore it with OSDFace, paste it back.

OSDFace restores 512x512 faces aligned to the FFHQ template. ``FaceRestorer`` turns any photo
into such crops and back, with facexlib's ``FaceRestoreHelper``:

1. detect faces with a pluggable detector (default: facexlib's RetinaFace ResNet-50), which
   returns ``DetectedFace`` boxes and five landmarks;
2. keep faces of at least ``min_face_size`` pixels, sort them deterministically;
3. align each to the 512x512 FFHQ template (the helper's similarity fit, ``cv2.LMEDS``);
4. restore the crops with the pipeline, ``batch_size`` faces per call (all faces of a photo
   in one call when they fit), so memory stays bounded however many faces a photo holds;
5. paste each restored face back with the helper's feathered square mask, or facexlib's
   ParseNet face mask (``use_parse=True``); the background is resampled (Lanczos) when
   ``upscale`` > 1: only the faces gain real detail. In a black-and-white photo the restored
   faces are made grey too.

The restorer works with any object with the pipeline's call signature
(``pipeline(list_of_pil_faces, prompt=..., color_fix=..., generator=...).images``), so its
geometry can be tested without the model. It is safe to share between threads: per-photo
state lives in a fresh helper per ``restore`` call; the detector and parser models are shared
read-only (RetinaFace keeps scratch state on itself, so detection takes a lock).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np
import torch
from facexlib.utils.face_restoration_helper import FaceRestoreHelper, get_center_face
from PIL import Image

from osdface.facexlib_weights import FacexlibWeights, FacexlibWeightsError, load_facexlib_state_dict
from osdface.imageio import DEFAULT_MAX_PIXELS, ImageSource, ImageTooLargeError, load_image, to_pil
from osdface.paste import paste_faces

FACE_SIZE = 512
# facexlib's five-point FFHQ template for 512x512 crops (FaceRestoreHelper, template_3points=False):
# image-left eye, image-right eye, nose tip, left and right mouth corners, (x, y) pixels.
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ]
)
_DETECTOR_WEIGHTS = {
    "resnet50": "detection_Resnet50_Final.pth",
    "mobile0.25": "detection_mobilenet0.25_Final.pth",
}
PARSENET_WEIGHTS = "parsing_parsenet.pth"


@dataclass(frozen=True)
class DetectedFace:
    """One face found by a detector, in pixels of the image it was given.

    ``box``: (x0, y0, x1, y1); ``landmarks``: (5, 2) float (x, y) in facexlib order: image-left
    eye, image-right eye, nose tip, left mouth corner, right mouth corner; ``score``: confidence.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float


FaceDetector = Callable[[np.ndarray], list[DetectedFace]]  # (H, W, 3) RGB uint8 -> faces


@dataclass(frozen=True)
class RestoredFace:
    """One restored face. ``box``, ``landmarks`` (5, 2) and ``affine`` (2x3, photo -> crop
    pixels) are in the coordinates of the input photo (before ``upscale``); ``score`` is the
    detector's (None in aligned mode); the crops are PIL RGB 512x512."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float | None
    input_crop: Image.Image
    restored_crop: Image.Image
    affine: np.ndarray


@dataclass
class RestoreResult:
    """``image``: the whole photo (PIL RGB; its size times ``upscale``) with every face restored,
    or the photo unchanged (resampled if ``upscale`` > 1) when ``no_face_found``.
    ``timings``: seconds per stage: ``detect``, ``align``, ``restore`` (pipeline calls),
    ``paste``, ``total``, plus the pipeline's own stages (``vre``, ``unet``, ...) summed."""

    image: Image.Image
    faces: list[RestoredFace]
    no_face_found: bool
    timings: dict[str, float] = field(default_factory=dict)
    upscale: float = 1.0


@dataclass(frozen=True)
class RestoreOptions:
    """What ``FaceRestorer.restore`` does with one photo.

    aligned: the input is already an aligned face: skip detection, resize it to 512x512 if
        needed and return the restored 512x512 face (times ``upscale``).
    only_center_face: keep only the face nearest the image centre.
    min_face_size: drop faces whose box is smaller than this many pixels (shorter side):
        restoring a face a few pixels wide would invent one.
    max_faces: keep at most this many faces, the largest boxes (None: all).
    prompt, color_fix: passed to the pipeline (None: VRE conditioning, no colour fix).
    upscale: output scale of the whole photo (>= 1); the background is Lanczos-resampled.
    batch_size: faces per pipeline call.
    seed: seeds face i's VAE posterior sample with ``seed + i`` (one generator per face), so
        a result does not depend on ``batch_size``; None: unseeded.
    max_pixels: refuse inputs with more pixels (see ``osdface.imageio.load_image``).
    max_output_pixels: refuse outputs (after ``upscale``) with more pixels.
    """

    aligned: bool = False
    only_center_face: bool = False
    min_face_size: float = 16.0
    max_faces: int | None = None
    prompt: str | None = None
    color_fix: str | None = None
    upscale: float = 1.0
    batch_size: int = 4
    seed: int | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_output_pixels: int | None = 4 * DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not 1.0 <= float(self.upscale) <= 8.0:
            raise ValueError(f"upscale must be between 1 and 8, got {self.upscale!r}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size!r}")
        if float(self.min_face_size) < 0:
            raise ValueError(f"min_face_size must be >= 0, got {self.min_face_size!r}")
        if self.max_faces is not None and int(self.max_faces) < 1:
            raise ValueError(f"max_faces must be None or at least 1, got {self.max_faces!r}")


# --------------------------------------------------------------------------- detection


class RetinaFaceDetector:
    """facexlib's RetinaFace as a ``FaceDetector``.

    ``threshold`` 0.97 is what FaceRestoreHelper uses. Photos larger than ``max_side`` pixels
    (longer side) are downscaled for detection only, which bounds its memory and time; faces
    smaller than about 16 pixels in the downscaled image are then missed.
    """

    def __init__(self, model: torch.nn.Module, *, threshold: float = 0.97, max_side: int | None = 1600):
        self.model = model.eval()
        self.threshold = float(threshold)
        self.max_side = max_side
        # RetinaFace.detect_faces stores the input scale on the module between two steps of
        # one call: two threads detecting at once would mix their scales.
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        network: str = "resnet50",
        *,
        weights: FacexlibWeights | None = None,
        device: str | torch.device = "cpu",
        **options: Any,
    ) -> RetinaFaceDetector:
        """Build RetinaFace (``network`` "resnet50" or "mobile0.25") and load its weights
        through ``osdface.facexlib_weights`` (no pickled code runs)."""
        from facexlib.detection.retinaface import RetinaFace

        if network not in _DETECTOR_WEIGHTS:
            raise ValueError(
                f"unknown RetinaFace network {network!r}; expected one of {sorted(_DETECTOR_WEIGHTS)}"
            )
        weights = weights or FacexlibWeights.from_env()
        path = weights.path(_DETECTOR_WEIGHTS[network])
        with warnings.catch_warnings():
            # facexlib builds its backbone with torchvision's deprecated resnet50(pretrained=False).
            warnings.filterwarnings("ignore", message=".*(pretrained|weight enum).*", category=UserWarning)
            model = RetinaFace(network_name=network, half=False, device=torch.device(device))
        _load_into(model, path)
        return cls(model, **options)

    def __call__(self, image: np.ndarray) -> list[DetectedFace]:
        """``image``: (H, W, 3) RGB uint8 -> faces, most confident first."""
        height, width = image.shape[:2]
        scale_x = scale_y = 1.0
        if self.max_side is not None and max(height, width) > self.max_side:
            factor = self.max_side / max(height, width)
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            scale_x, scale_y = size[0] / width, size[1] / height
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # RetinaFace expects OpenCV's BGR order
        with self._lock, torch.inference_mode():
            rows = self.model.detect_faces(bgr, conf_threshold=self.threshold)
        scale = np.array([scale_x, scale_y])
        faces = []
        for row in np.asarray(rows, dtype=np.float64):
            # Back to the photo's pixels (OpenCV's resize maps pixel centres: x' + 0.5 = s (x + 0.5)).
            corners = (row[0:4].reshape(2, 2) + 0.5) / scale - 0.5
            landmarks = (row[5:15].reshape(5, 2) + 0.5) / scale - 0.5
            faces.append(
                DetectedFace(
                    box=tuple(float(v) for v in corners.ravel()), landmarks=landmarks, score=float(row[4])
                )
            )
        return faces


def load_parsenet(
    weights: FacexlibWeights | None = None, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """facexlib's ParseNet face parser (the optional paste mask), loaded safely."""
    from facexlib.parsing.parsenet import ParseNet

    weights = weights or FacexlibWeights.from_env()
    model = ParseNet(in_size=512, out_size=512, parsing_ch=19)
    _load_into(model, weights.path(PARSENET_WEIGHTS))
    return model.eval().to(torch.device(device))


def _load_into(model: torch.nn.Module, path) -> None:
    state = load_facexlib_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise FacexlibWeightsError(
            f"{path} does not match facexlib's {type(model).__name__}: {exc}. "
            "Replace it with the file facexlib publishes under that name."
        ) from exc
    model.eval()


# --------------------------------------------------------------------------- the helper


class _PhotoHelper(FaceRestoreHelper):
    """A ``FaceRestoreHelper`` for one photo, around models loaded once elsewhere.

    ``FaceRestoreHelper.__init__`` builds RetinaFace and ParseNet and loads their weights from
    ``model_rootpath`` every time, downloading into site-packages when absent and unpickling
    with a plain ``torch.load``; it loads both even when neither is used (a custom detector,
    no parse mask). But the helper also holds one photo's state (crops, matrices), so we need
    a fresh one per photo. This subclass therefore sets exactly the attributes facexlib 0.3.0's
    ``__init__`` sets (for 512x512 crops, five-point template, no pad blur) and takes the
    parser, if any, from the caller; detection is ours (``get_face_landmarks_5`` is unused).
    ``tests/test_faces.py`` checks the attributes against a real ``FaceRestoreHelper``.
    """

    def __init__(self, *, upscale_factor: float, face_parse: torch.nn.Module | None, device: torch.device):
        # Deliberately no super().__init__(): see the class docstring.
        self.template_3points = False
        self.upscale_factor = upscale_factor
        self.crop_ratio = (1, 1)
        self.face_size = (FACE_SIZE, FACE_SIZE)
        self.face_template = FFHQ_TEMPLATE_512.copy()
        self.save_ext = "png"
        self.pad_blur = False
        self.device = device
        self.face_det = None
        self.use_parse = face_parse is not None
        self.face_parse = face_parse
        self.clean_all()


# --------------------------------------------------------------------------- the restorer


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
        (an ``osdface.upscale.BackgroundUpscaler``, e.g. Real-ESRGAN); None: resampled.
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
        uint8 array; see ``load_image``). ``overrides`` replace fields of the options."""
        options = replace(options or self.options, **overrides)
        started = time.perf_counter()
        photo = load_image(image, max_pixels=options.max_pixels)  # (H, W, 3) RGB uint8
        if options.aligned:
            result = self._restore_aligned(photo, options)
        else:
            result = self._restore_photo(photo, options)
        result.timings["total"] = time.perf_counter() - started
        return result

    # ---------------------------------------------------------------- aligned faces

    def _restore_aligned(self, face: np.ndarray, options: RestoreOptions) -> RestoreResult:
        height, width = face.shape[:2]
        if abs(height - width) > 0.01 * max(height, width):
            raise ValueError(
                f"an aligned face must be square (it is {width}x{height}); restore it as a whole photo instead"
            )
        crop = to_pil(face)
        if crop.size != (FACE_SIZE, FACE_SIZE):
            crop = crop.resize((FACE_SIZE, FACE_SIZE), Image.Resampling.LANCZOS)
        timings: dict[str, float] = {}
        restored = _keep_gray(self._run_pipeline([crop], 0, options, timings), _is_gray(face))[0]
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

    def _restore_photo(self, photo: np.ndarray, options: RestoreOptions) -> RestoreResult:
        height, width = photo.shape[:2]
        out_w, out_h = int(width * options.upscale), int(height * options.upscale)
        if options.max_output_pixels is not None and out_w * out_h > options.max_output_pixels:
            raise ImageTooLargeError(
                f"upscale {options.upscale} would make a {out_w}x{out_h} image "
                f"({out_w * out_h / 1e6:.1f} megapixels, over the limit of {options.max_output_pixels / 1e6:.1f}); "
                "use a smaller upscale or downscale the photo"
            )
        timings: dict[str, float] = {}

        tick = time.perf_counter()
        faces = select_faces(self.detector(photo), photo.shape, options)
        timings["detect"] = time.perf_counter() - tick

        if not faces:
            if options.upscale == 1.0:
                image = to_pil(photo)
            elif self.background is not None:
                image = to_pil(self._upscaled_background(photo, (out_w, out_h), timings))
            else:
                image = to_pil(cv2.resize(photo, (out_w, out_h), interpolation=cv2.INTER_LANCZOS4))
            return RestoreResult(
                image=image, faces=[], no_face_found=True, timings=timings, upscale=options.upscale
            )

        tick = time.perf_counter()
        parser = self._face_parser()
        helper = _PhotoHelper(
            upscale_factor=options.upscale, face_parse=parser, device=_module_device(parser)
        )
        helper.input_img = np.ascontiguousarray(photo[:, :, ::-1])  # the helper works in BGR
        helper.det_faces = [np.array([*face.box, face.score]) for face in faces]
        helper.all_landmarks_5 = [face.landmarks.copy() for face in faces]
        helper.align_warp_face()
        helper.get_inverse_affine()
        input_crops = [to_pil(np.ascontiguousarray(crop[:, :, ::-1])) for crop in helper.cropped_faces]
        timings["align"] = time.perf_counter() - tick

        restored_crops: list[Image.Image] = []
        for start in range(0, len(input_crops), options.batch_size):
            chunk = input_crops[start : start + options.batch_size]
            restored_crops.extend(self._run_pipeline(chunk, start, options, timings))
        restored_crops = _keep_gray(restored_crops, _is_gray(photo))
        for crop in restored_crops:
            helper.add_restored_face(np.ascontiguousarray(np.asarray(crop)[:, :, ::-1]))

        pasted = self._paste(photo, helper, parser, options, timings)  # (H', W', 3) BGR uint8
        restored_faces = [
            RestoredFace(
                box=face.box,
                landmarks=face.landmarks.copy(),
                score=face.score,
                input_crop=input_crop,
                restored_crop=restored_crop,
                affine=np.asarray(affine, dtype=np.float64).copy(),
            )
            for face, input_crop, restored_crop, affine in zip(
                faces, input_crops, restored_crops, helper.affine_matrices
            )
        ]
        return RestoreResult(
            image=to_pil(np.ascontiguousarray(pasted[:, :, ::-1])),
            faces=restored_faces,
            no_face_found=False,
            timings=timings,
            upscale=options.upscale,
        )

    def _paste(self, photo, helper, parser, options: RestoreOptions, timings) -> np.ndarray:
        """The restored faces on the photo (or its upscaled background): (H', W', 3) BGR uint8."""
        tick = time.perf_counter()
        background = None
        if self.background is not None and options.upscale != 1.0:
            size = (int(photo.shape[1] * options.upscale), int(photo.shape[0] * options.upscale))
            upscaled = self._upscaled_background(photo, size, timings)
            background = np.ascontiguousarray(upscaled[:, :, ::-1])  # the helper works in BGR
        # facexlib's paste-back maths on each face's box instead of the whole frame (osdface.paste)
        pasted = paste_faces(
            helper.input_img,
            helper.restored_faces,
            helper.inverse_affine_matrices,
            upscale=options.upscale,
            face_parse=parser,
            upsampled=background,
        )
        timings["paste"] = time.perf_counter() - tick - timings.get("background", 0.0)
        return pasted

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

    def _run_pipeline(
        self, crops: list[Image.Image], first_index: int, options: RestoreOptions, timings: dict[str, float]
    ) -> list[Image.Image]:
        """One pipeline call on ``crops`` (faces ``first_index`` ...), checked and timed."""
        generator = _generators(options.seed, first_index, len(crops))
        tick = time.perf_counter()
        output = self.pipeline(crops, prompt=options.prompt, color_fix=options.color_fix, generator=generator)
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


def select_faces(
    detected: Sequence[DetectedFace], image_shape: tuple[int, ...], options: RestoreOptions
) -> list[DetectedFace]:
    """Valid faces of at least ``min_face_size``, at most ``max_faces`` (the largest), only
    the centre one if asked; ordered left to right by box (then top to bottom, then by
    descending score) so the same photo always gives the same face order."""
    height, width = image_shape[:2]
    faces = [_normalized(face) for face in detected if _usable(face, width, height)]
    faces = [face for face in faces if _short_side(face) >= options.min_face_size]
    if options.max_faces is not None and len(faces) > options.max_faces:
        faces = sorted(faces, key=lambda face: -_area(face))[: options.max_faces]
    if options.only_center_face and faces:
        _, index = get_center_face([face.box for face in faces], height, width)
        faces = [faces[index]]
    return sorted(faces, key=lambda face: (face.box[0], face.box[1], -face.score))


def _usable(face: DetectedFace, width: int, height: int) -> bool:
    """A face the helper can align: finite numbers, a box that overlaps the image, landmarks
    a similarity transform can be fitted to (random or broken detectors give all sorts)."""
    if not isinstance(face, DetectedFace):
        raise TypeError(f"a detector must return DetectedFace items, got {type(face).__name__}")
    landmarks = np.asarray(face.landmarks, dtype=np.float64)
    if landmarks.shape != (5, 2):
        raise ValueError(f"DetectedFace.landmarks must have shape (5, 2), got {landmarks.shape}")
    box = np.asarray(face.box, dtype=np.float64)
    if not (np.isfinite(box).all() and np.isfinite(landmarks).all() and np.isfinite(face.score)):
        return False
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0 or x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        return False
    affine = cv2.estimateAffinePartial2D(landmarks, FFHQ_TEMPLATE_512, method=cv2.LMEDS)[0]
    return affine is not None and np.isfinite(affine).all() and abs(np.linalg.det(affine[:, :2])) > 1e-12


def _normalized(face: DetectedFace) -> DetectedFace:
    """Plain floats and a (5, 2) float64 array, whatever number types the detector used."""
    return DetectedFace(
        box=tuple(float(v) for v in face.box),
        landmarks=np.array(face.landmarks, dtype=np.float64),
        score=float(face.score),
    )


def _short_side(face: DetectedFace) -> float:
    x0, y0, x1, y1 = face.box
    return min(x1 - x0, y1 - y0)


def _area(face: DetectedFace) -> float:
    x0, y0, x1, y1 = face.box
    return (x1 - x0) * (y1 - y0)


def _is_gray(image: np.ndarray) -> bool:
    """(H, W, 3) RGB uint8 with three equal channels: a black-and-white photo or scan."""
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))


def _keep_gray(faces: list[Image.Image], gray: bool) -> list[Image.Image]:
    """A black-and-white photo gets black-and-white faces: the model may add a tint, and a
    tinted face pasted into a grey photo stands out."""
    return [face.convert("L").convert("RGB") for face in faces] if gray else faces


def _module_device(module: torch.nn.Module | None) -> torch.device:
    if module is None:
        return torch.device("cpu")
    return next(module.parameters()).device


def _generators(seed: int | None, first_index: int, count: int) -> list[torch.Generator] | None:
    """One CPU generator per face, seeded ``seed + face index``: the pipeline then gives a face
    the same result whatever the batch it is in, on any device."""
    if seed is None:
        return None
    return [torch.Generator("cpu").manual_seed(int(seed) + first_index + i) for i in range(count)]
