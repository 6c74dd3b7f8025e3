"""Benchmark: frames per second restoring a 720p clip with one face, and each stage's share.

    python -m benchmarks.bench_video                         # tiny components, 24 frames
    python -m benchmarks.bench_video --size full --frames 3  # the full-size architecture

A 1280x720 clip (H.264 with an AAC track, made with PyAV's encoder) shows a face-like patch
moving across a smooth background. Every frame goes through ``ClipRestorer`` as a user's clip
does: decode, detect, track, align, restore (faces of several frames batched), paste, encode.
The detector is facexlib's RetinaFace ResNet-50 with random weights, run on every frame for its
time; as random weights find nothing meaningful, the face it reports is the synthetic one. The
model has random weights too: the figures are about speed only. Prints frames per second, the
time per stage and its share, and the flicker figure with smoothing on and off. Not a test.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from facexlib.detection.retinaface import RetinaFace

from osdface.faces import FFHQ_TEMPLATE_512, DetectedFace, FaceRestorer, RestoreOptions
from osdface.pipeline.cpu_tuning import apply_memory_format
from osdface.runtime.devices import resolve_device, resolve_dtype
from osdface.testing.clips import make_clip
from osdface.testing.random_weights import random_pipeline
from osdface.video import STAGES, ClipRestorer, VideoOptions, clip_batch_size
from osdface.video.smoothing import OneEuroSettings
from osdface.video.tracking import TrackerSettings

SIZE = (1280, 720)
FACE_WIDTH = 240


@dataclass(frozen=True)
class BenchSettings:
    size: str = "tiny"
    frames: int = 24
    batch_size: int | None = None
    device: str | None = None
    dtype: str | None = None
    jitter: float = 1.5
    seed: int = 0


def face_at(index: int) -> tuple[int, int]:
    """The top-left corner of frame ``index``'s face: it crosses the frame slowly."""
    return 200 + 6 * index, 180 + 2 * index


def draw(index: int, background: np.ndarray, face: np.ndarray) -> np.ndarray:
    frame = background.copy()
    x, y = face_at(index)
    frame[y : y + face.shape[0], x : x + face.shape[1]] = face
    return frame


class TimedSyntheticDetector:
    """Runs RetinaFace (random weights) for its cost; reports the synthetic face, with Gaussian
    landmark noise of ``jitter`` pixels as a real detector's."""

    def __init__(self, device: torch.device, jitter: float, seed: int):
        torch.manual_seed(seed)
        self.model = RetinaFace(network_name="resnet50", half=False, device=device).eval()
        self.jitter = jitter
        self.rng = np.random.default_rng(seed)
        self.index = 0

    def __call__(self, image: np.ndarray) -> list[DetectedFace]:
        with torch.inference_mode():
            self.model.detect_faces(np.ascontiguousarray(image[:, :, ::-1]), 0.97)
        x, y = face_at(self.index)
        self.index += 1
        landmarks = FFHQ_TEMPLATE_512 * (FACE_WIDTH / 512) + [x, y]
        landmarks = landmarks + self.rng.normal(0.0, self.jitter, landmarks.shape)
        box = (x + 0.25 * FACE_WIDTH, y + 0.3 * FACE_WIDTH, x + 0.75 * FACE_WIDTH, y + 0.85 * FACE_WIDTH)
        return [DetectedFace(box=box, landmarks=landmarks, score=0.99)]


def synthetic_clip(folder: Path, frames: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 220, (SIZE[1] // 40, SIZE[0] // 40, 3), dtype=np.uint8)
    background = cv2.resize(small, SIZE, interpolation=cv2.INTER_CUBIC)
    face = cv2.resize(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), (FACE_WIDTH, FACE_WIDTH))
    return make_clip(
        folder / "clip.mp4", frames=frames, size=SIZE, fps=25, draw=lambda i: draw(i, background, face)
    )


def run(settings: BenchSettings) -> None:
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    pipeline = random_pipeline(size=settings.size, seed=settings.seed)
    apply_memory_format(pipeline)
    if (pipeline.device, pipeline.dtype) != (device, dtype):
        pipeline = pipeline.to(device, dtype)
    batch = settings.batch_size or clip_batch_size(device)
    print(
        f"{settings.size} components on {device} ({str(dtype).removeprefix('torch.')}), {torch.get_num_threads()} "
        f"threads; {settings.frames} frames of {SIZE[0]}x{SIZE[1]}, one face, {batch} faces per pipeline call"
    )
    with tempfile.TemporaryDirectory() as folder:
        source = synthetic_clip(Path(folder), settings.frames, settings.seed)
        flicker = {}
        for smooth in (True, False):
            detector = TimedSyntheticDetector(device, settings.jitter, settings.seed)
            options = VideoOptions(
                faces=RestoreOptions(seed=settings.seed, batch_size=batch),
                tracking=TrackerSettings(smoothing=OneEuroSettings(enabled=smooth)),
                resume=False,
            )
            clip = ClipRestorer(FaceRestorer(pipeline, detector, device=device), options)
            started = time.perf_counter()
            result = clip.restore(source, Path(folder) / f"out_{smooth}.mp4")
            seconds = time.perf_counter() - started
            flicker[smooth] = result.flicker
            if smooth:
                spent = sum(result.timings[stage] for stage in STAGES)
                print(
                    f"frames per second: {result.frames / seconds:.3f} ({seconds:.1f} s for {result.frames} frames)"
                )
                for stage in STAGES:
                    share = 100 * result.timings[stage] / spent
                    print(f"  {stage:<8} {result.timings[stage]:8.2f} s  {share:5.1f}%")
        for smooth in (True, False):
            print(f"smoothing {'on ' if smooth else 'off'}: {flicker[smooth].line()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=None, help="default: by device (8 GPU, 2 CPU)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--jitter", type=float, default=1.5, help="landmark noise of the detector (pixels)")
    args = parser.parse_args(argv)
    run(BenchSettings(args.size, args.frames, args.batch_size, args.device, args.dtype, args.jitter))


if __name__ == "__main__":
    main()
