"""Benchmark: time per 512x512 face of each other restorer next to OSDFace's, in one run.

    python -m benchmarks.bench_restorers                    # every method, 2 faces, 1 timed round
    python -m benchmarks.bench_restorers --faces 1 --restorers gfpgan,restoreformer

Every model is its full release architecture with random weights (OSDFace:
``osdface.testing.random_weights.random_pipeline("full")``; restorers: ``osdface.testing.random_restorers``, loaded
through spandrel like the release files), so the figures are about speed only. Each method
restores the same ``--faces`` aligned faces in one batched call; after an untimed warm-up of
each, the methods are timed in interleaved rounds (OSDFace, then each restorer, then again), and
the median per face is printed with its ratio to OSDFace. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image

from osdface.restorers.loading import OSDFaceModel, SpandrelFaceModel
from osdface.restorers.specs import RESTORERS, parse_restorers
from osdface.runtime.devices import resolve_device
from osdface.testing.random_restorers import build_face_model
from osdface.testing.random_weights import random_pipeline


def random_faces(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)) for _ in range(count)]


def build_models(methods: tuple[str, ...], device: torch.device) -> dict[str, object]:
    models: dict[str, object] = {"osdface": OSDFaceModel(random_pipeline(size="full").to(device))}
    for key in methods:
        state = build_face_model(key).state_dict()
        models[key] = SpandrelFaceModel.from_state_dict(RESTORERS[key], state, batch_size=8).to(device)
    return models


def run(methods: tuple[str, ...], faces: int, rounds: int, device: torch.device) -> dict[str, float]:
    models = build_models(methods, device)
    crops = random_faces(faces)

    def once(model) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        tick = time.perf_counter()
        model.restore(crops, seed=0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - tick) / faces

    for model in models.values():  # warm-up: first-call allocations and caches
        once(model)
    times: dict[str, list[float]] = {key: [] for key in models}
    for _ in range(rounds):
        for key, model in models.items():
            times[key].append(once(model))
    per_face = {key: statistics.median(values) for key, values in times.items()}
    threads = torch.get_num_threads()
    print(
        f"device: {device} ({threads} threads), float32, random weights at release sizes; "
        f"{faces} face(s) of 512x512 per call, median of {rounds} interleaved round(s) after a warm-up"
    )
    for key, seconds in per_face.items():
        label = "OSDFace (full size)" if key == "osdface" else RESTORERS[key].label
        ratio = "" if key == "osdface" else f"   ({seconds / per_face['osdface']:.3f}x OSDFace)"
        print(f"{label:<22} {seconds:8.3f} s per face{ratio}")
    return per_face


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--restorers", default=",".join(RESTORERS), help="restorers to time (default: all)")
    parser.add_argument("--faces", type=int, default=2, help="faces per call (default: 2)")
    parser.add_argument("--rounds", type=int, default=1, help="timed interleaved rounds (default: 1)")
    parser.add_argument("--device", default=None, help="default: cuda, else mps (Apple GPU), else cpu")
    args = parser.parse_args(argv)
    if args.faces < 1 or args.rounds < 1:
        parser.error("--faces and --rounds must be at least 1")
    device = resolve_device(args.device)
    run(parse_restorers(args.restorers), args.faces, args.rounds, device)


if __name__ == "__main__":
    main()
