"""The GPU check: every CUDA path of the pipeline, on the full-size architecture with random
weights, timed and compared with CPU float32. Run it through ``benchmarks/gpu_check.sh``.

    python benchmarks/gpu_check.py                       # CUDA: float16 and bfloat16 ...
    python benchmarks/gpu_check.py --compile             # ... plus torch.compile of UNet and VAE
    python benchmarks/gpu_check.py --device cpu --tiny   # the CPU rehearsal (tiny architecture)

Per dtype (CUDA: float16, bfloat16; CPU: float32, bfloat16): the output and VRE tokens of one
face against CPU float32 (max difference, tokens equal); median ms per face, faces/s and peak
memory at batch 1 serialized and on two streams, at batch 4 and 16 on two streams (CPU: 1 and
2, bfloat16 1 only, serialized: streams are CUDA's); per-stage times (CUDA events) at batch 1; the first dtype
also with contiguous weights (not channels_last). Timed calls run with ``record_timings`` off,
so nothing synchronises inside them. Writes ``gpu_check.md`` (a Markdown table headed by the
device) and ``gpu_check.json`` to ``--out``; exits 1 if any path raised or gave non-finite
values (each failure is printed with its traceback and listed in the table).

Imports only torch, diffusers, transformers and the package's model modules: no facexlib,
gradio or spaces, which the GPU machine lacks.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import diffusers
import numpy as np
import torch

from osdface.pipeline.cpu_tuning import apply_memory_format
from osdface.runtime.cuda_diagnosis import PINNED_TORCH, PINNED_TORCH_CUDA
from osdface.runtime.devices import dtype_name
from osdface.testing.random_weights import random_pipeline


@dataclass(frozen=True)
class CheckSettings:
    device: str = "cuda"
    tiny: bool = False
    compile: bool = False
    compile_mode: str | None = None
    out: Path = Path("gpu_check_out")
    repeats: int = 10
    warmup: int = 3
    batches: tuple[int, ...] = (1, 4, 16)


@dataclass
class Row:
    path: str
    dtype: str
    batch: int
    streams: str
    ms_per_face: float | None = None
    faces_per_s: float | None = None
    peak_mib: float | None = None
    max_diff: float | None = None
    tokens_equal: str | None = None
    note: str = ""
    error: str | None = None


@dataclass
class Report:
    device_name: str
    environment: str
    rows: list[Row] = field(default_factory=list)

    @property
    def failed(self) -> list[Row]:
        return [row for row in self.rows if row.error]


def _faces(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (512, 512, 3), dtype=np.uint8) for _ in range(count)]  # RGB uint8


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _call(pipe, faces):
    generators = [torch.Generator().manual_seed(i) for i in range(len(faces))]
    return pipe(faces, generator=generators, output_type="pt").images


def _tokens(pipe, face: np.ndarray) -> torch.Tensor:
    lq = torch.from_numpy(face).permute(2, 0, 1)[None].float() / 127.5 - 1.0  # (1, 3, 512, 512) in [-1, 1]
    with torch.no_grad():
        return pipe.embedder(lq.to(pipe.device, pipe.embedder.dtype)).token_indices.cpu()


def time_calls(pipe, faces, settings: CheckSettings) -> tuple[float, float | None]:
    """Median seconds per call (after warm-up) and the peak memory (MiB, CUDA) of those calls."""
    device = pipe.device
    for _ in range(settings.warmup):
        _call(pipe, faces)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(settings.repeats):
        start = time.perf_counter()
        images = _call(pipe, faces)
        _sync(device)
        times.append(time.perf_counter() - start)
    if not torch.isfinite(images).all():
        raise FloatingPointError("non-finite values in the output")
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return statistics.median(times), peak


def _timed_row(report: Report, pipe, settings: CheckSettings, row: Row, faces) -> None:
    try:
        seconds, peak = time_calls(pipe, faces, settings)
        row.ms_per_face = 1000 * seconds / len(faces)
        row.faces_per_s = len(faces) / seconds
        row.peak_mib = peak
    except Exception as exc:  # recorded, printed, and makes the exit status 1
        row.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    report.rows.append(row)
    print(_row_text(row), flush=True)


def accuracy_row(report: Report, pipe, reference, dtype_name: str, path: str = "accuracy") -> None:
    """One face against the CPU float32 result: max output difference, tokens equal."""
    ref_images, ref_tokens = reference
    row = Row(path, dtype_name, 1, "-")
    try:
        images = _call(pipe, _faces(1)).float().cpu()
        if not torch.isfinite(images).all():
            raise FloatingPointError("non-finite values in the output")
        tokens = _tokens(pipe, _faces(1)[0])
        row.max_diff = (images - ref_images).abs().max().item()
        row.tokens_equal = f"{int((tokens == ref_tokens).sum())}/{tokens.numel()}"
    except Exception as exc:  # recorded, printed, and makes the exit status 1
        row.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    report.rows.append(row)
    print(_row_text(row), flush=True)


def stage_row(report: Report, pipe, dtype_name: str) -> None:
    """Per-stage times of one batch-1 call (the one call that records timings)."""
    row = Row(
        "stages", dtype_name, 1, "two" if pipe.parallel_streams and pipe.device.type == "cuda" else "one"
    )
    try:
        pipe.record_timings = True
        timings = pipe(_faces(1), generator=torch.Generator().manual_seed(0), output_type="pt").timings
        row.note = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in timings.items())
    except Exception as exc:  # recorded, printed, and makes the exit status 1
        row.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        pipe.record_timings = False
    report.rows.append(row)
    print(_row_text(row), flush=True)


def video_row(report: Report, pipe, dtype_name: str, settings: CheckSettings) -> None:
    """Frames per second on a 720p clip with one face, faces batched across frames
    (``benchmarks.gpu_video``); skipped, not failed, where PyAV or facexlib is missing."""
    batch = 2 if settings.tiny else 8
    row = Row("video 720p", dtype_name, batch, "two" if pipe.parallel_streams else "one")
    try:
        gpu_video = importlib.import_module("benchmarks.gpu_video")
    except ImportError as exc:  # the bare GPU machine may lack PyAV and facexlib
        row.note = f"skipped: {exc}"
    else:
        try:
            fps, row.note = gpu_video.frames_per_second(pipe, frames=4 if settings.tiny else 48, batch=batch)
            row.ms_per_face, row.faces_per_s = 1000 / fps, fps
        except Exception as exc:  # recorded, printed, and makes the exit status 1
            row.error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
    report.rows.append(row)
    print(_row_text(row), flush=True)


def check_dtype(
    report: Report, pipe, reference, dtype: torch.dtype, settings: CheckSettings, first: bool
) -> None:
    device = pipe.device
    name = dtype_name(dtype)
    accuracy_row(report, pipe, reference, name)
    cuda = device.type == "cuda"
    modes = [("one", False), ("two", True)] if cuda else [("one", False)]
    # On CPU the second dtype (bfloat16, emulated there) runs batch 1 only: the rehearsal stays short.
    for batch in settings.batches if cuda or first else settings.batches[:1]:
        for streams, parallel in modes:
            if batch > 1 and cuda and not parallel:
                continue  # batches on the two-stream path only: the budget is 5 minutes
            pipe.parallel_streams = parallel
            _timed_row(report, pipe, settings, Row("throughput", name, batch, streams), _faces(batch))
    pipe.parallel_streams = cuda
    stage_row(report, pipe, name)
    if first:
        video_row(report, pipe, name, settings)
    if first:  # channels_last (the default) against contiguous weights, batch 1
        apply_memory_format(pipe, False)
        row = Row("throughput", name, 1, modes[-1][0], note="contiguous weights")
        _timed_row(report, pipe, settings, row, _faces(1))
        apply_memory_format(pipe)


def check_compile(report: Report, pipe, reference, settings: CheckSettings, name: str) -> None:
    """torch.compile of the UNet and the VAE's encoder and decoder; compile time apart."""
    eager = _call(pipe, _faces(1)).float().cpu()
    kwargs = {"mode": settings.compile_mode} if settings.compile_mode else {}
    for module in (pipe.unet, pipe.vae.encoder, pipe.vae.decoder):
        module.compile(**kwargs)
    row = Row("compiled", name, 1, "two" if pipe.device.type == "cuda" else "one")
    try:
        start = time.perf_counter()
        compiled = _call(pipe, _faces(1)).float().cpu()
        _sync(pipe.device)
        row.note = f"first call (compiling) {time.perf_counter() - start:.1f} s; mode {settings.compile_mode or 'default'}"
        row.max_diff = (compiled - eager).abs().max().item()
        row.note += f"; max diff vs eager {row.max_diff:.2e}"
        row.max_diff = (compiled - reference[0]).abs().max().item()
    except Exception as exc:  # recorded, printed, and makes the exit status 1
        row.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        report.rows.append(row)
        return
    report.rows.append(row)
    print(_row_text(row), flush=True)
    _timed_row(report, pipe, settings, Row("compiled", name, 1, row.streams), _faces(1))


def _row_text(row: Row) -> str:
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    cells = [
        row.path,
        row.dtype,
        str(row.batch),
        row.streams,
        fmt(row.ms_per_face, ".2f"),
        fmt(row.faces_per_s, ".1f"),
        fmt(row.peak_mib, ".0f"),
        fmt(row.max_diff, ".2e"),
        row.tokens_equal or "-",
        ("FAILED: " + row.error) if row.error else row.note,
    ]
    return "| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |"


def markdown(report: Report, settings: CheckSettings) -> str:
    header = (
        "| path | dtype | batch | streams | ms/face | faces/s | peak MiB | max diff vs CPU fp32 | tokens equal | note |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    lines = [
        f"### {report.device_name}",
        "",
        f"{report.environment}; {'tiny' if settings.tiny else 'full-size'} architecture, random weights, "
        f"512x512 faces; median of {settings.repeats} calls after {settings.warmup} warm-up(s).",
        "",
        header,
        *(_row_text(row) for row in report.rows),
        "",
        f"Result: {'FAILED (' + str(len(report.failed)) + ' path(s))' if report.failed else 'all paths passed'}.",
    ]
    return "\n".join(lines) + "\n"


def _environment(device: torch.device) -> tuple[str, str]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        extra = f"CUDA {torch.version.cuda}"
    else:
        name = f"CPU: {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"
        extra = "CPU"
    env = (
        f"Python {platform.python_version()}, torch {torch.__version__}, diffusers {diffusers.__version__}, "
        f"{extra} ({space_build_note(torch.__version__)})"
    )
    return name, env


def space_build_note(version: str) -> str:
    """Whether this torch is the build the Space installs (requirements.txt's pin)."""
    space = f"torch {PINNED_TORCH}, a CUDA {PINNED_TORCH_CUDA} build"
    if version.split("+")[0] == PINNED_TORCH:
        return f"the Space's build: {space}"
    return f"NOT the Space's build ({space}): figures may differ from what users get"


def run(settings: CheckSettings) -> Report:
    device = torch.device(settings.device)
    started = time.perf_counter()
    name, env = _environment(device)
    report = Report(name, env)
    print(f"GPU check on {name}; {env}", flush=True)
    pipe = random_pipeline("tiny" if settings.tiny else "full")
    apply_memory_format(pipe)
    pipe.record_timings = False
    face = _faces(1)
    reference = (_call(pipe, face).float().cpu(), _tokens(pipe, face[0]))  # CPU float32
    print(f"CPU float32 reference ready after {time.perf_counter() - started:.1f} s", flush=True)
    dtypes = (torch.float16, torch.bfloat16) if device.type == "cuda" else (torch.float32, torch.bfloat16)
    for index, dtype in enumerate(dtypes):
        pipe.to(device, dtype)
        check_dtype(report, pipe, reference, dtype, settings, first=index == 0)
    if settings.compile:
        pipe.to(device, dtypes[0])
        check_compile(report, pipe, reference, settings, dtype_name(dtypes[0]))
    settings.out.mkdir(parents=True, exist_ok=True)
    (settings.out / "gpu_check.md").write_text(markdown(report, settings))
    payload = {"device": name, "environment": env, "rows": [asdict(row) for row in report.rows]}
    (settings.out / "gpu_check.json").write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {settings.out / 'gpu_check.md'} after {time.perf_counter() - started:.1f} s")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:1, or cpu for the rehearsal")
    parser.add_argument("--tiny", action="store_true", help="tiny architecture (the CPU rehearsal)")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the UNet and the VAE")
    parser.add_argument(
        "--compile-mode", default=None, help="torch.compile mode, e.g. reduce-overhead (CUDA graphs)"
    )
    parser.add_argument("--out", type=Path, default=Path("gpu_check_out"), help="folder for the table")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per row (default 10; tiny 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls per row (default 3; tiny 0)")
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="default 1 4 16 (tiny: 1 2)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device here; for the rehearsal pass --device cpu --tiny")
    settings = CheckSettings(
        device=args.device,
        tiny=args.tiny,
        compile=args.compile,
        compile_mode=args.compile_mode,
        out=args.out,
        repeats=args.repeats if args.repeats is not None else (1 if args.tiny else 10),
        warmup=args.warmup if args.warmup is not None else (0 if args.tiny else 3),
        batches=tuple(args.batches or ((1, 2) if args.tiny else (1, 4, 16))),
    )
    report = run(settings)
    if report.failed:
        print(
            f"FAILED: {len(report.failed)} path(s): "
            + "; ".join(f"{r.path} {r.dtype} b{r.batch}" for r in report.failed)
        )
        return 1
    print("all paths passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
