"""What the pipeline benchmark adds on CPU: operations per stage, achieved GFLOP/s as a percent
of the machine's peak, and the interleaved comparison of memory formats (today's contiguous
weights vs ``osdface.pipeline.cpu_tuning``'s per-module choice).

The peak that "percent of peak" uses is measured: the best of a few dense 2048x2048 matrix
products on torch's threads. The theoretical figure printed beside it counts the lanes each FMA
unit executes (a Zen 4 runs 512-bit instructions as two 256-bit halves: 8 float32 lanes, as
with AVX2) at the clock /proc/cpuinfo reports, which is the nominal one: a CPU boosting above it
can beat that "peak" (the VAE decoder measured 168 GFLOP/s on a Zen 4 whose figure read 166).

    python -m benchmarks.bench_pipeline --full-size-random --compare-memory-format 2
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from osdface.pipeline.cpu_tuning import apply_memory_format
from osdface.runtime import devices
from osdface.runtime.devices import dtype_name

# FlopCounterMode's module names -> the pipeline's stage names
_STAGE_MODULES = {
    "vre": "VisualRepresentationEmbedder",
    "vae_encode": "Encoder",
    "unet": "UNet2DConditionModel",
    "vae_decode": "Decoder",
}
# /proc/cpuinfo flag -> float32 lanes of one vector instruction, the widest first
_FP32_LANES = (("avx512f", 16), ("avx2", 8), ("avx", 8), ("sse2", 4))
_FMA_UNITS = 2  # per core on Zen 2-5 and on Intel cores since Haswell (server parts)
# AMD families whose FMA units are 256 bits wide: Zen 4 (family 25 = 0x19, avx512f) runs each
# 512-bit instruction as two 256-bit halves, so its float32 lanes per FMA per cycle stay 8.
_AMD_256_BIT_FAMILIES = ("23", "25")  # Zen 1-2, Zen 3-4
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
PEAK_SIZE = 2048  # the matrix product that measures the peak: 17 GFLOP, ~0.1 s on 2 Zen 3 cores
PEAK_RUNS = 5


@dataclass(frozen=True)
class Peak:
    """A CPU's peak in GFLOP/s: ``measured`` (a dense matrix product in ``dtype``; "percent of
    peak" uses it) and ``theoretical`` (cores x FMA units x lanes as executed x 2 x the nominal
    clock; the clock it runs at may differ, so it is no ceiling), with how each was made."""

    dtype: torch.dtype
    measured: float
    measured_how: str
    theoretical: float
    theoretical_how: str

    def line(self) -> str:
        text = (
            f"peak: measured {self.measured:.0f} GFLOP/s ({self.measured_how}); "
            f"theoretical {self.theoretical:.0f} GFLOP/s ({self.theoretical_how})"
        )
        if self.dtype == torch.float32 and self.measured > self.theoretical > 0:
            text += "; the measured peak is above it: the cores run faster than the nominal clock"
        return text


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


def processor_line(precision: str = "float32") -> str:
    """``lscpu``'s model name and CPU count, whether it has the flags that matter to torch's
    float32 and bfloat16 kernels, and torch's thread count."""
    fields: dict[str, str] = {}
    lscpu = shutil.which("lscpu")
    if lscpu is not None:
        output = subprocess.run([lscpu], capture_output=True, text=True, check=False).stdout
        for line in output.splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("Flags", "").split())
    found = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in FLAGS)
    return (
        f"processor: {fields.get('Model name', 'unknown (no lscpu)')}, {fields.get('CPU(s)', '?')} CPUs; "
        f"{found}; torch {torch.__version__.split('+')[0]}, {torch.get_num_threads()} threads, {precision}"
    )


def measured_peak(dtype: torch.dtype = torch.float32, size: int = PEAK_SIZE, runs: int = PEAK_RUNS) -> float:
    """GFLOP/s of the fastest of ``runs`` (size x size) @ (size x size) products in ``dtype``
    after one warm-up, on torch's threads: what this machine's BLAS reaches on dense work."""
    a, b = (torch.randn(size, size, generator=torch.Generator().manual_seed(i)).to(dtype) for i in (0, 1))
    torch.mm(a, b)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def theoretical_peak() -> tuple[float, str]:
    """cores x FMA units x float32 lanes as executed x 2 x nominal clock, and how it was made."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    lanes = next((n for flag, n in _FP32_LANES if flag in flags), 1)
    executed = lanes
    if info.get("vendor_id") == "AuthenticAMD" and info.get("cpu family") in _AMD_256_BIT_FAMILIES:
        executed = min(lanes, 8)
    mhz = float(info.get("cpu MHz", "0") or 0)
    cores = torch.get_num_threads()
    peak = cores * _FMA_UNITS * executed * 2 * mhz / 1000.0
    halves = " (512-bit instructions run as two 256-bit halves)" if executed < lanes else ""
    how = (
        f"{info.get('model name', 'unknown CPU')}, {cores} threads x {_FMA_UNITS} FMA x {executed} float32 "
        f"lanes as executed{halves} x 2 x {mhz / 1000:.2f} GHz nominal clock"
    )
    return peak, how


def peak_gflops(dtype: torch.dtype = torch.float32, size: int = PEAK_SIZE) -> Peak:
    """The measured peak in ``dtype`` (float32 unless the CPU computes bfloat16 natively: an
    emulated bfloat16 product of this size takes minutes) and the theoretical float32 one."""
    if not (dtype == torch.bfloat16 and devices.native_bfloat16()):
        dtype = torch.float32
    measured = measured_peak(dtype, size)
    how = f"{dtype_name(dtype)} {size}x{size} matrix product, best of {PEAK_RUNS}, {torch.get_num_threads()} threads"
    return Peak(dtype, measured, how, *theoretical_peak())


def print_gflops(
    timings: dict[str, float], flops: dict[str, float], dtype: torch.dtype = torch.float32
) -> Peak:
    """Each stage's GFLOP/s and its percent of the measured peak (in ``dtype`` where it is
    float32 or native bfloat16, else float32's)."""
    peak = peak_gflops(dtype)
    dtype = peak.dtype
    print(f"\n{peak.line()}")
    print(f"achieved GFLOP/s per stage (percent of the measured {dtype_name(dtype)} peak)")
    for stage, count in flops.items():
        seconds = timings.get(stage)
        if seconds:
            rate = count / seconds / 1e9
            print(
                f"{stage:<20}{count / 1e9:>10.1f} GFLOP {rate:>8.1f} GFLOP/s  ({100 * rate / peak.measured:.0f}% of peak)"
            )
    return peak


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
