"""Where and how a run runs: the device and dtype, why a GPU that is there is not used, the
processes Accelerate launches, and progress by stage and face.

- ``devices``: device and dtype choice for the app, the CLI, eval-fr and the benchmarks;
- ``cuda_diagnosis``: the NVIDIA driver, torch's CUDA build, and what to do when they disagree;
- ``distributed``: a command's work split between launched processes;
- ``progress``: progress of a restoration with an estimate of the time left.
"""

from osdface.lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "devices": ["resolve_device", "resolve_dtype", "dtype_name"],
        "cuda_diagnosis": ["diagnose_cuda", "CudaProblem", "CudaUnavailableError"],
    },
)
