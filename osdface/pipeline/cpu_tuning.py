"""Per-module memory format, and the checks that keep CPU runs out of known traps.

Measured on the project's CPU machine (2 AMD EPYC Zen 3 cores, AVX2, float32; issue #14, medians
of 6 interleaved pairs at 512x512): channels_last took 0.70x the time of the VRE, 0.81x of the
VAE encoder, 0.94x of the UNet and 0.84x of the VAE decoder, 0.85x end to end, with outputs within
1.1e-4 and the same tokens. So every module is converted; the table says so per module, and
``python -m benchmarks.bench_pipeline --memory-format both`` re-measures it on any machine. The format
travels with the weights to CUDA (``.to`` keeps strides), where channels_last is also what
cuDNN's half-precision convolutions prefer; ``benchmarks/gpu_check.py`` measures both there.
Threads stay at torch's default (one per physical core) for every module: on a quiet machine
``python -m benchmarks.bench_threads`` measured 2 threads 1.8-1.9x faster than 1 for each stage (VRE
1.75 vs 3.18 s, VAE encoder 7.7 vs 14.9 s, UNet 6.0 vs 11.4 s, VAE decoder 16.6 vs 32.0 s; 32.0 s
per face in all). With other processes busy on the same cores, 1 thread came out ahead (1.11x
in all, UNet 1.61x), so a shared machine may do better with ``OMP_NUM_THREADS=1``; the choice is
not switched per module at run time, because ``torch.set_num_threads`` is process-wide and
would race between the app's concurrent requests.

bfloat16 on a CPU without native support (no AVX512-BF16/AMX: mkldnn falls back to reference
kernels) measured 5x slower end to end, 60-100x slower per convolution, and changed 40% of the
VRE's tokens when the VRE ran in it (it no longer does): ``check_cpu_dtype`` warns when it is
asked for there. Where the CPU has it natively, bfloat16 is the default
(``osdface.runtime.devices``) and nothing warns.
"""

from __future__ import annotations

import warnings

import torch

from osdface.runtime import devices

# module attribute of the pipeline -> use channels_last (measured, see the module docstring)
CHANNELS_LAST = {"embedder": True, "vae": True, "unet": True}
BF16_COST = (
    "measured on a Zen 3 CPU without native bfloat16: 5x slower end to end (60-100x per "
    "convolution) than float32"
)


def apply_memory_format(pipeline, choices: dict[str, bool] | bool | None = None) -> dict[str, bool]:
    """Convert the pipeline's modules in place: ``choices`` maps a module name to channels_last
    (True) or contiguous (False); a bool applies to all; None uses ``CHANNELS_LAST``. Returns
    what was applied."""
    if choices is None:
        choices = CHANNELS_LAST
    elif isinstance(choices, bool):
        choices = dict.fromkeys(CHANNELS_LAST, choices)
    unknown = set(choices) - set(CHANNELS_LAST)
    if unknown:
        raise ValueError(f"unknown modules {sorted(unknown)}; expected some of {sorted(CHANNELS_LAST)}")
    for name, channels_last in choices.items():
        module = getattr(pipeline, name)
        module.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    return dict(choices)


def check_cpu_dtype(device: torch.device | str, dtype: torch.dtype) -> str | None:
    """Warn (and return the message) when ``dtype`` is bfloat16 on a CPU without native support."""
    if torch.device(device).type != "cpu" or dtype != torch.bfloat16 or devices.native_bfloat16():
        return None
    message = f"bfloat16 on this CPU is emulated, so slow ({BF16_COST}); use float32 on this CPU"
    warnings.warn(message, UserWarning, stacklevel=2)
    return message
