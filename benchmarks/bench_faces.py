"""Benchmark: restoring the faces of a photo in one batched pipeline call vs one at a time.

    python -m benchmarks.bench_faces                       # full-size architecture, random weights
    python -m benchmarks.bench_faces --size tiny --repeats 3

A synthetic photo holds ``--faces`` faces (a synthetic detector reports them, so no detector
weights are needed); ``FaceRestorer`` restores it with ``batch_size=faces`` (one call) and with
``batch_size=1`` (one call per face). Prints the wall time of both (median over ``--repeats``,
after one warm-up of each), the pipeline's share, and the ratio. Random weights: the figures
are about speed only. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from osdface.faces import FFHQ_TEMPLATE_512, DetectedFace, FaceRestorer, RestoreOptions
from osdface.pipeline.cpu_tuning import apply_memory_format, check_cpu_dtype
from osdface.runtime.devices import DTYPE_NAMES, dtype_name, resolve_device, resolve_dtype
from osdface.testing.random_weights import random_pipeline


@dataclass(frozen=True)
class BenchSettings:
    size: str = "full"
    faces: int = 4
    repeats: int = 1
    warmup: bool = True
    device: str | None = None
    dtype: str | None = None
    seed: int = 0


def synthetic_photo(
    faces: int, face_width: int = 160, seed: int = 0
) -> tuple[np.ndarray, list[DetectedFace]]:
    """A smooth random (H, W, 3) RGB uint8 photo with ``faces`` face positions in a row, and
    their detections: the FFHQ template's landmarks scaled to ``face_width`` and moved."""
    rng = np.random.default_rng(seed)
    gap = face_width // 2
    width, height = faces * (face_width + gap) + gap, 2 * face_width
    small = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
    photo = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    scale = face_width / 512.0
    detections = []
    for index in range(faces):
        left, top = gap + index * (face_width + gap), height // 4
        landmarks = FFHQ_TEMPLATE_512 * scale + [left, top]
        box = (
            left + 0.3 * face_width,
            top + 0.35 * face_width,
            left + 0.7 * face_width,
            top + 0.8 * face_width,
        )
        detections.append(DetectedFace(box=box, landmarks=landmarks, score=0.99))
    return photo, detections


def run(settings: BenchSettings) -> dict[str, float]:
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    check_cpu_dtype(device, dtype)
    pipeline = random_pipeline(size=settings.size, seed=settings.seed)
    apply_memory_format(pipeline)  # as from_pretrained does
    if (pipeline.device, pipeline.dtype) != (device, dtype):  # built on the CPU in float32
        pipeline = pipeline.to(device, dtype)
    photo, detections = synthetic_photo(settings.faces, seed=settings.seed)
    restorer = FaceRestorer(pipeline, detector=lambda image: list(detections), device="cpu")
    modes = {"batched": settings.faces, "one_at_a_time": 1}

    def once(batch_size: int) -> tuple[float, float]:
        options = RestoreOptions(batch_size=batch_size, seed=settings.seed)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        result = restorer.restore(photo, options)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        assert len(result.faces) == settings.faces
        return time.perf_counter() - started, result.timings["restore"]

    if settings.warmup:  # first-call allocations, kernel selection, caches
        for batch_size in modes.values():
            once(batch_size)
    figures: dict[str, float] = {}
    for name, batch_size in modes.items():
        runs = [once(batch_size) for _ in range(settings.repeats)]
        figures[name] = statistics.median(total for total, _ in runs)
        figures[f"{name}_pipeline"] = statistics.median(pipe for _, pipe in runs)
    figures["ratio"] = figures["one_at_a_time"] / figures["batched"]
    figures["pipeline_ratio"] = figures["one_at_a_time_pipeline"] / figures["batched_pipeline"]
    print(
        f"device: {device} ({dtype_name(dtype)}); architecture: {settings.size} (random weights); "
        f"photo: {photo.shape[1]}x{photo.shape[0]} with {settings.faces} faces; "
        f"median of {settings.repeats} run(s){' after a warm-up' if settings.warmup else ', no warm-up'}"
    )
    print(
        f"batched (1 call x {settings.faces} faces):      {figures['batched']:9.3f} s"
        f"   (pipeline {figures['batched_pipeline']:.3f} s)"
    )
    print(
        f"one at a time ({settings.faces} calls x 1 face): {figures['one_at_a_time']:9.3f} s"
        f"   (pipeline {figures['one_at_a_time_pipeline']:.3f} s)"
    )
    print(
        f"ratio one-at-a-time / batched: {figures['ratio']:.3f}x whole restore, "
        f"{figures['pipeline_ratio']:.3f}x pipeline calls"
    )
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", choices=("tiny", "full"), default="full", help="architecture (default: full)"
    )
    parser.add_argument("--faces", type=int, default=4, help="faces in the photo (default: 4)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per mode (default: 1)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed first run of each mode")
    parser.add_argument("--device", default=None, help="default: cuda, else mps (Apple GPU), else cpu")
    parser.add_argument("--dtype", choices=DTYPE_NAMES, default=None)
    args = parser.parse_args(argv)
    if args.faces < 1 or args.repeats < 1:
        parser.error("--faces and --repeats must be at least 1")
    run(BenchSettings(args.size, args.faces, args.repeats, not args.no_warmup, args.device, args.dtype))


if __name__ == "__main__":
    main()
