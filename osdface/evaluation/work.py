"""The study's work on one image: its clean aligned face, the turbulent faces, their
restorations, and the ArcFace embedding of each (written to the ``EmbeddingCache``).

The models load on first need: a run whose restorations are all cached never loads the
pipeline, and one on aligned faces never loads the detector.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from osdface.degradations import TurbulenceParams, simulate_turbulence
from osdface.errors import ImageError
from osdface.evaluation.cache import EmbeddingCache
from osdface.evaluation.conditions import RESTORE_PROMPTS, Condition, EvalFRConfig, by_length, item_seed
from osdface.evaluation.identity import ArcFaceEmbedder
from osdface.evaluation.pairs import resolve
from osdface.faces import FaceDetector, RestoreOptions, RetinaFaceDetector, select_faces
from osdface.faces.template import align_face, square_face
from osdface.files import save_png_atomic
from osdface.images.reading import load_image
from osdface.pipeline.pipeline_osdface import OSDFacePipeline
from osdface.restorers.loading import load_restorer
from osdface.restorers.specs import RESTORERS
from osdface.runtime.devices import resolve_dtype
from osdface.weights.facexlib_files import FacexlibWeights

# the face nearest the image centre is the person of an LFW-style image
CENTER_FACE = RestoreOptions(only_center_face=True)


class NoFaceFoundError(ImageError):
    """The detector found no usable face in an image (the image is left out of the study)."""


def output_names(keys: Sequence[str]) -> dict[str, Path]:
    """Each image key's file under ``images/<condition>/``: the key with a ``.png`` suffix, or,
    when that is another key's file too (``a.png`` and ``a.bmp``), the full key with ``.png``
    added (``a.bmp.png``), as ``osdface restore`` names its outputs. A ``.png`` key keeps its name."""
    names: dict[str, Path] = {}
    taken: set[Path] = set()
    for key in sorted(keys, key=lambda k: Path(k).suffix.lower() != ".png"):  # stable: .png first
        relative = Path(key)
        if relative.is_absolute():
            relative = Path("absolute", *relative.parts[1:])
        name, number = relative.with_suffix(".png"), 1
        while name in taken:
            name = relative.with_name(relative.name + ("" if number == 1 else f"_{number}") + ".png")
            number += 1
        taken.add(name)
        names[key] = name
    return names


def image_path(output_dir: Path, condition: Condition, name: Path) -> Path:
    """Where a face is saved: ``images/<condition>/<name>`` (``name`` from ``output_names``)."""
    return output_dir / "images" / condition.name / name


class FaceLoader:
    """Image key -> the clean (512, 512, 3) RGB uint8 aligned face.

    ``aligned``: the file already is an aligned square face (resized to 512 if needed, with
    Lanczos as the restore command does). Otherwise ``get_detector()`` gives a ``FaceDetector``
    (loaded on first use) and the face nearest the image centre is aligned.
    """

    def __init__(self, root: Path, aligned: bool, get_detector: Callable[[], FaceDetector]):
        self.root = root
        self.aligned = aligned
        self.get_detector = get_detector

    def __call__(self, key: str) -> np.ndarray:
        path = resolve(self.root, key)
        image = load_image(path)  # (H, W, 3) RGB uint8
        if self.aligned:
            try:
                return np.array(square_face(image))  # writable: torch.from_numpy takes it
            except ImageError as error:
                raise ImageError(error.reason, source=str(path), fix=error.fix) from error
        faces = select_faces(self.get_detector()(image), image.shape, CENTER_FACE)
        if not faces:
            raise NoFaceFoundError("no face found", source=str(path))
        return align_face(image, faces[0].landmarks)[0]


class EmbeddingWorker:
    """Computes one image's missing embeddings (models loaded on first need)."""

    def __init__(
        self,
        config: EvalFRConfig,
        device: torch.device,
        embedder: ArcFaceEmbedder,
        cache: EmbeddingCache,
        pipeline: Any | None,
        detector: FaceDetector | None,
        restorers: dict[str, Any] | None = None,
        image_names: dict[str, Path] | None = None,
    ):
        """``image_names``: ``output_names`` of every image key (``save_images``)."""
        self.config = config
        self.image_names = dict(image_names or {})
        self._restorers = dict(restorers or {})
        self.device = device
        self.embedder = embedder
        self.cache = cache
        self._pipeline = pipeline
        self._detector = detector
        self.load_face = FaceLoader(config.faces_dir, config.aligned, self.detector)

    def detector(self) -> FaceDetector:
        if self._detector is None:
            weights = FacexlibWeights.from_env(local_dir=self.config.facexlib_dir)
            self._detector = RetinaFaceDetector.load("resnet50", weights=weights, device=self.device)
        return self._detector

    def pipeline(self) -> Any:
        if self._pipeline is None:
            c = self.config
            pipe = OSDFacePipeline.from_pretrained(c.weights, c.base_model, c.revision, c.base_revision)
            dtype = resolve_dtype(c.dtype, self.device)
            if (pipe.device, pipe.dtype) != (self.device, dtype):  # it loads on the CPU in float32
                pipe = pipe.to(self.device, dtype)
            self._pipeline = pipe
        return self._pipeline

    def restorer(self, method: str) -> Any:
        """The ``osdface.restorers.loading`` restorer ``method``, loaded on first need."""
        if method not in self._restorers:
            self._restorers[method] = load_restorer(
                method, device=self.device, fidelity=self.config.codeformer_w
            )
        return self._restorers[method]

    def process(self, key: str, conditions: Sequence[Condition]) -> None:
        """Embed ``key`` under ``conditions`` into the cache. Raises NoFaceFoundError."""
        clean = self.load_face(key)
        ordered: list[Condition] = []
        faces: list[np.ndarray] = []  # (512, 512, 3) RGB uint8 each
        for length, group in by_length(conditions):
            # one turbulent face per length, shared by the methods that start from it
            turbulent = None if length is None else self._turbulent(clean, key, length)
            for condition in group:
                ordered.append(condition)
                faces.append(self._face(condition, clean, turbulent, key))
        embeddings = self.embedder.embed(faces).numpy()
        for condition, face, embedding in zip(ordered, faces, embeddings):
            self.cache.add(condition.name, key, embedding)
            if self.config.save_images:
                name = self.image_names.get(key) or output_names([key])[key]
                save_png_atomic(face, image_path(self.config.output_dir, condition, name))

    def _face(
        self, condition: Condition, clean: np.ndarray, turbulent: np.ndarray | None, key: str
    ) -> np.ndarray:
        """The (512, 512, 3) RGB uint8 face of ``key`` under ``condition``."""
        if condition.method == "clean":
            return clean
        if condition.method == "turbulent":
            return turbulent
        if condition.method in RESTORERS:
            restored = self.restorer(condition.method).restore([Image.fromarray(turbulent)])[0]
            return np.asarray(restored)  # (512, 512, 3) RGB uint8
        return self._restore(turbulent, key, condition.length, RESTORE_PROMPTS[condition.method])

    def _turbulent(self, clean: np.ndarray, key: str, length: float) -> np.ndarray:
        seed = item_seed(self.config.seed, key, length, "turbulence")
        # on the worker's device: on a GPU the simulation is far quicker than on the CPU
        # (its noise comes from a seeded CPU generator either way)
        face = torch.from_numpy(clean).to(self.device)  # (H, W, 3) RGB uint8
        params = TurbulenceParams(propagation_length=length)
        out = simulate_turbulence(face, params, seed=seed).cpu().numpy()
        if out.shape != clean.shape or out.dtype != np.uint8:
            raise RuntimeError(
                f"simulate_turbulence returned {out.dtype} {out.shape} for a {clean.dtype} {clean.shape} face"
            )
        return out

    def _restore(self, face: np.ndarray, key: str, length: float, prompt: str | None) -> np.ndarray:
        generator = torch.Generator("cpu").manual_seed(item_seed(self.config.seed, key, length, "restore"))
        output = self.pipeline()(
            [face], prompt=prompt, generator=[generator], color_fix=self.config.color_fix
        )
        return np.asarray(output.images[0].convert("RGB"))  # (512, 512, 3) RGB uint8
