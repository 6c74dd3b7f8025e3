"""Benchmark: the app's "compare without VRE" on one aligned face, two separate restores (each
encoding the face) vs ``osdface.pipeline.without_vre`` (one encoding, both conditions after it).

    python -m benchmarks.bench_without_vre                    # full-size architecture, random weights
    python -m benchmarks.bench_without_vre --size tiny --pairs 3

Runs each way once untimed (warm-up; floating-point operations counted by torch's
FlopCounterMode; images compared), then alternates the two ``--pairs`` times, and prints the medians, the ratio and whether the images are equal.
Random weights: the figures are about cost only. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from osdface.faces import FaceRestorer, RestoreOptions
from osdface.pipeline.without_vre import restore_with_and_without_vre
from osdface.testing.random_weights import TINY_TEXT_CONFIG, random_pipeline, write_tiny_tokenizer

PROMPT = ""


def _add_text_encoder(pipeline) -> None:
    """A random one-layer CLIP text encoder and a byte-level tokenizer (no download)."""
    with tempfile.TemporaryDirectory() as folder:
        write_tiny_tokenizer(Path(folder))
        tokenizer = CLIPTokenizer.from_pretrained(folder)
    vocab = len(tokenizer)
    # One layer of SD 2.1's width for both sizes: the text encoder costs the same in both ways
    # (under 2% of a call at full size), and its 23 real layers would need 1.4 GB more memory.
    shape = TINY_TEXT_CONFIG
    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=vocab, bos_token_id=vocab - 2, eos_token_id=vocab - 1, **shape)
    encoder = CLIPTextModel(config).eval().requires_grad_(False)
    pipeline.register_modules(text_encoder=encoder, tokenizer=tokenizer)


def _ways(restorer: FaceRestorer, face: np.ndarray, batch_conditions: bool):
    def separate():
        return restorer.restore(face), restorer.restore(face, prompt=PROMPT)

    def shared():
        return restore_with_and_without_vre(restorer, face, None, PROMPT, batch_conditions=batch_conditions)

    return {"separate": separate, "encode once": shared}


def run(size: str, pairs: int, batch_conditions: bool) -> dict[str, float]:
    pipeline = random_pipeline(size)
    _add_text_encoder(pipeline)
    restorer = FaceRestorer(pipeline, detector=lambda image: [], options=RestoreOptions(aligned=True, seed=0))
    face = np.asarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3)), dtype=np.uint8)
    ways = _ways(restorer, face, batch_conditions)
    results, flops = {}, {}
    for name, way in ways.items():  # untimed: warm-up, operation count, the images compared
        with FlopCounterMode(display=False) as counter:
            results[name] = way()
        flops[name] = counter.get_total_flops()
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(pairs):
        for name, way in ways.items():
            start = time.perf_counter()
            way()
            times[name].append(time.perf_counter() - start)
    equal = all(
        np.array_equal(np.asarray(a.image), np.asarray(b.image))
        for a, b in zip(results["separate"], results["encode once"])
    )
    figures = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"with + without VRE on one 512 face, {size} architecture (random weights), CPU "
        f"{torch.get_num_threads()} threads, batch_conditions={batch_conditions}; median of {pairs} alternating pair(s)"
    )
    for name in ways:
        print(f"{name:>12}: {figures[name]:8.2f} s, {flops[name] / 1e12:.3f} TFLOP")
    print(
        f"time ratio separate / encode once: {figures['separate'] / figures['encode once']:.3f}x; "
        f"operations {100 * (1 - flops['encode once'] / flops['separate']):.1f}% fewer; images equal: {equal}"
    )
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("tiny", "full"), default="full")
    parser.add_argument("--pairs", type=int, default=2, help="alternating timed pairs (default: 2)")
    parser.add_argument(
        "--batch-conditions", action="store_true", help="run both conditions as one batch (the CUDA default)"
    )
    args = parser.parse_args(argv)
    run(args.size, args.pairs, args.batch_conditions)


if __name__ == "__main__":
    main()
