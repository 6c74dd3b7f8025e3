"""Scores of one image: every chosen per-image metric, each model loaded on first use.

``QualityMeter.score(image, reference)`` returns ``{name: value}`` for the metrics that apply
(full-reference ones only with a reference). A metric whose model cannot be loaded (a weight
file missing offline, pyiqa not installed) is left out with its reason in ``unavailable``;
the others still run. FID scores a set, not an image: ``osdface.quality.fid``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from osdface import lazy
from osdface.quality.catalog import METRICS, MetricSpec, Needs
from osdface.quality.pixels import psnr, ssim
from osdface.quality.weights import MetricWeights, pyiqa_reading_from
from osdface.weights.facexlib_files import FacexlibWeights
from osdface.weights.hub import WeightsUnavailableError

torch = lazy.module("torch")
pyiqa = lazy.module("pyiqa")
identity = lazy.module("osdface.evaluation.identity")
facexlib_models = lazy.module("osdface.faces.facexlib_models")

if TYPE_CHECKING:
    import torch

    from osdface.faces.detection import FaceDetector

Image = np.ndarray  # (H, W, 3) RGB uint8
Scorer = Callable[[Image, "Image | None"], float]


def as_batch(image: Image, device: torch.device) -> torch.Tensor:
    """(H, W, 3) RGB uint8 -> (1, 3, H, W) float32 in 0..1, the input pyiqa's metrics take."""
    return (
        torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device, torch.float32) / 255.0
    )


def load_pyiqa_metric(spec: MetricSpec, weights: MetricWeights, device: str | torch.device = "cpu") -> Any:
    """pyiqa's metric ``spec.pyiqa_name`` with its default settings (``pyiqa.create_metric``),
    its files fetched by ``weights`` and read without running code from them (CLIP-IQA's
    backbone is handed over by path: the only option passed)."""
    prepared = weights.prepare(spec.files)
    with pyiqa_reading_from(prepared.hub_dir, timm_files=prepared.timm_files):
        return pyiqa.create_metric(
            spec.pyiqa_name, device=torch.device(device), as_loss=False, **prepared.options
        )


def degrees_between(a: np.ndarray, b: np.ndarray) -> float:
    """The angle in degrees between two embeddings (0 for the same direction)."""
    cosine = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.degrees(math.acos(min(1.0, max(-1.0, cosine))))


def landmark_distance(landmarks: np.ndarray, reference: np.ndarray) -> float:
    """Mean Euclidean distance in pixels between matching (5, 2) landmarks."""
    return float(np.linalg.norm(np.asarray(landmarks, float) - np.asarray(reference, float), axis=1).mean())


class FaceNotFoundError(ValueError):
    """LMD: the landmark detector found no face in an image."""


@dataclass(frozen=True)
class Unavailable:
    name: str
    reason: str


class QualityMeter:
    """Per-image quality metrics (see the module docstring).

    ``embedder`` (an ``ArcFaceEmbedder``) and ``detector`` (a ``FaceDetector``, whose most
    confident face gives the landmarks) replace the ones loaded from ``facexlib`` weights.
    """

    def __init__(
        self,
        metrics: Sequence[str],
        *,
        weights: MetricWeights | None = None,
        facexlib: FacexlibWeights | None = None,
        device: str | torch.device = "cpu",
        embedder: Any | None = None,
        detector: FaceDetector | None = None,
    ):
        self.metrics = tuple(
            name for name in metrics if name in METRICS and METRICS[name].needs is not Needs.SET
        )
        self.weights = weights or MetricWeights.from_env()
        self.facexlib = facexlib or FacexlibWeights.from_env()
        self.device = torch.device(device)
        self._embedder = embedder
        self._detector = detector
        self._scorers: dict[str, Scorer] = {}
        self._lock = threading.Lock()
        self.unavailable: dict[str, str] = {}

    def available(self) -> tuple[str, ...]:
        return tuple(name for name in self.metrics if name not in self.unavailable)

    def load(self) -> QualityMeter:
        """Load every metric now (the first ``score`` would otherwise): for timings."""
        for name in self.metrics:
            self._scorer(name)
        return self

    def score(self, image: Image, reference: Image | None = None) -> dict[str, float]:
        """``image`` (and its ``reference``, same size): (H, W, 3) RGB uint8 -> {metric: value}.
        NaN where a value does not exist (LMD when no face is found in one of the two)."""
        if reference is not None and np.shape(reference) != np.shape(image):
            raise ValueError(
                f"the image {np.shape(image)} and its reference {np.shape(reference)} differ in size"
            )
        scores: dict[str, float] = {}
        for name in self.metrics:
            if METRICS[name].needs is Needs.REFERENCE and reference is None:
                continue
            scorer = self._scorer(name)
            if scorer is not None:
                scores[name] = scorer(image, reference)
        return scores

    def _scorer(self, name: str) -> Scorer | None:
        with self._lock:
            if name in self.unavailable:
                return None
            if name not in self._scorers:
                try:
                    self._scorers[name] = self._build(METRICS[name])
                except ImportError as exc:
                    self.unavailable[name] = (
                        f"{exc} (install the metrics: pip install -e '.[metrics]', or pip install -r requirements.txt)"
                    )
                    return None
                except (WeightsUnavailableError, OSError) as exc:
                    self.unavailable[name] = f"{type(exc).__name__}: {exc}"
                    return None
            return self._scorers[name]

    def _build(self, spec: MetricSpec) -> Scorer:
        if spec.name == "psnr":
            return psnr
        if spec.name == "ssim":
            return ssim
        if spec.name == "deg":
            self.embedder()  # loaded now: a missing file is reported in ``unavailable``
            return self._degrees
        if spec.name == "lmd":
            self.detector()
            return self._landmarks
        model = load_pyiqa_metric(spec, self.weights, self.device)

        def run(image: Image, reference: Image | None) -> float:
            with torch.inference_mode():
                if spec.needs is Needs.REFERENCE:
                    value = model(as_batch(image, self.device), as_batch(reference, self.device))
                else:
                    value = model(as_batch(image, self.device))
            return float(value.reshape(-1)[0])

        return run

    def embedder(self) -> Any:
        if self._embedder is None:
            self._embedder = identity.ArcFaceEmbedder.from_pretrained(self.facexlib).to(self.device)
        return self._embedder

    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = facexlib_models.RetinaFaceDetector.load(
                "resnet50", weights=self.facexlib, device=self.device
            )
        return self._detector

    def _degrees(self, image: Image, reference: Image | None) -> float:
        embeddings = self.embedder().embed([image, reference]).cpu().numpy()
        return degrees_between(embeddings[0], embeddings[1])

    def _landmarks(self, image: Image, reference: Image | None) -> float:
        found, expected = self.detector()(image), self.detector()(reference)
        if not found or not expected:
            return math.nan
        return landmark_distance(found[0].landmarks, expected[0].landmarks)
