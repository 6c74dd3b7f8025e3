"""Benchmark of the degradations: ``python -m benchmarks.bench_turbulence [--size 512] [--repeats 5]``.

Prints, per device (CPU; CUDA when available) and propagation length, the first call on a fresh
process state (set-up of every cached table plus one frame) and the time per frame afterwards for
one RGB frame, plus the classic degradation for comparison. Speed is reported, not asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from osdface.degradations.classic import classic_degradation
from osdface.degradations.turbulence import (
    TurbulenceParams,
    clear_caches,
    describe,
    sample_tilt_fields,
    simulate_turbulence,
)
from osdface.degradations.warp import warp_grid_sample, warp_remap


@dataclass(frozen=True)
class BenchSettings:
    size: int = 512
    repeats: int = 5
    lengths: tuple[float, ...] = (20_000.0, 30_000.0, 40_000.0)
    cuda: bool = True


@dataclass(frozen=True)
class Timing:
    first_s: float
    mean_s: float
    min_s: float
    cpu_s: float  # process CPU time per frame (all threads), a load-independent cost figure


def _test_image(size: int) -> np.ndarray:
    """(size, size, 3) uint8 RGB with edges and texture at several scales (deterministic)."""
    y, x = np.mgrid[0:size, 0:size] / size
    rings = 0.5 + 0.5 * np.cos(60.0 * np.hypot(x - 0.5, y - 0.5) ** 1.5)
    checks = ((np.floor(x * 16) + np.floor(y * 16)) % 2).astype(np.float64)
    noise = np.random.default_rng(0).random((size, size))
    rgb = np.stack([rings, 0.6 * checks + 0.4 * noise, 0.5 * rings + 0.5 * checks], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


def _time(call: Callable[[int], object], repeats: int, sync: Callable[[], None]) -> Timing:
    start = time.perf_counter()
    call(0)
    sync()
    first = time.perf_counter() - start
    walls = []
    cpu_start = time.process_time()
    for seed in range(1, repeats + 1):
        start = time.perf_counter()
        call(seed)
        sync()
        walls.append(time.perf_counter() - start)
    cpu = (time.process_time() - cpu_start) / repeats
    return Timing(first, float(np.mean(walls)), float(np.min(walls)), cpu)


@dataclass(frozen=True)
class WarpComparison:
    grid_sample_s: float
    remap_s: float
    difference: float  # max |remap - grid_sample|, both float32, in [0, 1] units
    # max distance of each from the float64 grid_sample of the same frame and shifts: the exact
    # sampling, up to float32 rounding of the coordinates, which both share
    remap_error: float
    grid_sample_error: float


def warp_comparison(size: int, repeats: int) -> WarpComparison:
    """Median seconds per 512 RGB warp of ``grid_sample`` and ``cv2.remap`` on CPU, timed in
    alternation (so that load on the machine falls on both), their max difference, and each
    one's distance from a float64 reference."""
    frame = torch.from_numpy(_test_image(size)).permute(2, 0, 1).float() / 255.0  # (3, H, W) in [0, 1]
    shift_x, shift_y = sample_tilt_fields(TurbulenceParams(propagation_length=40_000.0), size, size, 1)
    shift_x, shift_y = shift_x[0], shift_y[0]
    times: dict[str, list[float]] = {"grid_sample": [], "remap": []}
    for _ in range(repeats):
        for name, function in (("grid_sample", warp_grid_sample), ("remap", warp_remap)):
            start = time.perf_counter()
            function(frame, shift_x, shift_y)
            times[name].append(time.perf_counter() - start)
    fast = warp_remap(frame, shift_x, shift_y).double()
    reference = warp_grid_sample(frame, shift_x, shift_y).double()
    exact = warp_grid_sample(frame.double(), shift_x.double(), shift_y.double())
    return WarpComparison(
        grid_sample_s=float(np.median(times["grid_sample"])),
        remap_s=float(np.median(times["remap"])),
        difference=float((fast - reference).abs().max()),
        remap_error=float((fast - exact).abs().max()),
        grid_sample_error=float((reference - exact).abs().max()),
    )


def run(settings: BenchSettings) -> list[tuple[str, str, Timing]]:
    image = _test_image(settings.size)
    devices: list[tuple[str, object, Callable[[], None]]] = [("cpu", image, lambda: None)]
    if settings.cuda and torch.cuda.is_available():
        devices.append(("cuda", torch.from_numpy(image).cuda(), torch.cuda.synchronize))
    rows = []
    for device, frame, sync in devices:
        for length in settings.lengths:
            params = TurbulenceParams(propagation_length=length)
            clear_caches()
            timing = _time(
                lambda seed, p=params, f=frame: simulate_turbulence(f, p, seed=seed), settings.repeats, sync
            )
            rows.append((device, f"turbulence L={length / 1000:g} km", timing))
    timing = _time(lambda seed: classic_degradation(image, seed=seed), settings.repeats, lambda: None)
    rows.append(("cpu", "classic (sigma 3, x4, noise 10, JPEG 60)", timing))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_turbulence", description=__doc__)
    parser.add_argument("--size", type=int, default=BenchSettings.size, help="image side in pixels")
    parser.add_argument(
        "--repeats", type=int, default=BenchSettings.repeats, help="frames timed after the first"
    )
    parser.add_argument(
        "--lengths",
        type=float,
        nargs="+",
        default=list(BenchSettings.lengths),
        help="propagation lengths (m)",
    )
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA rows")
    args = parser.parse_args(argv)
    settings = BenchSettings(
        size=args.size, repeats=args.repeats, lengths=tuple(args.lengths), cuda=not args.no_cuda
    )

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), load average {load:.2f} at start"
    )
    if torch.cuda.is_available() and settings.cuda:
        print(f"CUDA: {torch.cuda.get_device_name()}")
    for length in settings.lengths:
        info = describe(TurbulenceParams(propagation_length=length), settings.size, settings.size)
        print(
            f"L={length / 1000:g} km: D/r0 {info['d_over_r0']:.2f}, tilt std {info['tilt_std_px']:.2f} px, "
            f"{info['pixels_per_lambda_over_d']:.2f} px per lambda/D, {info['nodes']} PSF nodes every "
            f"{info['node_spacing_px']} px, PSF {info['psf_size_px']}x{info['psf_size_px']} px, "
            f"FFT patch {info['patch_px']} px"
        )
    print()
    print(f"{settings.size}x{settings.size} RGB, {settings.repeats} frames after the first")
    header = f"{'device':6} | {'degradation':42} | {'first call':>10} | {'per frame':>9} | {'best':>7} | {'CPU time':>8}"
    print(header)
    print("-" * len(header))
    for device, name, t in run(settings):
        print(
            f"{device:6} | {name:42} | {t.first_s:9.3f}s | {t.mean_s:8.3f}s | {t.min_s:6.3f}s | {t.cpu_s:7.3f}s"
        )
    c = warp_comparison(settings.size, max(settings.repeats, 5))
    print(
        f"\ntilt warp on CPU, {settings.size}x{settings.size} RGB (median, alternating): grid_sample "
        f"{c.grid_sample_s * 1000:.1f} ms, cv2.remap {c.remap_s * 1000:.1f} ms "
        f"({c.grid_sample_s / c.remap_s:.1f}x); max difference {c.difference * 255:.4f}/255; "
        f"from the float64 warp: cv2.remap {c.remap_error * 255:.4f}/255, "
        f"grid_sample {c.grid_sample_error * 255:.4f}/255"
    )
    print(
        "\nfirst call = set-up of all cached tables (cold) + one frame; CPU time = process CPU per frame, all threads"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
