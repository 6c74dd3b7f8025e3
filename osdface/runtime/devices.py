"""Device and dtype choice, defined once for the app, the CLI, eval-fr and the benchmarks.

The models load on the CPU in float32 (diffusers' convention); the caller then moves them with
``.to(resolve_device(...), resolve_dtype(...))``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from osdface import lazy

# torch loads on first use: the app's command line uses DTYPE_NAMES, and the app starts (and
# shows its page) before torch is imported.
torch = lazy.module("torch")

if TYPE_CHECKING:
    import torch
DTYPE_NAMES = ("float32", "float16", "bfloat16")
# Devices whose default dtype is float16 (the VRE stays float32 everywhere).
HALF_PRECISION_DEVICES = ("cuda", "mps")


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


def resolve_dtype(name: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The dtype asked for (a name of ``DTYPE_NAMES``), else the default for the device
    (``default_dtype_reason`` says why)."""
    if isinstance(name, torch.dtype):
        return name
    if name is None:
        return torch.float16 if torch.device(device).type in HALF_PRECISION_DEVICES else torch.float32
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
    return "float32 on the CPU: bfloat16 measured 5x slower on CPUs without native bfloat16 (see cpu_tuning)"


def describe_device(device: torch.device, dtype: torch.dtype) -> str:
    """The device line of the app's timing table: "NVIDIA H100 (cuda:0, float16)"."""
    precision = dtype_name(dtype)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device}, {precision})"
    if device.type == "mps":
        return f"Apple GPU (mps, {precision})"
    return f"{device.type.upper()} ({torch.get_num_threads()} threads, {precision})"


def dtype_name(dtype: torch.dtype) -> str:
    """torch.float16 -> "float16"."""
    return str(dtype).removeprefix("torch.")
