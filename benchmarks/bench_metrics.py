"""Benchmark: seconds per 512x512 face of each quality metric on this CPU, and its load time.

    python -m benchmarks.bench_metrics --repeats 3            # every metric of `osdface evaluate`
    python -m benchmarks.bench_metrics --metrics psnr,ssim,niqe --repeats 1

Every weight file is written with random values in its published layout into a temporary
folder (``osdface.testing.random_metrics.write_metrics_dir``), and the metrics load from it
offline as from ``--metrics-dir`` and ``--facexlib-dir``: the same lookup, safe-open checks and
network construction as real use, so the load time is a first load (into an empty cache) and
the figures are about cost only. Each metric is loaded, scores the face once untimed (warm-up),
then the metrics score it in interleaved rounds (every metric once per round, ``--repeats``
rounds); the median is printed. Full-reference metrics compare the face with a noisier copy.
FID scores a set, not a face: its figure is the Inception features of one face read from a
PNG (what FID adds per image). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from benchmarks.cpu_figures import processor_line
from osdface.quality.catalog import METRICS, in_paper_order, parse_metrics
from osdface.quality.fid import FIDScorer
from osdface.quality.meter import QualityMeter
from osdface.quality.weights import MetricWeights
from osdface.testing.random_metrics import write_metrics_dir
from osdface.weights.facexlib_files import FacexlibWeights


@dataclass(frozen=True)
class Figures:
    load: float  # seconds to load the metric (files, checks, network)
    per_face: float  # median seconds to score one face


def synthetic_face(size: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random (size, size, 3) RGB uint8 image and a noisier copy (its reference)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
    face = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    noisy = np.clip(face.astype(int) + rng.integers(-20, 21, face.shape), 0, 255).astype(np.uint8)
    return face, noisy


def loaded_scorer(
    name: str, face: np.ndarray, reference: np.ndarray, weights: MetricWeights, facexlib: FacexlibWeights
) -> Callable[[], object]:
    """Load metric ``name`` and return a call that scores ``face`` once."""
    if name == "fid":
        scorer = FIDScorer(weights)
        scorer.inception  # noqa: B018 - loads the network now
        folder = Path(tempfile.mkdtemp(prefix="fid-face-", dir=weights.cache_dir))
        Image.fromarray(face).save(folder / "face.png")
        return lambda: scorer.features(folder)
    meter = QualityMeter([name], weights=weights, facexlib=facexlib).load()
    if meter.unavailable:
        raise RuntimeError(f"{name} did not load: {meter.unavailable[name]}")
    return lambda: meter.score(face, reference)


def run(metrics: tuple[str, ...], repeats: int, size: int = 512, seed: int = 0) -> dict[str, Figures]:
    """Load and time each metric (see the module docstring); print and return the figures."""
    face, reference = synthetic_face(size, seed)
    loads: dict[str, float] = {}
    times: dict[str, list[float]] = {name: [] for name in metrics}
    with tempfile.TemporaryDirectory(prefix="osdface-bench-metrics-") as tmp:
        files = write_metrics_dir(Path(tmp) / "files", seed, metrics)
        weights = MetricWeights(local_dir=files, cache_dir=Path(tmp) / "cache", offline=True)
        facexlib = FacexlibWeights(local_dir=files, cache_dir=Path(tmp) / "facexlib-cache", offline=True)
        scorers = {}
        for name in metrics:
            started = time.perf_counter()
            scorers[name] = loaded_scorer(name, face, reference, weights, facexlib)
            loads[name] = time.perf_counter() - started
            scorers[name]()  # warm-up: first-call allocations, kernel selection
        for _ in range(repeats):
            for name in metrics:
                started = time.perf_counter()
                scorers[name]()
                times[name].append(time.perf_counter() - started)
    figures = {name: Figures(loads[name], statistics.median(times[name])) for name in metrics}
    print(processor_line())
    print(
        f"quality metrics on a {size}x{size} face, random weights in the published layouts; "
        f"median of {repeats} interleaved round(s) after a warm-up"
    )
    for name, figure in figures.items():
        print(f"{METRICS[name].label:<9} {figure.per_face:10.4f} s/face   load {figure.load:8.2f} s")
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--metrics", default="all", help="comma-separated names, or all, synthetic, real (default: all)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (default: 3)")
    parser.add_argument("--size", type=int, default=512, help="face size in pixels (default: 512)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.size < 32:
        parser.error("--repeats must be at least 1 and --size at least 32")
    try:
        metrics = tuple(in_paper_order(parse_metrics(args.metrics)))
    except ValueError as exc:
        parser.error(str(exc))
    run(metrics, args.repeats, args.size)


if __name__ == "__main__":
    main()
