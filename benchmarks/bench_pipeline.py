"""Benchmark: the VRE's size and cost, and per-stage latency of the one-step pipeline.

    python -m benchmarks.bench_pipeline --full-size-random            # real-size architecture, random weights
    python -m benchmarks.bench_pipeline                               # the published weights (downloads)
    python -m benchmarks.bench_pipeline --device cuda --dtype float16 --repeats 20
    python -m benchmarks.bench_pipeline --full-size-random --compare-memory-format 2   # CPU: today vs tuned

Prints the embedder's parameter count and MACs at 512x512 (paper: 28.63 M, 99.47 GMACs), then
median per-stage latency, serialized and (on CUDA) with the VRE and the VAE encoder on two
streams, and the pipeline's own overhead: wall time beyond the timed module forwards. On CPU
also the achieved GFLOP/s per stage as a percent of the machine's measured peak (``benchmarks.cpu_figures``).
float32 against bfloat16 on this CPU: ``benchmarks.bench_dtype``.
The GPU check (fp16/bf16, streams, batches, compile) is ``benchmarks/gpu_check.sh``.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.cpu_figures import compare_memory_formats, print_gflops, stage_flops
from osdface.choices import PIPELINE_STAGES
from osdface.commands.model_options import add_model_arguments
from osdface.pipeline.cpu_tuning import apply_memory_format, check_cpu_dtype
from osdface.pipeline.pipeline_osdface import OSDFacePipeline
from osdface.runtime.devices import dtype_reason, resolve_device, resolve_dtype
from osdface.testing.random_weights import random_pipeline

PAPER_PARAMS_M = 28.63
PAPER_GMACS = 99.47


@dataclass(frozen=True)
class BenchSettings:
    full_size_random: bool = False
    weights: str | None = None
    base_model: str | None = None
    device: str | None = None
    dtype: str | None = None
    batch_size: int = 1
    repeats: int = 3
    warmup: int = 1
    compare_memory_format: int = 0


def embedder_cost(embedder, device, dtype) -> dict[str, float]:
    """Parameters (millions) by part, and GMACs for one 512x512 image (FLOPs / 2, counted by
    torch's FlopCounterMode: convolutions, matmuls, attention)."""

    def count(prefixes):
        return sum(p.numel() for n, p in embedder.named_parameters() if n.startswith(prefixes)) / 1e6

    x = torch.zeros(1, 3, 512, 512, device=device, dtype=dtype)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        embedder(x)
    return {
        "encoder": count(("encoder.", "quant_conv.")),
        "projection": count(("projection.",)),
        "codebook": count(("quantize.",)),
        "gmacs": counter.get_total_flops() / 2 / 1e9,
    }


def time_pipeline(pipe, images, repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds per stage over ``repeats`` runs after ``warmup`` runs."""
    runs = []
    for i in range(warmup + repeats):
        out = pipe(images, generator=torch.Generator().manual_seed(0), output_type="pt")
        if i >= warmup:
            runs.append(out.timings)
    return {stage: statistics.median(run[stage] for run in runs) for stage in runs[0]}


def run(settings: BenchSettings) -> None:
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    if settings.full_size_random:
        pipe, source = random_pipeline("full"), "full-size architecture, random weights"
    else:
        pipe = OSDFacePipeline.from_pretrained(settings.weights, base_model=settings.base_model)
        source = f"weights {pipe._sources.weights} + {pipe._sources.base_model}"
    if settings.full_size_random:  # from_pretrained applies it; random weights get the same
        apply_memory_format(pipe)
    check_cpu_dtype(device, dtype)
    pipe = pipe.to(device, dtype)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"OSDFace benchmark: {source}; {name}, {dtype}, batch {settings.batch_size}, 512x512")
    print(f"dtype: {dtype_reason(settings.dtype, device)}")

    cost = embedder_cost(pipe.embedder, device, dtype)
    print(
        f"VRE parameters: encoder + quant_conv {cost['encoder']:.2f} M (paper {PAPER_PARAMS_M} M); "
        f"projection {cost['projection']:.2f} M; codebook {cost['codebook']:.2f} M"
    )
    print(f"VRE MACs at 512x512: {cost['gmacs']:.2f} G (paper {PAPER_GMACS} G)")

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (512, 512, 3), dtype=np.uint8) for _ in range(settings.batch_size)]
    modes = {"serialized": False}
    if device.type == "cuda":
        modes["parallelized"] = True
    results = {}
    for mode, parallel in modes.items():
        pipe.parallel_streams = parallel
        results[mode] = time_pipeline(pipe, images, settings.repeats, settings.warmup)

    stages = [*PIPELINE_STAGES, "total"]
    print()
    print(f"{'stage (median ms)':<20}" + "".join(f"{mode:>15}" for mode in results))
    for stage in stages:
        print(f"{stage:<20}" + "".join(f"{results[mode][stage] * 1000:>15.1f}" for mode in results))
    serial = results["serialized"]
    modules = sum(serial[s] for s in stages[:-1])
    overhead = serial["total"] - modules
    print(
        f"{'overhead':<20}{overhead * 1000:>15.1f}   ({overhead / serial['total'] * 100:.2f}% of total, serialized)"
    )
    if "parallelized" in results:
        speedup = serial["total"] / results["parallelized"]["total"]
        print(
            f"parallelized / serialized speed-up: {speedup:.3f}x (paper: 119.00 ms -> 102.83 ms, 1.157x on an A6000)"
        )
    else:
        print("parallelized: needs CUDA (two streams); not measured on CPU")
        print_gflops(serial, stage_flops(pipe, images[:1]) if settings.batch_size == 1 else {}, dtype)
    if settings.compare_memory_format:
        compare_memory_formats(pipe, images, settings.compare_memory_format)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--full-size-random", action="store_true", help="real-size architecture with random weights"
    )
    add_model_arguments(parser, revisions=False, facexlib=False)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--compare-memory-format",
        type=int,
        default=0,
        metavar="PAIRS",
        help="also time whole calls with contiguous vs tuned weights, alternating, PAIRS times",
    )
    args = parser.parse_args(argv)
    run(BenchSettings(**{k: v for k, v in vars(args).items()}))


if __name__ == "__main__":
    main()
