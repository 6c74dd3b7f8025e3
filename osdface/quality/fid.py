"""FID: the Frechet distance between the Inception features of a set of images and a reference.

pyiqa's implementation (the clean-fid one): the 2015 TensorFlow Inception v3 ported to PyTorch
(``pt_inception-2015-12-05-6726825d.pth``, pool features, 2048-d), each image resized to
299x299 with PIL's bicubic filter per channel in float ("clean" mode), and the stable Frechet
distance of the two Gaussians. The reference is one of:

- a folder of high-quality images (its statistics are cached beside the results);
- a ``.npz`` file holding ``mu`` and ``sigma`` (clean-fid's format, e.g. from another run);
- ``ffhq``: clean-fid's FFHQ statistics at 512 px (70,000 train and validation faces), from
  pyiqa's weights repo: the usual reference for real-world face sets, which have no ground truth.

FID is a statistic of a set: with fewer images than feature dimensions (2048) the covariance is
singular and the value is biased upwards; compare values only between sets of the same size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from osdface import lazy
from osdface.files import atomic_path
from osdface.quality.catalog import METRICS
from osdface.quality.meter import load_pyiqa_metric
from osdface.quality.weights import FFHQ_STATS, MetricWeights

torch = lazy.module("torch")
fid_arch = lazy.module("pyiqa.archs.fid_arch")
img_util = lazy.module("pyiqa.utils.img_util")

if TYPE_CHECKING:
    import torch

FFHQ = "ffhq"


@dataclass(frozen=True)
class Statistics:
    """The mean and covariance of a set's Inception features."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int

    @classmethod
    def of(cls, features: np.ndarray) -> Statistics:
        """``ValueError`` for fewer than 2 images: their covariance is undefined (NaN), and the
        Frechet distance of NaNs runs for minutes before failing."""
        if len(features) < 2:
            raise ValueError(
                f"FID needs at least 2 images, got {len(features)}: the covariance of fewer is undefined"
            )
        return cls(features.mean(axis=0), np.cov(features, rowvar=False), len(features))

    @classmethod
    def read(cls, path: Path) -> Statistics:
        """A clean-fid ``.npz`` (``mu``, ``sigma``; ``count`` when we wrote it), read without pickle."""
        with np.load(path, allow_pickle=False) as data:
            missing = {"mu", "sigma"} - set(data.files)
            if missing:
                raise ValueError(
                    f"{path}: FID statistics need arrays 'mu' and 'sigma'; missing {sorted(missing)}"
                )
            count = int(data["count"]) if "count" in data.files else 0
            return cls(data["mu"], data["sigma"], count)

    def write(self, path: Path) -> Path:
        with atomic_path(path) as partial, open(partial, "wb") as handle:
            np.savez(handle, mu=self.mu, sigma=self.sigma, count=np.array(self.count))
        return path


class FIDScorer:
    """Inception features of image folders, and the FID between two sets of statistics."""

    def __init__(self, weights: MetricWeights | None = None, device: str | torch.device = "cpu"):
        self.weights = weights or MetricWeights.from_env()
        self.device = torch.device(device)
        self._model: Any = None

    @property
    def inception(self) -> torch.nn.Module:
        if self._model is None:
            self._model = load_pyiqa_metric(METRICS["fid"], self.weights, self.device).net.model
        return self._model

    def features(self, folder: Path) -> np.ndarray:
        """(N, 2048) float features of the images under ``folder`` (sorted paths, clean resize)."""
        return self.file_features(img_util.scandir_images(str(folder)))

    def file_features(self, files: Sequence[str | Path]) -> np.ndarray:
        """(N, 2048) float features of ``files``, in order: pyiqa's ``get_folder_features`` on a
        list of files instead of a folder's listing (clean resize, the same input scaling)."""
        if not files:
            return np.empty((0, 2048), dtype=np.float32)
        dataset = fid_arch.ResizeDataset([str(f) for f in files], mode="clean", size=(299, 299))
        # no worker processes: the app and accelerate launches run this too
        loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=False, num_workers=0)
        features = []
        with torch.no_grad():
            for batch in loader:  # (B, 3, 299, 299) float in [0, 255]
                pooled = self.inception(((batch - 128) / 128).to(self.device), False, False)[0]
                features.append(pooled.reshape(pooled.shape[0], -1).cpu().numpy())
        return np.concatenate(features)

    def statistics(self, folder: Path) -> Statistics:
        return Statistics.of(self.features(folder))

    def file_statistics(self, files: Sequence[str | Path]) -> Statistics:
        return Statistics.of(self.file_features(files))

    def reference(self, reference: str | Path, cache_dir: Path | None = None) -> Statistics:
        """Statistics of ``reference`` (see the module docstring); a folder's are cached as
        ``cache_dir/fid-reference-<folder name>-<hash>.npz`` and reused while the folder (by its
        resolved path) and each file's name, size and modification time are unchanged."""
        if str(reference).lower() == FFHQ:
            return Statistics.read(self.weights.path(FFHQ_STATS))
        path = Path(reference)
        if path.is_file():
            return Statistics.read(path)
        if not path.is_dir():
            raise ValueError(f"FID reference {reference!r} is neither 'ffhq', a .npz file nor a folder")
        if cache_dir is None:
            return self.statistics(path)
        # another folder of the same name, or an image replaced in place, is another reference
        listing = [str(path.resolve())] + sorted(
            f"{p.relative_to(path)}\t{(stat := p.stat()).st_size}\t{stat.st_mtime_ns}"
            for p in path.rglob("*")
            if p.is_file()
        )
        digest = hashlib.sha256("\n".join(listing).encode()).hexdigest()[:12]
        cached = cache_dir / f"fid-reference-{path.name}-{digest}.npz"
        if cached.is_file():
            return Statistics.read(cached)
        statistics = self.statistics(path)
        statistics.write(cached)
        return statistics


def frechet_distance(a: Statistics, b: Statistics) -> float:
    """pyiqa's (clean-fid's) Frechet distance between two Gaussians; ``ValueError`` when either
    holds a NaN or an infinity (scipy's sqrtm on those runs for minutes, then fails)."""
    for name, stats in (("first", a), ("second", b)):
        if not (np.all(np.isfinite(stats.mu)) and np.all(np.isfinite(stats.sigma))):
            raise ValueError(f"FID: the {name} set's statistics are not finite (NaN or infinity)")
    return float(fid_arch.frechet_distance(a.mu, a.sigma, b.mu, b.sigma))
