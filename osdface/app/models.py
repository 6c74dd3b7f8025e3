"""What the app loaded at start-up, and what it could not load (with why): one typed
description, ``LoadedModels``, that the ``Studio`` is built from and the page's notes are
written from.

Each part the app can run without is listed in ``Part``; a part that is missing disables
only what needs it: no pipeline, no restoring (the turbulence preview still works); no
detector, no whole photos (aligned faces still work); no ArcFace, no identity scores; no SD
2.1 text encoder, no "without VRE" comparison.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

# The models' packages load when the models do (osdface.lazy): the app shows its page, and its
# missing-weights banner, before torch is imported.
import osdface
from osdface import evaluation, faces, lazy
from osdface.app.probe import missing_sources_message
from osdface.app.requests import StudioSettings
from osdface.runtime.cuda_diagnosis import check_cuda_device_exists, diagnose_cuda, out_of_memory_problem
from osdface.runtime.devices import resolve_device, resolve_dtype
from osdface.runtime.opencv import log_opencv_problem
from osdface.weights.facexlib_files import FacexlibWeights, FacexlibWeightsError
from osdface.weights.hub import WeightsUnavailableError

torch = lazy.module("torch")

if TYPE_CHECKING:
    from osdface.evaluation.identity import ArcFaceEmbedder
    from osdface.faces import FaceRestorer
    from osdface.pipeline.pipeline_osdface import OSDFacePipeline
    from osdface.runtime.cuda_diagnosis import CudaProblem


class Part(str, Enum):
    PIPELINE = "pipeline"  # OSDFace + SD 2.1 (restoring)
    DETECTOR = "detector"  # RetinaFace (whole photos)
    IDENTITY = "identity"  # ArcFace (identity scores)
    ABLATION = "ablation"  # SD 2.1's text encoder (the without-VRE comparison)


_NOT_CONFIGURED = {
    Part.DETECTOR: "No face detector is configured.",
    Part.IDENTITY: "No identity model is configured.",
}


@dataclass
class LoadedModels:
    """The models that loaded (None: not loaded) and, for each part that did not, why (the
    reason with its fix). A part that is None without a reason gets "not configured".
    ``gpu_problem``: why the machine's GPU is not used, the models then running on the CPU."""

    pipeline: OSDFacePipeline | None = None
    restorer: FaceRestorer | None = None
    identity: ArcFaceEmbedder | None = None
    missing: dict[Part, str] = field(default_factory=dict)
    gpu_problem: CudaProblem | None = None

    def __post_init__(self) -> None:
        if self.pipeline is None and Part.PIPELINE not in self.missing:
            raise ValueError("LoadedModels without a pipeline needs missing[Part.PIPELINE] saying why")
        for part, model in ((Part.DETECTOR, self.restorer), (Part.IDENTITY, self.identity)):
            if model is None:
                self.missing.setdefault(part, _NOT_CONFIGURED[part])

    def why_missing(self, part: Part) -> str | None:
        """Why ``part`` is off (None: it loaded)."""
        return self.missing.get(part)


def load_models(settings: StudioSettings) -> LoadedModels:
    """Load every model once, at start-up, on CPU then moved to the device (as ZeroGPU
    expects). A missing OSDFace or SD 2.1 file gives no pipeline (and the reason), never an
    exception; so do missing detector, ArcFace or text-encoder files, each disabling only what
    needs it. A GPU that CUDA cannot use (or whose memory the models do not fit) gives the CPU
    and the reason in ``gpu_problem``, never an exception."""
    # Before facexlib imports cv2: where libGL is missing, that import is what fails.
    log_opencv_problem(logging.getLogger(__name__))
    device, gpu_problem = choose_device(settings)
    try:
        pipeline = osdface.OSDFacePipeline.from_pretrained(
            settings.model.weights,
            base_model=settings.model.base_model,
            revision=settings.model.revision,
            base_revision=settings.model.base_revision,
        )
    except WeightsUnavailableError as exc:
        error = missing_sources_message(settings.model.weights, settings.model.base_model, str(exc))
        return LoadedModels(missing={Part.PIPELINE: error}, gpu_problem=gpu_problem)
    for line in pipeline.load_report_lines():  # what `osdface doctor` reports too
        logging.getLogger(__name__).info(line)
    missing: dict[Part, str] = {}
    try:
        # Loaded now, not on the first ablation: on ZeroGPU nothing may load inside the GPU call.
        pipeline.load_text_encoder()
    except WeightsUnavailableError as exc:
        missing[Part.ABLATION] = str(exc)
    try:
        pipeline, restorer, identity = _place_models(settings, pipeline, device, missing)
    except torch.OutOfMemoryError as exc:
        gpu_problem = out_of_memory_problem(device, exc)
        logging.getLogger(__name__).warning(gpu_problem.message())
        pipeline = pipeline.to("cpu")  # the modules that did reach the GPU come back
        _release_gpu_memory()
        pipeline, restorer, identity = _place_models(settings, pipeline, pipeline.device, missing)
    return LoadedModels(
        pipeline=pipeline, restorer=restorer, identity=identity, missing=missing, gpu_problem=gpu_problem
    )


def choose_device(settings: StudioSettings):
    """(the device the models run on, why the machine's GPU is not used or None). A GPU that
    CUDA cannot start gives the CPU: the app serves on the CPU under a banner that says why
    (``python app.py --device cuda`` is refused earlier, by ``parse_args``). A CUDA device
    asked for on a machine without one raises ``CudaUnavailableError`` here, before anything
    loads. On ZeroGPU CUDA is deferred by design, and an explicit CPU is the user's choice:
    neither is diagnosed."""
    asked = settings.model.device
    if settings.zero_gpu or (asked and torch.device(asked).type not in ("cuda",)):
        return resolve_device(asked), None
    problem = diagnose_cuda()
    if problem is None:
        if asked:
            check_cuda_device_exists(asked)
        return resolve_device(asked), None
    logging.getLogger(__name__).warning(problem.message())
    return torch.device("cpu"), problem


def _place_models(settings: StudioSettings, pipeline, device, missing: dict[Part, str]):
    """The pipeline in the device's dtype, and the face models (each may be None with the
    reason in ``missing``), all on ``device``."""
    pipeline = pipeline.to(device, resolve_dtype(settings.model.dtype, device))
    restorer, identity = _load_face_models(settings, pipeline, device, missing)
    return pipeline, restorer, identity


def _release_gpu_memory() -> None:
    gc.collect()
    torch.cuda.empty_cache()


def _load_face_models(settings: StudioSettings, pipeline, device, missing: dict[Part, str]):
    """The whole-photo restorer (its detector loaded now) and ArcFace, or None each with the
    reason in ``missing``."""
    facexlib = FacexlibWeights.from_env(local_dir=settings.model.facexlib_dir)
    restorer = faces.FaceRestorer(
        pipeline,
        options=faces.RestoreOptions(max_faces=settings.max_faces, max_pixels=None),
        weights=facexlib,
        # on ZeroGPU faces are counted on the CPU before a GPU is asked for
        device=torch.device("cpu") if settings.zero_gpu else device,
    )
    try:
        restorer.detector  # noqa: B018 - loads RetinaFace now rather than on the first photo
    except FacexlibWeightsError as exc:
        restorer, missing[Part.DETECTOR] = None, str(exc)
    identity = None
    try:
        identity = evaluation.ArcFaceEmbedder.from_pretrained(facexlib).to(device)
    except evaluation.IdentityUnavailableError as exc:
        missing[Part.IDENTITY] = str(exc)
    return restorer, identity
