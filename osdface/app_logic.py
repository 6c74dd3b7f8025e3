"""What the Gradio app does with a request, without Gradio.

``app.py`` is the user interface only: it turns widgets into a ``RestoreRequest``, calls the
``Studio`` and shows what comes back. Keeping the work here lets tests drive it directly and
keeps one request's files in one folder (``output_dir``) that only that request writes.

A restore runs in three steps so that, on a ZeroGPU Space, only the middle one holds a GPU and
its time budget can be computed from the number of faces before it starts:

1. ``Studio.prepare`` (CPU): read the image (the pixel limit is checked on the header, before
   decoding), add turbulence, detect the faces;
2. ``Studio.run`` (GPU): restore the faces with VRE, again without VRE when asked (the same
   faces), and score identities;
3. ``Studio.finish`` (CPU): write the PNGs and the timing and identity tables.

Errors meant for the user are ``RequestError`` (the request cannot be served as asked; the
message says what to do) and ``ServiceUnavailableError`` (weights missing; the message names
the reason and the fix). Anything else is a bug and propagates.
"""

from __future__ import annotations

import html
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from osdface import progress
from osdface.imageio import to_pil
from osdface.uploads import check_aligned_face, check_upload, read_image  # noqa: F401 - re-exported

if TYPE_CHECKING:
    import torch

    from osdface.faces import DetectedFace, FaceRestorer, RestoreOptions, RestoreResult
    from osdface.identity import ArcFaceEmbedder
    from osdface.pipeline import OSDFacePipeline

MODE_PHOTO = "photo"
MODE_ALIGNED = "aligned"
MODES = (MODE_PHOTO, MODE_ALIGNED)
COLOR_FIXES = ("none", "adain", "wavelet")
PROPAGATION_LENGTH_RANGE = (20_000.0, 40_000.0)
DEFAULT_PROPAGATION_LENGTH = 30_000.0
MAX_SEED = 2**31 - 1
MAX_PROMPT_CHARS = 1000
DEFAULT_MAX_MEGAPIXELS = 25.0
DEFAULT_MAX_FACES = 10
# The simulator works on 2H x 2W FFT grids: a 4-megapixel photo takes about 10 s and a few GB
# on a CPU; larger ones would hold a worker for minutes.
MAX_TURBULENCE_MEGAPIXELS = 4.0
FACE_SIZE = 512
# Measured (README, "The app"): the full-size model restores one 512x512 face in 39-43 s on 2 Zen 3
# cores in float32, 0.85x that with the per-module channels_last now applied; well under a second on a GPU.
CPU_SECONDS_PER_FACE = 35
# ZeroGPU time budget: model transfer and warm-up, then one pipeline pass per face and mode.
GPU_BASE_SECONDS = 20
GPU_SECONDS_PER_FACE_PASS = 3
GPU_MAX_SECONDS = 120
IDENTITY_OFF = "Identity scores are off: the ArcFace model could not be loaded."
# facexlib fills the outside of an alignment crop with this colour (RGB).
_CROP_BORDER_RGB = (132, 133, 135)


class RequestError(ValueError):
    """The request cannot be served as asked. The message tells the user what to do."""


class ServiceUnavailableError(RuntimeError):
    """A model the request needs could not be loaded. The message names the reason and the fix."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class StudioSettings:
    """How the app loads its models and which inputs it accepts.

    weights, base_model: Hub repo ids or local folders (None: ``OSDFACE_WEIGHTS`` /
        ``OSDFACE_BASE_MODEL``, else the defaults in ``osdface.hub``).
    device: torch device (None: cuda if available, else cpu); float16 on CUDA.
    facexlib_dir: a folder holding facexlib's weight files (None: ``OSDFACE_FACEXLIB_DIR``,
        the cache, then a download).
    max_megapixels: larger inputs are refused, from their header, before decoding.
    max_faces: whole photos with more faces get their largest ``max_faces`` restored.
    zero_gpu: on a ZeroGPU Space: the face detector stays on the CPU so faces can be counted
        before a GPU is requested.
    """

    weights: str | None = None
    base_model: str | None = None
    device: str | None = None
    facexlib_dir: Path | None = None
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS
    max_faces: int = DEFAULT_MAX_FACES
    zero_gpu: bool = False

    def __post_init__(self) -> None:
        if not self.max_megapixels > 0:
            raise ValueError(f"max_megapixels must be > 0, got {self.max_megapixels!r}")
        if int(self.max_faces) < 1:
            raise ValueError(f"max_faces must be at least 1, got {self.max_faces!r}")

    @property
    def max_pixels(self) -> int:
        return round(self.max_megapixels * 1e6)


@dataclass(frozen=True)
class RestoreRequest:
    """One press of Restore. ``image``: path of the uploaded file (None: nothing uploaded).

    mode: "photo" (detect and align every face) or "aligned" (the image is one aligned face).
    turbulence, propagation_length: degrade the input with the turbulence simulator first.
    seed: seeds the turbulence and the VAE posterior sample (face i gets seed + i).
    ablation, prompt: also restore the same faces conditioned on the text prompt instead of
        the VRE ("" is the null prompt).
    color_fix: "none", "adain" or "wavelet".
    """

    image: str | os.PathLike | None
    mode: str = MODE_PHOTO
    turbulence: bool = False
    propagation_length: float = DEFAULT_PROPAGATION_LENGTH
    seed: int = 0
    ablation: bool = False
    prompt: str = ""
    color_fix: str = "none"

    def check(self) -> None:
        """Raise ``RequestError`` for a value the widgets would not produce (an API caller)."""
        if self.mode not in MODES:
            raise RequestError(f"Unknown mode {self.mode!r}: use one of {', '.join(MODES)}.")
        if self.color_fix not in COLOR_FIXES:
            raise RequestError(f"Unknown colour fix {self.color_fix!r}: use one of {', '.join(COLOR_FIXES)}.")
        check_turbulence_settings(self.propagation_length, self.seed)
        if not isinstance(self.prompt, str):
            raise RequestError(f"The prompt must be text, got {type(self.prompt).__name__}.")
        if len(self.prompt) > MAX_PROMPT_CHARS:
            raise RequestError(
                f"The prompt has {len(self.prompt)} characters; use at most {MAX_PROMPT_CHARS} "
                "(SD 2.1's text encoder reads only the first 77 tokens anyway)."
            )


def check_turbulence_settings(propagation_length: float, seed: int) -> None:
    low, high = PROPAGATION_LENGTH_RANGE
    if not isinstance(propagation_length, int | float) or not low <= float(propagation_length) <= high:
        raise RequestError(
            f"Propagation length {propagation_length!r} m is outside the simulated range: "
            f"choose {low:,.0f} to {high:,.0f} m."
        )
    if (
        isinstance(seed, bool)
        or not isinstance(seed, int | float)
        or seed != int(seed)
        or not 0 <= seed <= MAX_SEED
    ):
        raise RequestError(f"Seed {seed!r} is not valid: use a whole number from 0 to {MAX_SEED}.")


# --------------------------------------------------------------------------- request stages


@dataclass
class PreparedRestore:
    """Step 1's result; everything step 2 needs (it crosses a process boundary on ZeroGPU, so
    it holds only picklable data). Images are (H, W, 3) RGB uint8."""

    request: RestoreRequest
    clean: np.ndarray
    photo: np.ndarray
    faces: list[DetectedFace]
    faces_found: int
    timings: dict[str, float]
    started: float

    @property
    def face_count(self) -> int:
        return 1 if self.request.mode == MODE_ALIGNED else len(self.faces)


@dataclass(frozen=True)
class IdentityRow:
    """ArcFace cosine similarities of one face to the clean input face (None: not computed)."""

    face: int
    turbulent_input: float | None
    restored: float
    without_vre: float | None


@dataclass
class GpuResult:
    """Step 2's result. ``identity`` is None when the ArcFace model is missing, and
    ``identity_note`` then says why."""

    restored: RestoreResult
    without_vre: RestoreResult | None
    identity: list[IdentityRow] | None
    identity_note: str | None
    device_name: str
    peak_memory_bytes: int | None
    timings: dict[str, float]


@dataclass
class RestoreOutcome:
    """What the app shows: PNG paths inside the request's folder, and two Markdown tables.

    ``slider``: (before, after) for the before/after slider. ``gallery``: (path, caption) per
    face crop, for whole photos (empty for an aligned face)."""

    input: Path
    turbulent_input: Path | None
    restored: Path
    without_vre: Path | None
    slider: tuple[Path, Path]
    gallery: list[tuple[Path, str]]
    timing_markdown: str
    identity_markdown: str
    face_count: int
    timings: dict[str, dict[str, float]] = field(default_factory=dict)


# --------------------------------------------------------------------------- the studio


class Studio:
    """The loaded models and the three request steps. Shared by all requests; holds no
    per-request state, so requests may run concurrently.

    pipeline: the OSDFace pipeline, or None when it could not be loaded (``load_error`` says
        why; restoring then raises ``ServiceUnavailableError`` and the turbulence preview still
        works).
    restorer: the whole-photo ``FaceRestorer`` (its detector loaded), or None with
        ``detector_error`` saying why (aligned faces still work).
    identity: the ArcFace embedder, or None with ``identity_error`` saying why.
    ablation_error: why the text encoder is missing (the "without VRE" comparison is off).
    """

    def __init__(
        self,
        pipeline: OSDFacePipeline | None,
        *,
        settings: StudioSettings | None = None,
        restorer: FaceRestorer | None = None,
        identity: ArcFaceEmbedder | None = None,
        load_error: str | None = None,
        detector_error: str | None = None,
        identity_error: str | None = None,
        ablation_error: str | None = None,
    ):
        if pipeline is None and load_error is None:
            raise ValueError("a Studio without a pipeline needs load_error saying why")
        self.pipeline = pipeline
        self.settings = settings or StudioSettings()
        self.restorer = restorer
        self.identity = identity
        self.load_error = load_error
        if restorer is None and detector_error is None:
            detector_error = "No face detector is configured."
        if identity is None and identity_error is None:
            identity_error = "No identity model is configured."
        self.detector_error = detector_error
        self.identity_error = identity_error
        self.ablation_error = ablation_error

    @classmethod
    def load(cls, settings: StudioSettings) -> Studio:
        """Load every model once, at start-up, on CPU then moved to the device (as ZeroGPU
        expects). A missing OSDFace or SD 2.1 file gives a Studio without a pipeline (and the
        reason), never an exception; so do missing detector, ArcFace or text-encoder files,
        each disabling only what needs it."""
        import torch

        from osdface import OSDFacePipeline
        from osdface.faces import FaceRestorer, RestoreOptions
        from osdface.facexlib_weights import FacexlibWeights, FacexlibWeightsError
        from osdface.hub import WeightsUnavailableError
        from osdface.identity import ArcFaceEmbedder, IdentityUnavailableError

        device = torch.device(settings.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        try:
            pipeline = OSDFacePipeline.from_pretrained(settings.weights, base_model=settings.base_model)
        except WeightsUnavailableError as exc:
            from osdface.startup import missing_sources_message

            error = missing_sources_message(settings.weights, settings.base_model, str(exc))
            return cls(None, settings=settings, load_error=error)
        from osdface.doctor import load_report_lines

        for line in load_report_lines(pipeline.load_report):  # the same report as `osdface doctor`
            logging.getLogger(__name__).info(line)
        ablation_error = None
        try:
            # Loaded now, not on the first ablation: on ZeroGPU nothing may load inside the GPU call.
            pipeline.load_text_encoder()
        except WeightsUnavailableError as exc:
            ablation_error = str(exc)
        pipeline = pipeline.to(device, torch.float16 if device.type == "cuda" else torch.float32)

        facexlib = FacexlibWeights.from_env(local_dir=settings.facexlib_dir)
        restorer, detector_error = None, None
        candidate = FaceRestorer(
            pipeline,
            options=RestoreOptions(max_faces=settings.max_faces, max_pixels=None),
            weights=facexlib,
            device=torch.device("cpu") if settings.zero_gpu else device,
        )
        try:
            candidate.detector  # noqa: B018 - loads RetinaFace now rather than on the first photo
            restorer = candidate
        except FacexlibWeightsError as exc:
            detector_error = str(exc)

        identity, identity_error = None, None
        try:
            identity = ArcFaceEmbedder.from_pretrained(facexlib).to(device)
        except IdentityUnavailableError as exc:
            identity_error = str(exc)
        return cls(
            pipeline,
            settings=settings,
            restorer=restorer,
            identity=identity,
            detector_error=detector_error,
            identity_error=identity_error,
            ablation_error=ablation_error,
        )

    # ---------------------------------------------------------------- status

    @property
    def available(self) -> bool:
        return self.pipeline is not None

    @property
    def device(self) -> torch.device:
        import torch

        if self.pipeline is None:
            return torch.device("cpu")
        return self.pipeline.device

    def status_notes(self) -> list[tuple[str, str | None]]:
        """Notes for the page, each (summary, details or None): what is off and why (with the
        fix), and the CPU warning. Empty when the pipeline is missing (the banner says it all)."""
        notes: list[tuple[str, str | None]] = []
        if self.pipeline is None:
            return notes
        if self.device.type == "cpu" and not self.settings.zero_gpu:
            notes.append(
                (
                    f"Running on the CPU: expect about {CPU_SECONDS_PER_FACE} s per face with the full model "
                    "(a bit under twice that with the without-VRE comparison, which reuses the VAE "
                    "encoding; measured on 2 Zen 3 cores); a GPU takes well under a second.",
                    None,
                )
            )
        if self.detector_error:
            notes.append(
                (
                    "Whole-photo mode is off: the face detector could not be loaded. Aligned faces still work.",
                    self.detector_error,
                )
            )
        if self.ablation_error:
            notes.append(
                (
                    "The without-VRE comparison is off: SD 2.1's text encoder could not be loaded.",
                    self.ablation_error,
                )
            )
        if self.identity_error:
            notes.append((IDENTITY_OFF, self.identity_error))
        return notes

    def gpu_seconds(self, prepared: PreparedRestore) -> int:
        """Seconds of GPU time to request for ``prepared`` (ZeroGPU's ``duration``)."""
        passes = prepared.face_count * (2 if prepared.request.ablation else 1)
        return min(GPU_MAX_SECONDS, GPU_BASE_SECONDS + GPU_SECONDS_PER_FACE_PASS * passes)

    # ---------------------------------------------------------------- step 1 (CPU)

    def prepare(self, request: RestoreRequest) -> PreparedRestore:
        """Check the request, read the image, add turbulence, find the faces."""
        started = time.perf_counter()
        request.check()
        if self.pipeline is None:
            raise ServiceUnavailableError(
                f"Restoring is unavailable: the model weights could not be loaded.\n{self.load_error}\n"
                "(The turbulence preview still works.)"
            )
        if request.ablation and self.ablation_error:
            raise ServiceUnavailableError(
                f"The without-VRE comparison is unavailable: {self.ablation_error} "
                "Switch off 'Compare without VRE' to restore with VRE only."
            )
        if request.mode == MODE_PHOTO and self.restorer is None:
            raise ServiceUnavailableError(
                "Whole-photo mode is unavailable because the face detector could not be loaded.\n"
                f"{self.detector_error}\nMeanwhile, crop and align the face yourself (512x512, FFHQ "
                "alignment) and choose the mode 'Aligned face'."
            )
        timings: dict[str, float] = {}
        tick = time.perf_counter()
        check_upload(request.image, self.settings.max_pixels, aligned=request.mode == MODE_ALIGNED)
        clean = read_image(request.image, self.settings.max_pixels)
        timings["read"] = time.perf_counter() - tick
        if request.mode == MODE_ALIGNED:
            check_aligned_face(clean)
        photo = clean
        if request.turbulence:
            progress.step("turbulence")
            tick = time.perf_counter()
            photo = add_turbulence(clean, request.propagation_length, int(request.seed))
            timings["turbulence"] = time.perf_counter() - tick

        faces: list[DetectedFace] = []
        found = 1
        if request.mode == MODE_PHOTO:
            progress.step("detect")
            tick = time.perf_counter()
            options = self._options(request)
            detection = self.restorer.detect(photo, options)
            faces, found = detection.faces, detection.found
            timings["detect"] = time.perf_counter() - tick
            if not faces:
                where = " after the simulated turbulence" if request.turbulence else ""
                raise RequestError(
                    f"No face was found in this photo{where}. Try a photo in which the face is at least "
                    f"{options.min_face_size:.0f} pixels wide, sharp enough to see the eyes and mouth; "
                    "or, if the image is already a cropped, aligned face, choose the mode 'Aligned face'."
                )
        return PreparedRestore(
            request=request,
            clean=clean,
            photo=photo,
            faces=faces,
            faces_found=found,
            timings=timings,
            started=started,
        )

    def _options(self, request: RestoreRequest) -> RestoreOptions:
        from osdface.faces import RestoreOptions

        base = self.restorer.options if self.restorer is not None else RestoreOptions()
        return replace(
            base,
            aligned=request.mode == MODE_ALIGNED,
            max_faces=self.settings.max_faces,
            prompt=None,
            color_fix=None if request.color_fix == "none" else request.color_fix,
            seed=int(request.seed),
            upscale=1.0,
            # Already checked on the file; the arrays handed on are not re-checked.
            max_pixels=None,
            max_output_pixels=None,
        )

    # ---------------------------------------------------------------- step 2 (GPU)

    def run(self, prepared: PreparedRestore) -> GpuResult:
        """Restore the prepared faces (with VRE; again without VRE when asked) and score them.
        On ZeroGPU this is the only step that holds a GPU."""
        import torch

        from osdface.comparison import restore_with_and_without_vre
        from osdface.faces import FaceRestorer

        if self.pipeline is None:
            raise ServiceUnavailableError(f"Restoring is unavailable: {self.load_error}")
        request = prepared.request
        device = self.device
        cuda = device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        options = self._options(request)
        # The faces were found in step 1 (None: the photo is an aligned face).
        faces = None if options.aligned else prepared.faces
        restorer = FaceRestorer(self.pipeline, options=options)
        timings: dict[str, float] = {}
        try:
            if request.ablation:  # encodes each face once for both passes
                restored, without_vre = restore_with_and_without_vre(
                    restorer, prepared.photo, faces, request.prompt
                )
            else:
                restored, without_vre = restorer.restore_faces(prepared.photo, faces), None
        except torch.OutOfMemoryError as exc:
            if cuda:
                torch.cuda.empty_cache()
            raise RequestError(
                f"The GPU ran out of memory restoring {prepared.face_count} face(s) at once. "
                "Try again in a moment, or with fewer faces (crop the photo)."
            ) from exc

        identity, note = None, None
        if self.identity is None:
            note = self.identity_error
        else:
            tick = time.perf_counter()
            identity = self._identity(prepared, restored, without_vre)
            timings["identity"] = time.perf_counter() - tick
        return GpuResult(
            restored=restored,
            without_vre=without_vre,
            identity=identity,
            identity_note=note,
            device_name=describe_device(device, self.pipeline.dtype),
            peak_memory_bytes=int(torch.cuda.max_memory_allocated(device)) if cuda else None,
            timings=timings,
        )

    def _identity(
        self, prepared: PreparedRestore, restored: RestoreResult, without_vre: RestoreResult | None
    ) -> list[IdentityRow]:
        """Each face's similarity to the clean input face: of the turbulent input (when on), of
        the restoration with VRE and of the one without (when on)."""
        turbulent = prepared.request.turbulence
        rows = []
        for index, face in enumerate(restored.faces):
            clean_face = clean_crop(prepared, face.affine) if turbulent else face.input_crop
            others = [face.restored_crop]
            if turbulent:
                others.append(face.input_crop)
            if without_vre is not None:
                others.append(without_vre.faces[index].restored_crop)
            scores = self.identity.similarities(clean_face, others)
            rows.append(
                IdentityRow(
                    face=index + 1,
                    restored=scores[0],
                    turbulent_input=scores[1] if turbulent else None,
                    without_vre=scores[-1] if without_vre is not None else None,
                )
            )
        return rows

    # ---------------------------------------------------------------- step 3 (CPU)

    def finish(
        self, prepared: PreparedRestore, result: GpuResult, output_dir: str | os.PathLike
    ) -> RestoreOutcome:
        """Write the request's PNGs into ``output_dir`` (which only this request writes) and
        build the tables."""
        request = prepared.request
        folder = Path(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        tick = time.perf_counter()
        input_path = save_png(prepared.clean, folder / "input.png")
        turbulent_path = (
            save_png(prepared.photo, folder / "turbulent_input.png") if request.turbulence else None
        )
        restored_path = save_png(result.restored.image, folder / "osdface.png")
        without_path = None
        if result.without_vre is not None:
            without_path = save_png(result.without_vre.image, folder / "osdface_without_vre.png")

        gallery: list[tuple[Path, str]] = []
        if request.mode == MODE_ALIGNED:
            # The restored face is 512x512: the slider compares it with the input at that size.
            before = save_png(result.restored.faces[0].input_crop, folder / "face01_input.png")
            slider = (before, restored_path)
        else:
            slider = (turbulent_path or input_path, restored_path)
            source = "turbulent input" if request.turbulence else "input"
            for index, face in enumerate(result.restored.faces):
                number = index + 1
                crops = [(face.input_crop, "input", source), (face.restored_crop, "osdface", "OSDFace (VRE)")]
                if result.without_vre is not None:
                    crops.append(
                        (result.without_vre.faces[index].restored_crop, "without_vre", "without VRE")
                    )
                for crop, stem, caption in crops:
                    path = save_png(crop, folder / f"face{number:02d}_{stem}.png")
                    gallery.append((path, f"Face {number}: {caption}"))

        timings = {"shared": dict(prepared.timings), "vre": {}, "without_vre": {}}
        timings["shared"].update(result.timings)
        timings["vre"] = _pass_timings(result.restored)
        if result.without_vre is not None:
            timings["without_vre"] = _pass_timings(result.without_vre)
        timings["shared"]["write"] = time.perf_counter() - tick
        timings["shared"]["total"] = time.perf_counter() - prepared.started
        return RestoreOutcome(
            input=input_path,
            turbulent_input=turbulent_path,
            restored=restored_path,
            without_vre=without_path,
            slider=slider,
            gallery=gallery,
            timing_markdown=timing_markdown(prepared, result, timings),
            identity_markdown=identity_markdown(result, turbulent=request.turbulence),
            face_count=len(result.restored.faces),
            timings=timings,
        )

    # ---------------------------------------------------------------- turbulence preview

    def degrade(
        self,
        image: str | os.PathLike | None,
        propagation_length: float,
        seed: int,
        output_dir: str | os.PathLike,
    ) -> tuple[Path, str]:
        """Only the turbulence simulator (needs no model weights): the turbulent copy as a PNG in
        ``output_dir`` and a one-line Markdown note."""
        check_turbulence_settings(propagation_length, seed)
        started = time.perf_counter()
        clean = read_image(image, self.settings.max_pixels)
        turbulent = add_turbulence(clean, propagation_length, int(seed))
        folder = Path(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = save_png(turbulent, folder / "turbulent_input.png")
        height, width = clean.shape[:2]
        note = (
            f"Turbulence at {float(propagation_length):,.0f} m (seed {int(seed)}) on the {width}x{height} input, "
            f"simulated in {time.perf_counter() - started:.2f} s."
        )
        return path, note


# --------------------------------------------------------------------------- helpers


def add_turbulence(image: np.ndarray, propagation_length: float, seed: int) -> np.ndarray:
    """(H, W, 3) RGB uint8 -> its turbulent copy, same format."""
    from osdface.degradations import TurbulenceParams, simulate_turbulence

    height, width = image.shape[:2]
    if height * width > MAX_TURBULENCE_MEGAPIXELS * 1e6:
        raise RequestError(
            f"The turbulence simulator takes images up to {MAX_TURBULENCE_MEGAPIXELS:g} megapixels, and this "
            f"one is {width}x{height} = {height * width / 1e6:.1f} megapixels. Downscale it, or switch "
            "turbulence off."
        )
    if min(height, width) < 32:
        raise RequestError(
            f"The image is only {width}x{height} pixels; the turbulence simulator needs 32x32 or more."
        )
    return simulate_turbulence(
        image, TurbulenceParams(propagation_length=float(propagation_length)), seed=seed
    )


def clean_crop(prepared: PreparedRestore, affine: np.ndarray) -> Image.Image:
    """The clean input's face where the turbulent face was cropped (same alignment), 512x512."""
    import cv2

    if prepared.request.mode == MODE_ALIGNED:
        face = to_pil(prepared.clean)
        if face.size != (FACE_SIZE, FACE_SIZE):
            face = face.resize((FACE_SIZE, FACE_SIZE), Image.Resampling.LANCZOS)
        return face
    crop = cv2.warpAffine(
        prepared.clean,
        np.asarray(affine, dtype=np.float64),
        (FACE_SIZE, FACE_SIZE),
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=_CROP_BORDER_RGB,
    )
    return to_pil(crop)


def save_png(image: Image.Image | np.ndarray, path: Path) -> Path:
    """Write a PIL image or an (H, W, 3) RGB uint8 array as PNG; return its path."""
    picture = to_pil(image) if isinstance(image, np.ndarray) else image
    # Level 3 instead of 6: large photos are written a few times faster for ~10% more bytes.
    picture.save(path, format="PNG", compress_level=3)
    return path


def describe_device(device: torch.device, dtype: torch.dtype) -> str:
    import torch

    precision = str(dtype).removeprefix("torch.")
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device}, {precision})"
    return f"{device.type.upper()} ({torch.get_num_threads()} threads, {precision})"


_STAGES = (
    ("read", "Read image"),
    ("turbulence", "Turbulence simulation"),
    ("detect", "Face detection"),
    ("align", "Face alignment"),
    ("vre", "VRE (visual tokens)"),
    ("text_encoder", "Text encoder"),
    ("vae_encode", "VAE encode"),
    ("unet", "UNet (one step)"),
    ("vae_decode", "VAE decode"),
    ("paste", "Paste faces back"),
    ("identity", "Identity (ArcFace)"),
    ("write", "Write PNGs"),
)


def _pass_timings(result: RestoreResult) -> dict[str, float]:
    """One restoration pass's stages; its ``detect`` only replayed step 1's faces, so it is left out."""
    return {stage: seconds for stage, seconds in result.timings.items() if stage not in ("detect", "total")}


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def timing_markdown(
    prepared: PreparedRestore, result: GpuResult, timings: dict[str, dict[str, float]]
) -> str:
    """The per-stage timing table, the device and the peak GPU memory, as Markdown."""
    request = prepared.request
    faces = len(result.restored.faces)
    head = f"**{faces} face{'s' if faces != 1 else ''} restored in {timings['shared']['total']:.2f} s**"
    if request.mode == MODE_PHOTO and prepared.faces_found > faces:
        head += f" ({prepared.faces_found} found; the {faces} largest were restored)"
    columns = ["OSDFace (VRE)"] + (["without VRE"] if result.without_vre is not None else [])
    lines = [head, "", "| Stage | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for stage, label in _STAGES:
        shared = timings["shared"].get(stage)
        first = timings["vre"].get(stage, shared)
        second = timings["without_vre"].get(stage) if result.without_vre is not None else None
        if first is None and second is None:
            continue
        cells = [_seconds(first)] + ([_seconds(second)] if result.without_vre is not None else [])
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    total = [_seconds(timings["shared"]["total"])] + ([""] if result.without_vre is not None else [])
    lines.append("| **Total (wall clock)** | " + " | ".join(total) + " |")
    device = f"Device: {result.device_name}"
    if result.peak_memory_bytes is not None:
        device += f" · peak GPU memory {result.peak_memory_bytes / 2**30:.2f} GiB"
    lines += ["", device]
    return "\n".join(lines)


def identity_markdown(result: GpuResult, *, turbulent: bool) -> str:
    """The identity table with its legend, or the note saying why there is none."""
    from osdface.identity import SIMILARITY_LEGEND

    if result.identity is None:
        return note_markdown(IDENTITY_OFF, result.identity_note)
    reference = "the clean input face (before turbulence)" if turbulent else "the input face"
    columns = (["turbulent input"] if turbulent else []) + ["OSDFace (VRE)"]
    if result.without_vre is not None:
        columns.append("without VRE")
    lines = [
        f"**Identity similarity to {reference}** (ArcFace cosine)",
        "",
        "| Face | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row in result.identity:
        cells = ([f"{row.turbulent_input:.3f}"] if turbulent else []) + [f"{row.restored:.3f}"]
        if result.without_vre is not None:
            cells.append(f"{row.without_vre:.3f}")
        lines.append(f"| {row.face} | " + " | ".join(cells) + " |")
    lines += ["", SIMILARITY_LEGEND]
    return "\n".join(lines)


def note_markdown(summary: str, details: str | None = None) -> str:
    """A note for a Markdown output: the summary, and the details (an error with its fix,
    which may hold characters such as ``<folder>``) folded away, escaped."""
    if not details:
        return html.escape(summary, quote=False)
    return (
        f"{html.escape(summary, quote=False)}\n<details><summary>Why, and how to fix it</summary>\n\n"
        f'<pre style="white-space: pre-wrap">{html.escape(details, quote=False)}</pre>\n</details>'
    )
