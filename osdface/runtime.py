"""Device and dtype choice, defined once for the app, the CLI, eval-fr and the benchmarks.

The models load on the CPU in float32 (diffusers' convention); the caller then moves them with
``.to(resolve_device(...), resolve_dtype(...))``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions: the app's command line uses DTYPE_NAMES, and the app
# starts (and shows its page) before torch is imported.
DTYPE_NAMES = ("float32", "float16", "bfloat16")


def resolve_device(
    name: str | torch.device | None = None, *, launched: torch.device | None = None
) -> torch.device:
    """The device asked for, else the one ``accelerate launch`` gave this process, else CUDA
    when there is one, else the CPU."""
    import torch

    if name:
        return torch.device(name)
    if launched is not None:
        return torch.device(launched)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(name: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The dtype asked for (a name of ``DTYPE_NAMES``), else float16 on CUDA and float32
    elsewhere (CPUs without native bfloat16 run it several times slower; see cpu_tuning)."""
    import torch

    if isinstance(name, torch.dtype):
        return name
    if name is None:
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    if name not in DTYPE_NAMES:
        raise ValueError(f"unknown dtype {name!r}: use one of {', '.join(DTYPE_NAMES)}")
    return getattr(torch, name)


def dtype_name(dtype: torch.dtype) -> str:
    """torch.float16 -> "float16"."""
    return str(dtype).removeprefix("torch.")
