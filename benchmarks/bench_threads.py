"""Benchmark: how many CPU threads each pipeline stage runs fastest with.

    python -m benchmarks.bench_threads                   # full-size architecture, random weights
    python -m benchmarks.bench_threads --size tiny --pairs 1

Times whole pipeline calls (the pipeline's own per-stage clock: VRE, VAE encoder, UNet, VAE
decoder) at each thread count, alternating the counts ``--pairs`` times after one untimed
warm-up each, with ``osdface.pipeline.cpu_tuning``'s memory formats; prints the median seconds per stage
and count, and the fastest count per stage. ``torch.set_num_threads`` is process-wide, so a
per-stage choice could only be applied by switching it around each module's forward, which
would race between concurrent requests in the app: the table tells whether that is worth it
(on the project's 2-core machine it is not; see ``osdface.pipeline.cpu_tuning``). Random weights: the
figures are about cost only. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from osdface.choices import PIPELINE_STAGES
from osdface.pipeline.cpu_tuning import apply_memory_format
from osdface.testing.random_weights import random_pipeline

STAGES = (*PIPELINE_STAGES, "total")


def run(size: str, pairs: int, counts: list[int] | None = None) -> dict[int, dict[str, float]]:
    """Median seconds per stage for each thread count: ``{threads: {stage: seconds}}``."""
    default = torch.get_num_threads()
    counts = sorted(set(counts or (1, default)))
    pipe = random_pipeline(size)
    apply_memory_format(pipe)
    image = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)

    def call(threads: int) -> dict[str, float]:
        torch.set_num_threads(threads)
        return pipe([image], generator=torch.Generator().manual_seed(0), output_type="pt").timings

    runs: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
    try:
        for n in counts:
            call(n)  # warm-up
        for _ in range(pairs):
            for n in counts:
                runs[n].append(call(n))
    finally:
        torch.set_num_threads(default)
    medians = {n: {s: statistics.median(r[s] for r in runs[n]) for s in STAGES} for n in counts}
    print(
        f"threads per stage, {size} architecture (random weights), float32, 512x512, "
        f"default {default} threads; median of {pairs} alternating round(s)"
    )
    print(f"{'stage (s)':<12}" + "".join(f"{f'{n} thr':>10}" for n in counts) + "   fastest")
    for stage in STAGES:
        best = min(counts, key=lambda n: medians[n][stage])
        ratio = medians[default][stage] / medians[best][stage] if best != default else 1.0
        note = "default" if best == default else f"{best} thr, {ratio:.2f}x faster than default"
        print(f"{stage:<12}" + "".join(f"{medians[n][stage]:>10.3f}" for n in counts) + f"   {note}")
    return medians


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("tiny", "full"), default="full")
    parser.add_argument("--pairs", type=int, default=2, help="alternating timed rounds (default: 2)")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=None, help="thread counts (default: 1 and torch's default)"
    )
    args = parser.parse_args(argv)
    run(args.size, args.pairs, args.threads)


if __name__ == "__main__":
    main()
