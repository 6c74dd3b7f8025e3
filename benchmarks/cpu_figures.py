"""What the pipeline benchmark adds on CPU: operations per stage, achieved GFLOP/s next to the
machine's peak estimate, and the interleaved comparison of memory formats (today's contiguous
weights vs ``osdface.pipeline.cpu_tuning``'s per-module choice).

    python -m benchmarks.bench_pipeline --full-size-random --compare-memory-format 2
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from osdface.pipeline.cpu_tuning import apply_memory_format

# FlopCounterMode's module names -> the pipeline's stage names
_STAGE_MODULES = {
    "vre": "VisualRepresentationEmbedder",
    "vae_encode": "Encoder",
    "unet": "UNet2DConditionModel",
    "vae_decode": "Decoder",
}
_FP32_LANES = (("avx512f", 16), ("avx2", 8), ("avx", 8), ("sse2", 4))
_FMA_UNITS = 2  # per core on Zen 2-4 and on Intel cores since Haswell (server parts)


def stage_flops(pipe, images) -> dict[str, float]:
    """Floating-point operations of each stage of one ``pipe(images)`` call (torch's counter:
    convolutions, matrix products, attention; 2 per multiply-add)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        pipe(images, generator=torch.Generator().manual_seed(0), output_type="pt")
    counts = counter.get_flop_counts()
    return {stage: float(sum(counts.get(name, {}).values())) for stage, name in _STAGE_MODULES.items()}


def _cpuinfo() -> dict[str, str]:
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return {}
    info: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def peak_gflops() -> tuple[float, str]:
    """A float32 peak estimate: cores x FMA units x SIMD lanes x 2 x clock, and how it was made."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    lanes = next((n for flag, n in _FP32_LANES if flag in flags), 1)
    mhz = float(info.get("cpu MHz", "0") or 0)
    cores = torch.get_num_threads()
    peak = cores * _FMA_UNITS * lanes * 2 * mhz / 1000.0
    model = info.get("model name", "unknown CPU")
    how = f"{model}, {cores} threads x {_FMA_UNITS} FMA x {lanes} float32 lanes x 2 x {mhz / 1000:.2f} GHz"
    return peak, how


def print_gflops(timings: dict[str, float], flops: dict[str, float]) -> None:
    peak, how = peak_gflops()
    print(f"\nachieved GFLOP/s per stage (peak estimate {peak:.0f} GFLOP/s: {how})")
    for stage, count in flops.items():
        seconds = timings.get(stage)
        if seconds:
            rate = count / seconds / 1e9
            print(
                f"{stage:<20}{count / 1e9:>10.1f} GFLOP {rate:>8.1f} GFLOP/s  ({100 * rate / peak:.0f}% of peak)"
            )


def compare_memory_formats(pipe, images, pairs: int) -> dict[str, float]:
    """Alternate whole calls with contiguous weights (today) and the tuned formats, ``pairs``
    times after a warm-up of each; print the median seconds, the ratio, the largest output
    difference and whether the VRE tokens are equal."""
    ways = {"contiguous": False, "tuned": None}
    outputs, tokens, times = {}, {}, {name: [] for name in ways}
    lq = torch.from_numpy(images[0]).permute(2, 0, 1)[None].float() / 127.5 - 1.0  # (1, 3, 512, 512)
    for name, choice in ways.items():  # warm-up, outputs compared
        apply_memory_format(pipe, choice)
        outputs[name] = pipe(images, generator=torch.Generator().manual_seed(0), output_type="pt").images
        with torch.no_grad():
            tokens[name] = pipe.embedder(lq.to(pipe.embedder.dtype)).token_indices
    for _ in range(pairs):
        for name, choice in ways.items():
            apply_memory_format(pipe, choice)
            start = time.perf_counter()
            pipe(images, generator=torch.Generator().manual_seed(0), output_type="pt")
            times[name].append(time.perf_counter() - start)
    apply_memory_format(pipe)
    figures = {name: statistics.median(values) for name, values in times.items()}
    difference = (outputs["tuned"] - outputs["contiguous"]).abs().max().item()
    same = torch.equal(tokens["tuned"], tokens["contiguous"])
    print(
        f"\nmemory format, whole calls, median of {pairs} alternating pair(s) ({os.cpu_count()} CPUs): "
        f"contiguous {figures['contiguous']:.2f} s, tuned {figures['tuned']:.2f} s, "
        f"speed-up {figures['contiguous'] / figures['tuned']:.3f}x; max output difference {difference:.2e}; "
        f"tokens equal: {same}"
    )
    return figures
