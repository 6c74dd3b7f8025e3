"""Other face restorers next to OSDFace, on the same aligned faces, loaded through spandrel.

A ``FaceModel`` restores aligned 512x512 RGB faces (FFHQ layout), batched. Besides OSDFace
(``OSDFaceModel``, around the pipeline) there are three restorers, each a release file that
spandrel recognises from its state dict (``RESTORERS``):

* ``gfpgan``: GFPGAN v1.4 (TencentARC), Apache-2.0;
* ``restoreformer``: RestoreFormer (wzhouxiff; the file GFPGAN's releases host), Apache-2.0;
* ``codeformer``: CodeFormer (sczhou), **NTU S-Lab License 1.0: non-commercial use only**.
  Its architecture lives in ``spandrel_extra_arches`` for that reason; it is only loaded
  when asked for by name, and every list of choices labels it.

Weights come from ``osdface.restorers.weight_files`` (local folder, our cache, a Hub repo, the release
URL) and are read without running pickled code. ``FaceModelPipeline`` lets a ``FaceModel``
stand in for the pipeline of ``osdface.faces.FaceRestorer``, so whole photos are detected,
aligned and pasted back exactly as for OSDFace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from osdface import lazy
from osdface.faces.template import FACE_SIZE
from osdface.images.conversion import tensor_to_pil
from osdface.pipeline.color import apply_color_fix
from osdface.restorers.specs import RESTORERS, RestorerSpec, parse_restorers
from osdface.restorers.weight_files import RestorerWeights, load_state_dict
from osdface.weights.hub import WeightsUnavailableError

# spandrel loads with the first restorer: the app and the CLI import this module at start-up.
spandrel = lazy.module("spandrel")
spandrel_extra_arches = lazy.module("spandrel_extra_arches")

__all__ = [
    "RESTORERS",
    "FaceModel",
    "FaceModelPipeline",
    "OSDFaceModel",
    "RestorerSet",
    "RestorerSpec",
    "SpandrelFaceModel",
    "load_restorer",
    "parse_restorers",
]


@runtime_checkable
class FaceModel(Protocol):
    """Aligned 512x512 RGB faces in (PIL), restored 512x512 RGB faces out, in order.
    ``seed`` makes a stochastic model repeatable (face i uses ``seed + i``)."""

    key: str
    label: str

    def restore(self, faces: Sequence[Image.Image], *, seed: int | None = None) -> list[Image.Image]: ...


# --------------------------------------------------------------------------- spandrel restorers


def spandrel_registry(extra_arches: bool):
    """spandrel's registry; with ``extra_arches`` a private copy that also knows
    ``spandrel_extra_arches`` (CodeFormer), leaving spandrel's global registry untouched."""
    if not extra_arches:
        return spandrel.MAIN_REGISTRY

    registry = spandrel.ArchRegistry()
    registry.add(*spandrel.MAIN_REGISTRY, *spandrel_extra_arches.EXTRA_REGISTRY)
    return registry


def load_descriptor(state_dict: dict[str, torch.Tensor], architecture: str, *, extra_arches: bool, name: str):
    """spandrel's model for ``state_dict``, checked to be ``architecture``. ``name``: the file, in
    every ``WeightsUnavailableError``."""
    try:
        descriptor = spandrel_registry(extra_arches).load(state_dict)
    except spandrel.UnsupportedModelError as exc:
        raise WeightsUnavailableError(
            f"{name}: spandrel does not recognise the file's architecture ({exc})."
        ) from exc
    except (RuntimeError, KeyError, ValueError, IndexError) as exc:
        # A damaged or mismatched file (a tensor missing, a wrong shape) fails inside spandrel's
        # detection or load_state_dict; callers report only WeightsUnavailableError per restorer.
        # torch's message runs over many lines (one per tensor): its start, on one line, is enough
        detail = " ".join(str(exc).split())
        detail = detail if len(detail) <= 300 else detail[:297] + "..."
        raise WeightsUnavailableError(
            f"{name} is damaged or is not the release file ({type(exc).__name__}: {detail}). "
            "Fix: delete it so it is fetched again, or replace it with the release file."
        ) from exc
    found = descriptor.architecture.id
    if found != architecture:
        raise WeightsUnavailableError(f"{name} holds a {found} model, expected {architecture}.")
    return descriptor.eval()


class SpandrelFaceModel:
    """A face restorer spandrel loaded (GFPGAN, RestoreFormer or CodeFormer) as a ``FaceModel``.

    fidelity: CodeFormer's weight ``w`` in [0, 1] (0: quality, 1: fidelity to the input).
    batch_size: faces per forward pass.
    """

    def __init__(self, spec: RestorerSpec, descriptor: Any, *, fidelity: float = 0.5, batch_size: int = 4):
        if not 0.0 <= float(fidelity) <= 1.0:
            raise ValueError(f"fidelity must be in [0, 1], got {fidelity!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        self.spec = spec
        self.key = spec.key
        self.label = spec.label if spec.key != "codeformer" else f"{spec.label} (w={float(fidelity):g})"
        self.descriptor = descriptor
        self.fidelity = float(fidelity)
        self.batch_size = int(batch_size)

    @classmethod
    def from_state_dict(
        cls, spec: RestorerSpec, state_dict: dict[str, torch.Tensor], *, source: Any = None, **options: Any
    ):
        """``source``: where the state dict was read (named in errors; default: the release name)."""
        descriptor = load_descriptor(
            state_dict,
            spec.architecture,
            extra_arches=spec.extra_arches,
            name=str(source) if source is not None else spec.weights.filename,
        )
        return cls(spec, descriptor, **options)

    @property
    def device(self) -> torch.device:
        return self.descriptor.device

    def to(self, device: str | torch.device) -> SpandrelFaceModel:
        self.descriptor.to(torch.device(device))
        return self

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 512, 512) in [-1, 1] -> the same, as the authors' inference scripts do."""
        model = self.descriptor.model
        if self.spec.architecture == "GFPGAN":
            # the fixed noise buffers of the release file: a face gives the same result every time
            return model(x, return_rgb=False, randomize_noise=False)[0]
        if self.spec.architecture == "CodeFormer":
            return model(x, weight=self.fidelity)[0]
        return model(x)[0]

    @torch.inference_mode()
    def restore_tensor(self, faces: torch.Tensor) -> torch.Tensor:
        """(N, 3, 512, 512) float RGB in [0, 1] -> restored, same shape, on the model's device."""
        if faces.ndim != 4 or tuple(faces.shape[1:]) != (3, FACE_SIZE, FACE_SIZE):
            raise ValueError(f"faces must be (N, 3, {FACE_SIZE}, {FACE_SIZE}), got {tuple(faces.shape)}")
        outputs = []
        for start in range(0, faces.shape[0], self.batch_size):
            chunk = faces[start : start + self.batch_size].to(self.device, torch.float32)
            outputs.append((self._forward(chunk * 2 - 1).clamp(-1, 1) + 1) / 2)
        return torch.cat(outputs)

    def restore(self, faces: Sequence[Image.Image], *, seed: int | None = None) -> list[Image.Image]:
        """PIL RGB 512x512 faces -> restored PIL RGB 512x512 faces (``seed`` unused: deterministic)."""
        if not faces:
            return []
        batch = torch.stack([_to_tensor(face) for face in faces])
        return [tensor_to_pil(face) for face in self.restore_tensor(batch)]


def load_restorer(
    key: str,
    weights: RestorerWeights | None = None,
    *,
    device: str | torch.device = "cpu",
    **options: Any,
) -> SpandrelFaceModel:
    """The restorer ``key`` (see ``RESTORERS``) with its weights found by ``weights`` (default:
    ``RestorerWeights.from_env()``), on ``device``. Raises ``WeightsUnavailableError``."""
    if key not in RESTORERS:
        raise ValueError(f"unknown restorer {key!r}; choose from {', '.join(RESTORERS)}")
    spec = RESTORERS[key]
    path = (weights or RestorerWeights.from_env()).path(spec.weights)
    model = SpandrelFaceModel.from_state_dict(spec, load_state_dict(path), source=path, **options)
    return model.to(device)


@dataclass
class RestorerSet:
    """Restorers loaded on first use, each once (thread-safe); a restorer whose weights are missing
    is remembered with its reason, and the others still load."""

    weights: RestorerWeights | None = None
    device: str | torch.device = "cpu"
    options: dict[str, Any] = field(default_factory=dict)
    _loaded: dict[str, SpandrelFaceModel] = field(default_factory=dict, init=False)
    _errors: dict[str, str] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def get(self, keys: Sequence[str]) -> tuple[dict[str, SpandrelFaceModel], dict[str, str]]:
        """(key -> model) for the restorers that load, (key -> reason) for those that do not."""
        with self._lock:
            for key in keys:
                if key in self._loaded or key in self._errors:
                    continue
                try:
                    self._loaded[key] = load_restorer(key, self.weights, device=self.device, **self.options)
                except WeightsUnavailableError as exc:
                    self._errors[key] = str(exc)
            models = {key: self._loaded[key] for key in keys if key in self._loaded}
            return models, {key: self._errors[key] for key in keys if key in self._errors}


# --------------------------------------------------------------------------- OSDFace and adapters


class OSDFaceModel:
    """The OSDFace pipeline as a ``FaceModel`` (VRE conditioning, optional colour fix)."""

    key = "osdface"
    label = "OSDFace"

    def __init__(self, pipeline: Any, color_fix: str | None = None):
        self.pipeline = pipeline
        self.color_fix = color_fix

    def restore(self, faces: Sequence[Image.Image], *, seed: int | None = None) -> list[Image.Image]:
        generator = (
            None
            if seed is None
            else [torch.Generator("cpu").manual_seed(seed + i) for i in range(len(faces))]
        )
        output = self.pipeline(list(faces), color_fix=self.color_fix, generator=generator)
        return [image.convert("RGB") for image in output.images]


@dataclass
class _Output:
    images: list[Image.Image]
    timings: dict[str, float]


class FaceModelPipeline:
    """A ``FaceModel`` with the call signature ``FaceRestorer`` expects of a pipeline.

    The prompt does not apply to the restorers and is refused; ``color_fix`` is applied to their
    output like OSDFace's; ``generator`` seeds are ignored (the restorers are deterministic)."""

    def __init__(self, model: FaceModel):
        self.model = model
        self.device = getattr(model, "device", None)

    def __call__(self, images, prompt=None, color_fix=None, generator=None) -> _Output:
        if prompt is not None:
            raise ValueError(f"{self.model.label} takes no text prompt, got {prompt!r}")
        tick = time.perf_counter()
        restored = self.model.restore(list(images))
        if color_fix is not None:
            fixed = apply_color_fix(
                torch.stack([_to_tensor(face) for face in restored]),
                torch.stack([_to_tensor(face.convert("RGB")) for face in images]),
                color_fix,
            )
            restored = [tensor_to_pil(face) for face in fixed]
        return _Output(images=restored, timings={self.model.key: time.perf_counter() - tick})


def _to_tensor(face: Image.Image) -> torch.Tensor:
    """PIL RGB 512x512 -> (3, 512, 512) float in [0, 1]."""
    if face.size != (FACE_SIZE, FACE_SIZE):
        raise ValueError(f"faces must be {FACE_SIZE}x{FACE_SIZE} aligned crops, got {face.size}")
    array = np.asarray(face.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3) RGB
    return torch.from_numpy(array).permute(2, 0, 1)
