"""Device and dtype choice, defined once for the app, the CLI, eval-fr and the benchmarks.

The models load on the CPU in float32 (diffusers' convention); the caller then moves them with
``.to(resolve_device(...), resolve_dtype(...))``.

On the CPU the default follows the processor (issue 23): bfloat16 where oneDNN computes it
natively (AVX512-BF16 or AMX: AMD Zen 4, Intel Xeon since Cooper Lake / Sapphire Rapids),
float32 elsewhere. Both were measured with ``python -m benchmarks.bench_dtype``: on a Zen 4
bfloat16 took 0.60x the time of float32 (1.68x faster), on a Zen 3 (AVX2 only) oneDNN falls
back to reference kernels and bfloat16 took 4-5x longer. The VRE stays float32 either way
(``VisualRepresentationEmbedder.to`` keeps it). ARM CPUs get float32: no measurement yet.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import TYPE_CHECKING

from osdface import lazy

# torch loads on first use: the app's command line uses DTYPE_NAMES, and the app starts (and
# shows its page) before torch is imported.
torch = lazy.module("torch")

if TYPE_CHECKING:
    import torch
DTYPE_NAMES = ("float32", "float16", "bfloat16")
# The device types OSDFace runs on (its dtype choices and CUDA diagnosis know these three), and
# how --device names them; checked by name, without torch, so a typo is refused at once.
DEVICE_TYPES = ("cpu", "cuda", "mps")
DEVICE_CHOICES = "cpu, cuda, cuda:N (N: the GPU's index, from 0) or mps"
_DEVICE_NAME = re.compile(r"(cpu|cuda|mps)(:\d+)?")
# Devices whose default dtype is float16 (the VRE stays float32 everywhere).
HALF_PRECISION_DEVICES = ("cuda", "mps")
# /proc/cpuinfo flags of the instructions with which oneDNN computes bfloat16 natively, the
# faster first; named in the reason so that a user can tell why their machine got what it got.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# The only processors on which the two dtypes were compared (see the module docstring).
_X86 = ("x86_64", "amd64", "i386", "i686")


def resolve_device(
    name: str | torch.device | None = None, *, launched: torch.device | None = None
) -> torch.device:
    """The device asked for, else the one ``accelerate launch`` gave this process, else CUDA
    when there is one, else an Apple GPU (``mps``) when there is one, else the CPU."""
    if name:
        return torch.device(name)
    if launched is not None:
        return torch.device(launched)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_device_name(name: str) -> str:
    """``name`` when it names a device type OSDFace runs on, else ``ValueError`` listing them
    (whether that device exists here is the doctor's and CUDA diagnosis's business)."""
    if not _DEVICE_NAME.fullmatch(name):
        raise ValueError(f"unknown device {name!r}: use {DEVICE_CHOICES}")
    return name


def resolve_dtype(name: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The dtype asked for (a name of ``DTYPE_NAMES``), else the default for the device
    (``default_dtype_reason`` says why)."""
    if isinstance(name, torch.dtype):
        return name
    if name is None:
        kind = torch.device(device).type
        if kind in HALF_PRECISION_DEVICES:
            return torch.float16
        return torch.bfloat16 if kind == "cpu" and native_bfloat16() else torch.float32
    if name not in DTYPE_NAMES:
        raise ValueError(f"unknown dtype {name!r}: use one of {', '.join(DTYPE_NAMES)}")
    return getattr(torch, name)


def default_dtype_reason(device: torch.device | str) -> str:
    """Why ``resolve_dtype(None, device)`` picks what it picks (for the doctor and the logs)."""
    kind = torch.device(device).type
    if kind == "cuda":
        return "float16 on CUDA: half the memory, tensor cores; the VRE stays float32"
    if kind == "mps":
        return "float16 on an Apple GPU (mps): half the memory, supported by Metal; the VRE stays float32"
    if native_bfloat16():
        return (
            f"bfloat16 on the CPU: it computes bfloat16 natively ({_bfloat16_instructions()}), measured "
            "1.68x faster than float32 on a Zen 4; the VRE stays float32"
        )
    return (
        f"float32 on the CPU: it has no native bfloat16 ({cpu_capability()}, no {' or '.join(BF16_FLAGS)}), "
        "where bfloat16 measured 4-5x slower; the VRE stays float32"
    )


def dtype_reason(asked: str | None, device: torch.device | str) -> str:
    """Why the run uses the dtype it uses: the one asked for (``--dtype``), else the default's
    reason."""
    return f"{asked}: asked for (--dtype)" if asked else default_dtype_reason(device)


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively: oneDNN's own check (AVX512-BF16 or AMX),
    on x86 only, where the two dtypes were measured. Tests patch this one function."""
    if platform.machine().lower() not in _X86:
        return False
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_flags() -> frozenset[str]:
    """The CPU's flags from /proc/cpuinfo (empty where there is none: macOS, Windows)."""
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return frozenset()
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_capability() -> str:
    """torch's vector instruction set on this CPU: "AVX2", "AVX512", ..."""
    return str(torch.backends.cpu.get_cpu_capability())


def _bfloat16_instructions() -> str:
    found = [flag for flag in BF16_FLAGS if flag in cpu_flags()]
    return ", ".join(found) if found else "oneDNN's check"


def describe_device(device: torch.device, dtype: torch.dtype, why: str | None = None) -> str:
    """The device line of the app's timing table: "NVIDIA H100 (cuda:0, float16)", then
    ``why`` (the dtype's reason) when given."""
    line = _device_and_dtype(device, dtype)
    return f"{line} · {why}" if why else line


def _device_and_dtype(device: torch.device, dtype: torch.dtype) -> str:
    precision = dtype_name(dtype)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device}, {precision})"
    if device.type == "mps":
        return f"Apple GPU (mps, {precision})"
    return f"{device.type.upper()} ({torch.get_num_threads()} threads, {precision})"


def dtype_name(dtype: torch.dtype) -> str:
    """torch.float16 -> "float16"."""
    return str(dtype).removeprefix("torch.")
