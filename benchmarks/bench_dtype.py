"""Benchmark: float32 against bfloat16 on this CPU, and which one the default picks and why.

    python -m benchmarks.bench_dtype                        # tiny architecture: a quick run (seconds)
    python -m benchmarks.bench_dtype --size full --pairs 1  # the real-size architecture, random weights
    python -m benchmarks.bench_dtype --metrics-dir DIR      # LPIPS too, from its real weights in DIR

Prints the processor, whether oneDNN computes bfloat16 natively there, the dtype the default
picks (``osdface.runtime.devices``) and why, and the CPU's float32 peak (measured and
theoretical, ``benchmarks.cpu_figures``). Then whole calls on the same face alternate float32
and bfloat16 (``--pairs`` times after a warm-up of each; the VRE in float32 in both, as always):
the median seconds per face of each, the ratio, and whether the default's choice agrees with
this measurement. Last, how far the bfloat16 output is from the float32 one: PSNR and SSIM (on
Y, as in the quality tables), LPIPS where its weights are found locally (``--metrics-dir``,
``OSDFACE_METRICS_DIR`` or the Hub cache: random weights would make it meaningless, so nothing
is downloaded), the mean and largest absolute difference (0-1 scale) and whether the VRE chose
the same tokens. The face is ``examples/astronaut_aligned_classic.jpg``. Random weights: real
ones may differ more or less. Not a test: nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.cpu_figures import peak_gflops, processor_line
from osdface.images.reading import load_image
from osdface.pipeline.cpu_tuning import apply_memory_format
from osdface.quality.catalog import METRICS
from osdface.quality.meter import QualityMeter
from osdface.quality.pixels import psnr, ssim
from osdface.quality.weights import MetricWeights
from osdface.runtime import devices
from osdface.testing.random_weights import random_pipeline

FACE = Path(__file__).resolve().parent.parent / "examples" / "astronaut_aligned_classic.jpg"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class DtypeSettings:
    size: str = "tiny"  # "tiny" or "full" (the real architecture), random weights either way
    pairs: int = 2  # timed float32/bfloat16 pairs after the warm-up
    faces: int = 1  # copies of the face per call
    metrics_dir: Path | None = None  # where LPIPS's weight files are


@dataclass(frozen=True)
class Difference:
    """How far the bfloat16 outputs are from the float32 ones (means over the faces)."""

    psnr: float  # dB on Y, uint8 images; inf when equal
    ssim: float
    lpips: float | None  # None: its weights were not found (``lpips_note`` says why)
    lpips_note: str
    mean_abs: float  # 0-1 scale
    max_abs: float
    tokens_equal: bool

    def line(self) -> str:
        lpips = (
            f"LPIPS {self.lpips:.4f}" if self.lpips is not None else f"LPIPS not measured ({self.lpips_note})"
        )
        return (
            f"bfloat16 against float32 outputs: PSNR {self.psnr:.2f} dB, SSIM {self.ssim:.4f}, {lpips}; "
            f"mean |difference| {self.mean_abs:.4f}, max {self.max_abs:.4f} (0-1 scale); "
            f"VRE tokens equal: {'yes' if self.tokens_equal else 'no'}"
        )


def as_uint8(images: torch.Tensor) -> list[np.ndarray]:
    """(B, 3, H, W) float in 0..1 -> B (H, W, 3) RGB uint8 images, rounded as the PNGs are."""
    scaled = (images.float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return list(scaled.permute(0, 2, 3, 1).numpy())


def lpips_meter(metrics_dir: Path | None) -> tuple[QualityMeter | None, str]:
    """A meter scoring LPIPS from local files only, or None and why not."""
    weights = MetricWeights.from_env(offline=True, **({"local_dir": metrics_dir} if metrics_dir else {}))
    meter = QualityMeter(["lpips"], weights=weights).load()
    if "lpips" in meter.unavailable:
        reason = meter.unavailable["lpips"]
        if "is not available" in reason:  # the usual case: say where it looked, briefly
            files = " and ".join(METRICS["lpips"].files)
            return None, f"{files} not in --metrics-dir, OSDFACE_METRICS_DIR or the Hub cache"
        return None, reason.splitlines()[0]
    return meter, ""


def difference(
    reference: torch.Tensor,
    other: torch.Tensor,
    tokens_equal: bool,
    meter: QualityMeter | None = None,
    note: str = "",
) -> Difference:
    """``other`` (bfloat16's outputs) against ``reference`` (float32's), (B, 3, H, W) in 0..1."""
    pairs = list(zip(as_uint8(other), as_uint8(reference)))
    lpips = statistics.mean(meter.score(a, b)["lpips"] for a, b in pairs) if meter is not None else None
    gap = (other.float() - reference.float()).abs()
    return Difference(
        psnr=statistics.mean(psnr(a, b) for a, b in pairs),
        ssim=statistics.mean(ssim(a, b) for a, b in pairs),
        lpips=lpips,
        lpips_note=note,
        mean_abs=gap.mean().item(),
        max_abs=gap.max().item(),
        tokens_equal=tokens_equal,
    )


def outputs_and_tokens(pipe, images: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """One call's outputs (B, 3, H, W) in 0..1 and the VRE's tokens."""
    seen = []
    handle = pipe.embedder.register_forward_hook(lambda module, args, out: seen.append(out.token_indices))
    try:
        out = pipe(images, generator=torch.Generator().manual_seed(0), output_type="pt").images
    finally:
        handle.remove()
    return out.float(), seen[0]


def dtype_pipelines(size: str) -> dict[str, object]:
    """The same random pipeline (built twice from one seed) in float32 and in bfloat16 (its VRE
    in float32), both in the package's memory formats."""
    pipes = {}
    for name, dtype in DTYPES.items():
        pipe = random_pipeline(size, seed=0)
        apply_memory_format(pipe)  # from_pretrained applies it; random weights get the same
        pipes[name] = pipe.to("cpu", dtype)
    return pipes


def time_interleaved(pipes: dict[str, object], images: list[np.ndarray], pairs: int) -> dict[str, float]:
    """Median seconds per call of each pipeline, alternating them ``pairs`` times (the order
    flips every pair, so a machine slowing down or speeding up favours neither)."""
    times: dict[str, list[float]] = {name: [] for name in pipes}
    for pair in range(pairs):
        for name in list(pipes)[:: 1 if pair % 2 == 0 else -1]:
            start = time.perf_counter()
            pipes[name](images, generator=torch.Generator().manual_seed(0), output_type="pt")
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def verdict(seconds: dict[str, float], default: torch.dtype) -> str:
    """Whether the default's dtype is the faster one measured here."""
    faster = "bfloat16" if seconds["bfloat16"] < seconds["float32"] else "float32"
    agrees = "agrees" if DTYPES[faster] == default else "DISAGREES"
    return f"faster here: {faster}, which {agrees} with the default ({devices.dtype_name(default)})"


def run(settings: DtypeSettings) -> tuple[dict[str, float], Difference]:
    default = devices.resolve_dtype(None, "cpu")
    print(processor_line(precision="float32 and bfloat16"))
    print(f"oneDNN computes bfloat16 natively: {'yes' if devices.native_bfloat16() else 'no'}")
    print(f"default dtype: {devices.default_dtype_reason('cpu')}")
    print(peak_gflops().line())
    pipes = dtype_pipelines(settings.size)
    images = [load_image(FACE)] * settings.faces
    warm = {name: outputs_and_tokens(pipe, images) for name, pipe in pipes.items()}  # warm-up
    per_call = time_interleaved(pipes, images, settings.pairs)
    seconds = {name: value / settings.faces for name, value in per_call.items()}
    print(
        f"\nfloat32 against bfloat16, {settings.size} architecture (random weights), {FACE.name}, "
        f"{settings.faces} face(s) per call, median of {settings.pairs} interleaved pair(s), VRE float32 in both:"
    )
    ratio = seconds["bfloat16"] / seconds["float32"]
    print(
        f"float32 {seconds['float32']:.2f} s, bfloat16 {seconds['bfloat16']:.2f} s per 512 face: "
        f"bfloat16 takes {ratio:.2f}x the time of float32 ({_speed(ratio)}); {verdict(seconds, default)}"
    )
    meter, note = lpips_meter(settings.metrics_dir)
    tokens_equal = torch.equal(warm["float32"][1], warm["bfloat16"][1])
    diff = difference(warm["float32"][0], warm["bfloat16"][0], tokens_equal, meter, note)
    print(diff.line())
    return seconds, diff


def _speed(ratio: float) -> str:
    if math.isclose(ratio, 1.0, abs_tol=0.005):
        return "the same"
    return f"{1 / ratio:.2f}x faster" if ratio < 1 else f"{ratio:.2f}x slower"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", choices=("tiny", "full"), default="tiny", help="architecture (default: tiny)"
    )
    parser.add_argument("--pairs", type=int, default=2, help="timed float32/bfloat16 pairs (default: 2)")
    parser.add_argument("--faces", type=int, default=1, help="faces per call (default: 1)")
    parser.add_argument("--metrics-dir", type=Path, help="folder holding LPIPS's weight files")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.faces < 1:
        parser.error("--pairs and --faces must be at least 1")
    run(DtypeSettings(**vars(args)))


if __name__ == "__main__":
    main()
