"""The GPU check's video line: frames per second restoring a 1280x720 clip with one face, the
faces of several frames batched into one pipeline call, through ``ClipRestorer`` (decode, track,
align, restore, paste, encode), on the pipeline the check has already moved to the GPU.

The detector is a stand-in that reports the synthetic face (RetinaFace with random weights finds
nothing meaningful), so the figure leaves detection out. Imported by ``gpu_check`` only when
PyAV and facexlib are installed (the bare GPU machine may lack them; the row then says so).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_video import FACE_WIDTH, face_at, synthetic_clip
from osdface.faces import FFHQ_TEMPLATE_512, DetectedFace, FaceRestorer, RestoreOptions
from osdface.video import ClipRestorer, VideoOptions

FRAMES = 48
BATCH = 8


def synthetic_detector():
    index = 0

    def detect(image: np.ndarray) -> list[DetectedFace]:
        nonlocal index
        x, y = face_at(index)
        index += 1
        landmarks = FFHQ_TEMPLATE_512 * (FACE_WIDTH / 512) + [x, y]
        box = (x + 0.25 * FACE_WIDTH, y + 0.3 * FACE_WIDTH, x + 0.75 * FACE_WIDTH, y + 0.85 * FACE_WIDTH)
        return [DetectedFace(box=box, landmarks=landmarks, score=0.99)]

    return detect


def frames_per_second(pipe, frames: int = FRAMES, batch: int = BATCH) -> tuple[float, str]:
    """(frames per second, a note with the time per stage) for one warm-up clip then one timed."""
    with tempfile.TemporaryDirectory() as folder:
        source = synthetic_clip(Path(folder), frames, seed=0)
        options = VideoOptions(faces=RestoreOptions(seed=0, batch_size=batch), resume=False)
        clip = ClipRestorer(FaceRestorer(pipe, synthetic_detector(), device="cpu"), options)
        clip.restore(source, Path(folder) / "warmup.mp4")
        clip = ClipRestorer(FaceRestorer(pipe, synthetic_detector(), device="cpu"), options)
        started = time.perf_counter()
        result = clip.restore(source, Path(folder) / "out.mp4")
        seconds = time.perf_counter() - started
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items() if k != "total")
    return result.frames / seconds, f"video 1280x720, {result.frames} frames, 1 face: {stages}"
