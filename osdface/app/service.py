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
the reason and the fix). Anything else is a bug and propagates. torch and the models are
imported inside the steps: the app shows its page before torch is imported.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from osdface import faces, lazy, pipeline
from osdface.app import scores
from osdface.app.imaging import add_turbulence, clean_crop, save_png
from osdface.app.models import LoadedModels, Part, load_models
from osdface.app.probe import (
    hub_offline_if_unreachable,
    missing_sources_message,
    needs_hub,
    unreachable_note,
)
from osdface.app.rendering import (
    identity_markdown,
    pass_timings,
    status_notes,
    timing_markdown,
    weights_missing_text,
)
from osdface.app.requests import (
    MODE_ALIGNED,
    MODE_PHOTO,
    RequestError,
    RestoreRequest,
    ServiceUnavailableError,
    StudioSettings,
    check_turbulence_settings,
)
from osdface.app.results import GpuResult, IdentityRow, PreparedRestore, RestoreOutcome
from osdface.app.text import WEIGHTS_MISSING
from osdface.app.uploads import check_aligned_face, check_upload, read_image
from osdface.choices import ColorFix
from osdface.runtime import progress
from osdface.runtime.devices import describe_device, dtype_reason

# torch and the face models load with the models, not to render the page (osdface.lazy).
torch = lazy.module("torch")
np = lazy.module("numpy")
hub_constants = lazy.module("huggingface_hub.constants")
quality_meter = lazy.module("osdface.quality.meter")

if TYPE_CHECKING:
    import torch

    from osdface.evaluation.identity import ArcFaceEmbedder
    from osdface.faces import DetectedFace, FaceRestorer, RestoreOptions, RestoreResult
    from osdface.pipeline.pipeline_osdface import OSDFacePipeline
    from osdface.quality.meter import QualityMeter

# ZeroGPU time budget: model transfer and warm-up, then one pipeline pass per face and mode.
GPU_BASE_SECONDS = 20
GPU_SECONDS_PER_FACE_PASS = 3
GPU_MAX_SECONDS = 120
GPU_SECONDS_PER_FACE_METRICS = 2  # the app's metrics (osdface.app.scores) on each face's results


class Studio:
    """The loaded models and the three request steps. Shared by all requests; holds no
    per-request state, so requests may run concurrently.

    models: what loaded and what did not (``osdface.app.models.LoadedModels``). Without the
        pipeline, restoring raises ``ServiceUnavailableError`` and the turbulence preview still
        works; without the detector (``restorer`` None), aligned faces still work; without
        ArcFace, no identity scores; without the text encoder, no "without VRE" comparison.
    """

    def __init__(self, models: LoadedModels, *, settings: StudioSettings | None = None):
        self.models = models
        self.settings = settings or StudioSettings()
        self._meter: QualityMeter | None = None
        self._meter_lock = threading.Lock()

    @classmethod
    def load(cls, settings: StudioSettings) -> Studio:
        """Load every model once, at start-up (``osdface.app.models.load_models``)."""
        return cls(load_models(settings), settings=settings)

    # ---------------------------------------------------------------- status

    @property
    def pipeline(self) -> OSDFacePipeline | None:
        return self.models.pipeline

    @property
    def restorer(self) -> FaceRestorer | None:
        return self.models.restorer

    @property
    def identity(self) -> ArcFaceEmbedder | None:
        return self.models.identity

    def meter(self) -> QualityMeter | None:
        """The quality metrics (each model loads on its first score, not at start-up), None when
        ``--no-metrics`` turned them off."""
        if not self.settings.metrics:
            return None
        with self._meter_lock:
            if self._meter is None:
                self._meter = quality_meter.QualityMeter(scores.APP_METRICS, device=self.device)
            return self._meter

    @property
    def available(self) -> bool:
        return self.pipeline is not None

    @property
    def device(self) -> torch.device:
        if self.pipeline is None:
            return torch.device("cpu")
        return self.pipeline.device

    def status_notes(self) -> list[tuple[str, str | None]]:
        """Notes for the page, each (summary, details or None): what is off and why (with the
        fix), and the CPU warning. Empty when the pipeline is missing (the banner says it all)."""
        if self.pipeline is None:
            return []
        return status_notes(self.models, on_cpu=self.device.type == "cpu" and not self.settings.zero_gpu)

    def load_report_lines(self) -> list[str]:
        """What was loaded, for the terminal at start-up (the same report as ``osdface doctor``):
        sources and revisions, the VRE's tensors, the LoRA pairs applied, device and dtypes.
        Without the pipeline: the banner's reason and fix (a Space's log shows no banner)."""
        if self.pipeline is None:
            return [weights_missing_text(self.models.why_missing(Part.PIPELINE))]
        pipe = self.pipeline
        runtime = (
            f"running on {self.device}: UNet and VAE {str(pipe.unet.dtype).removeprefix('torch.')}, "
            f"VRE {str(pipe.embedder.dtype).removeprefix('torch.')} ({dtype_reason(self.settings.model.dtype, self.device)})"
        )
        return [*pipe.load_report_lines(), runtime]

    def gpu_seconds(self, prepared: PreparedRestore) -> int:
        """Seconds of GPU time to request for ``prepared`` (ZeroGPU's ``duration``)."""
        passes = prepared.face_count * (2 if prepared.request.ablation else 1)
        metrics = prepared.face_count * GPU_SECONDS_PER_FACE_METRICS if prepared.request.metrics else 0
        return min(GPU_MAX_SECONDS, GPU_BASE_SECONDS + GPU_SECONDS_PER_FACE_PASS * passes + metrics)

    # ---------------------------------------------------------------- step 1 (CPU)

    def prepare(self, request: RestoreRequest) -> PreparedRestore:
        """Check the request, read the image, add turbulence, find the faces."""
        started = time.perf_counter()
        request.check()
        if self.pipeline is None:
            raise ServiceUnavailableError(
                f"{WEIGHTS_MISSING}\n{self.models.why_missing(Part.PIPELINE)}\n"
                "(The turbulence preview still works.)"
            )
        if request.ablation and self.models.why_missing(Part.ABLATION):
            raise ServiceUnavailableError(
                f"The without-VRE comparison is unavailable: {self.models.why_missing(Part.ABLATION)} "
                "Switch off 'Compare without VRE' to restore with VRE only."
            )
        if request.mode == MODE_PHOTO and self.restorer is None:
            raise ServiceUnavailableError(
                "Whole-photo mode is unavailable because the face detector could not be loaded.\n"
                f"{self.models.why_missing(Part.DETECTOR)}\nMeanwhile, crop and align the face yourself (512x512, FFHQ "
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
        base = self.restorer.options if self.restorer is not None else faces.RestoreOptions()
        return replace(
            base,
            aligned=request.mode == MODE_ALIGNED,
            max_faces=self.settings.max_faces,
            prompt=None,
            color_fix=ColorFix.argument(request.color_fix),
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
        if self.pipeline is None:
            raise ServiceUnavailableError(
                f"Restoring is unavailable: {self.models.why_missing(Part.PIPELINE)}"
            )
        request = prepared.request
        device = self.device
        cuda = device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        options = self._options(request)
        # The faces were found in step 1 (None: the photo is an aligned face).
        found = None if options.aligned else prepared.faces
        restorer = faces.FaceRestorer(self.pipeline, options=options)
        timings: dict[str, float] = {}
        try:
            if request.ablation:  # encodes each face once for both passes
                restored, without_vre = pipeline.restore_with_and_without_vre(
                    restorer, prepared.photo, found, request.prompt
                )
            else:
                restored, without_vre = restorer.restore_faces(prepared.photo, found), None
        except torch.OutOfMemoryError as exc:
            if cuda:
                torch.cuda.empty_cache()
            raise RequestError(
                f"The GPU ran out of memory restoring {prepared.face_count} face(s) at once. "
                "Try again in a moment, or with fewer faces (crop the photo)."
            ) from exc

        identity, note = None, None
        if self.identity is None:
            note = self.models.why_missing(Part.IDENTITY)
        else:
            tick = time.perf_counter()
            identity = self._identity(prepared, restored, without_vre)
            timings["identity"] = time.perf_counter() - tick
        quality = None
        meter = self.meter() if request.metrics else None
        if meter is not None:
            progress.step("metrics")
            tick = time.perf_counter()
            references = None
            if request.turbulence:  # (512, 512, 3) RGB uint8, one clean face per restored face
                references = [
                    np.asarray(clean_crop(prepared, face.affine).convert("RGB")) for face in restored.faces
                ]
            quality = scores.score_results(meter, references, restored, without_vre, identity)
            timings["metrics"] = time.perf_counter() - tick
        return GpuResult(
            restored=restored,
            without_vre=without_vre,
            identity=identity,
            identity_note=note,
            device_name=describe_device(
                device, self.pipeline.dtype, dtype_reason(self.settings.model.dtype, device)
            ),
            peak_memory_bytes=int(torch.cuda.max_memory_allocated(device)) if cuda else None,
            timings=timings,
            quality=quality,
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
        """Write the request's PNGs into ``output_dir`` (which only this request writes; made
        here, so a request refused earlier leaves no folder) and build the tables."""
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
        timings["vre"] = pass_timings(result.restored)
        if result.without_vre is not None:
            timings["without_vre"] = pass_timings(result.without_vre)
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
            scores_markdown={
                output: scores.scores_markdown(result.quality, output) for output in scores.OUTPUTS
            },
            scores_json=None if result.quality is None else result.quality.as_json(),
        )

    def write_restored(self, result: GpuResult, output_dir: str | os.PathLike) -> Path:
        """Only the restored image, as ``output_dir``/osdface.png: for a caller that returns
        nothing else (Gradio deletes only the files it hands out)."""
        folder = Path(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        return save_png(result.restored.image, folder / "osdface.png")

    # ---------------------------------------------------------------- turbulence preview

    def degrade(
        self,
        image: str | os.PathLike | None,
        propagation_length: float,
        seed: int,
        output_dir: str | os.PathLike,
    ) -> tuple[Path, str]:
        """Only the turbulence simulator (needs no model weights): the turbulent copy as a PNG in
        ``output_dir`` (made once the input is accepted) and a one-line Markdown note."""
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


def start_studio(settings: StudioSettings) -> tuple[Studio, str | None]:
    """The app's start: ``Studio.load`` after one probe of the Hub; returns the studio and, when the Hub could
    not be reached, the note saying so. Offline (or unreachable) with a source missing, the
    studio comes without a pipeline at once: diffusers and torch are not even imported."""
    with hub_offline_if_unreachable(settings.model.weights, settings.model.base_model) as probe:
        missing = None
        if hub_constants.HF_HUB_OFFLINE or not needs_hub(settings.model.weights, settings.model.base_model):
            missing = missing_sources_message(settings.model.weights, settings.model.base_model)
        if missing:
            studio = Studio(LoadedModels(missing={Part.PIPELINE: missing}), settings=settings)
        else:
            studio = Studio.load(settings)
    return studio, unreachable_note(probe)
