"""Why an NVIDIA GPU that the machine has is not used: one diagnosis for the app's banner, its
log, ``osdface doctor`` and ``osdface restore``.

When CUDA cannot start, PyTorch says nothing: ``torch.cuda.is_available()`` is False, the
default device becomes the CPU, and a face takes 30 s or more instead of well under one. The
usual causes, each with its own fix:

* the driver is older than the torch build's CUDA major version: PyPI's torch >= 2.11 is a
  CUDA 13 build and needs the 580 driver series; torch 2.7 to 2.10 are CUDA 12.x builds, which
  run on any driver for CUDA 12 (525.60.13 or newer: CUDA's minor-version compatibility);
* a CPU-only torch build;
* ``CUDA_VISIBLE_DEVICES`` hides every GPU;
* the driver is loaded but no device node is visible (a container started without its GPU);
* the driver's user-space library ``libcuda.so.1`` is missing;
* CUDA runs out of memory when the models are moved to the GPU (``out_of_memory_problem``).

The driver is read without starting CUDA: the kernel module's version from
``/proc/driver/nvidia/version``, the newest CUDA it runs from libcuda's ``cuDriverGetVersion``
(which needs no ``cuInit``), the device nodes from ``/dev``. torch is imported inside the
functions: the app's page and ``osdface --help`` come up before torch is imported.
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from osdface import lazy
from osdface.errors import OSDFaceError

# torch loads when a diagnosis runs: the app's page and `osdface --help` come up without it.
torch = lazy.module("torch")

if TYPE_CHECKING:
    import torch

# The torch build that requirements.txt installs (tests/test_cuda_diagnosis.py checks that they
# agree): PyPI's Linux wheel of torch 2.8.0 is a CUDA 12.8 build, the last release that
# Hugging Face lists as supported on ZeroGPU.
PINNED_TORCH = "2.8.0"
PINNED_TORCHVISION = "0.23.0"
PINNED_TORCH_CUDA = "12.8"
PINNED_TORCH_INSTALL = f"pip install torch=={PINNED_TORCH} torchvision=={PINNED_TORCHVISION}"

# The oldest Linux driver for each CUDA major version (NVIDIA's CUDA release notes, "minor
# version compatibility"): a build for any 12.x runs on 525.60.13, one for 13.x needs 580.
MIN_DRIVER_FOR_CUDA_MAJOR = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}
DRIVER_SERIES_FOR_CUDA_MAJOR = {11: "450", 12: "535", 13: "580"}

PROC_DRIVER_VERSION = Path("/proc/driver/nvidia/version")
DEV_DIR = Path("/dev")
LIBCUDA = "libcuda.so.1"
HIDING_VALUES = ("", "-1", "none", "nodevfiles", "void")


@dataclass(frozen=True)
class NvidiaDriver:
    """What the machine shows of an NVIDIA driver, read without starting CUDA.

    version: the kernel module's version ("535.183.01"), None without one.
    cuda: the newest CUDA version the driver runs ("12.2"), None when libcuda is missing.
    device_nodes: the GPU device nodes ("/dev/nvidia0", ...).
    library_error: why libcuda.so.1 could not be loaded or asked (None: it answered).
    """

    version: str | None = None
    cuda: str | None = None
    device_nodes: tuple[str, ...] = ()
    library_error: str | None = None

    @property
    def present(self) -> bool:
        """Whether this machine has an NVIDIA GPU and driver (one is enough to say so)."""
        return self.version is not None or bool(self.device_nodes)


@dataclass(frozen=True)
class TorchCuda:
    """What the installed torch says: its version, the CUDA version it was built for (None: a
    CPU-only build), whether CUDA is available, and, when not, the error CUDA's start raised."""

    version: str
    cuda: str | None
    available: bool
    init_error: str | None = None


@dataclass(frozen=True)
class CudaProblem:
    """A GPU is present but the models cannot use it: ``kind`` (one of the causes in the module
    docstring), the numbers found, the reason and the command or step that fixes it."""

    kind: str
    reason: str
    fix: str
    driver_version: str | None = None
    driver_cuda: str | None = None
    torch_version: str | None = None
    torch_cuda: str | None = None

    @property
    def summary(self) -> str:
        if self.kind == "out_of_memory":
            return "The models did not fit in the GPU's memory, so they run on the CPU."
        return "A GPU is present but CUDA cannot start, so the models run on the CPU."

    def message(self) -> str:
        """The banner's, the log's and the doctor's text: summary, reason, fix."""
        return f"{self.summary}\n{self.reason}\nFix: {self.fix}"

    def to_dict(self) -> dict:
        return asdict(self)


def read_driver_version(path: Path | None = None) -> str | None:
    """The kernel module's version from ``/proc/driver/nvidia/version`` ("NVRM version: NVIDIA
    UNIX x86_64 Kernel Module  535.183.01  ..."), None without the driver."""
    try:
        text = (path or PROC_DRIVER_VERSION).read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else None


def list_device_nodes(dev_dir: Path | None = None) -> tuple[str, ...]:
    """The GPU device nodes (/dev/nvidia0, /dev/nvidia1, ...; not nvidiactl or nvidia-uvm)."""
    try:
        return tuple(sorted(str(p) for p in (dev_dir or DEV_DIR).glob("nvidia[0-9]*")))
    except OSError:
        return ()


def read_driver_cuda_version(library: str | None = None) -> tuple[str | None, str | None]:
    """(the newest CUDA version the driver runs, e.g. "12.2"; why it could not be read).
    ``cuDriverGetVersion`` answers without ``cuInit``, so nothing is started."""
    library = library or LIBCUDA
    try:
        libcuda = ctypes.CDLL(library)
    except OSError as exc:
        return None, f"{library} could not be loaded ({exc})"
    value = ctypes.c_int(0)
    status = libcuda.cuDriverGetVersion(ctypes.byref(value))
    if status != 0 or value.value <= 0:
        return None, f"cuDriverGetVersion returned error {status}"
    return cuda_version_text(value.value), None


def cuda_version_text(number: int) -> str:
    """CUDA's integer version as text: 12020 -> "12.2", 13000 -> "13.0"."""
    return f"{number // 1000}.{number % 1000 // 10}"


def find_nvidia_driver(
    proc_path: Path | None = None, dev_dir: Path | None = None, library: str | None = None
) -> NvidiaDriver:
    """The driver as the machine shows it (the module's paths unless given); libcuda is asked
    only where a GPU is present."""
    version = read_driver_version(proc_path)
    nodes = list_device_nodes(dev_dir)
    if version is None and not nodes:
        return NvidiaDriver()
    cuda, error = read_driver_cuda_version(library)
    return NvidiaDriver(version=version, cuda=cuda, device_nodes=nodes, library_error=error)


def inspect_torch() -> TorchCuda:
    """The installed torch's CUDA build and whether CUDA starts (with torch's own error when not)."""
    available = bool(torch.cuda.is_available())
    error = None
    if not available:
        try:
            torch.cuda.init()
        except (RuntimeError, AssertionError) as exc:  # torch's "not compiled with CUDA" is an AssertionError
            error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TorchCuda(
        version=torch.__version__, cuda=torch.version.cuda, available=available, init_error=error
    )


def _major(version: str | None) -> int | None:
    if not version:
        return None
    match = re.match(r"(\d+)", version)
    return int(match.group(1)) if match else None


def _driver_text(driver: NvidiaDriver) -> str:
    version = driver.version or "(version unknown)"
    cuda = f"runs CUDA up to {driver.cuda}" if driver.cuda else "CUDA version unknown"
    return f"NVIDIA driver {version} ({cuda})"


def diagnose(
    driver: NvidiaDriver, torch_cuda: TorchCuda, environ: Mapping[str, str] | None = None
) -> CudaProblem | None:
    """The problem that keeps CUDA from starting, or None when CUDA works or there is no GPU."""
    if torch_cuda.available or not driver.present:
        return None
    environ = os.environ if environ is None else environ
    numbers = {
        "driver_version": driver.version,
        "driver_cuda": driver.cuda,
        "torch_version": torch_cuda.version,
        "torch_cuda": torch_cuda.cuda,
    }
    found = _driver_text(driver)
    if torch_cuda.cuda is None:
        return CudaProblem(
            "cpu_build",
            f"This PyTorch ({torch_cuda.version}) is a CPU-only build; the machine has an {found}.",
            f"{PINNED_TORCH_INSTALL} --force-reinstall (PyPI's Linux wheels are CUDA "
            f"{PINNED_TORCH_CUDA} builds, which run on drivers {MIN_DRIVER_FOR_CUDA_MAJOR[12]} or newer).",
            **numbers,
        )
    hidden = environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip().lower() in HIDING_VALUES:
        return CudaProblem(
            "hidden",
            f"CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU from this process ({found}).",
            "unset CUDA_VISIBLE_DEVICES (or set it to the GPU's index, e.g. CUDA_VISIBLE_DEVICES=0) and restart.",
            **numbers,
        )
    if driver.version is not None and not driver.device_nodes:
        return CudaProblem(
            "no_device_node",
            f"The {found} is loaded, but no GPU device node (/dev/nvidia0) is visible to this process.",
            "in a container, start it with the GPU passed through (docker run --gpus all, with the NVIDIA "
            "Container Toolkit); on a host, check that `nvidia-smi` lists the GPU.",
            **numbers,
        )
    if driver.cuda is None:
        return CudaProblem(
            "no_driver_library",
            f"GPU device nodes exist ({', '.join(driver.device_nodes)}), but the driver's library cannot be "
            f"used: {driver.library_error}.",
            "install the NVIDIA driver's user-space libraries that match its kernel module (in a container: the "
            "NVIDIA Container Toolkit mounts them), then check that `nvidia-smi` works.",
            **numbers,
        )
    driver_major, build_major = _major(driver.cuda), _major(torch_cuda.cuda)
    if driver_major is not None and build_major is not None and driver_major < build_major:
        needed = MIN_DRIVER_FOR_CUDA_MAJOR.get(build_major, "a newer one")
        reason = (
            f"The NVIDIA driver {driver.version or '(version unknown)'} runs CUDA up to {driver.cuda}, but this "
            f"PyTorch ({torch_cuda.version}) is a CUDA {torch_cuda.cuda} build, which needs a driver for CUDA "
            f"{build_major}.x ({needed} or newer)."
        )
        if driver_major >= _major(PINNED_TORCH_CUDA):
            fix = (
                f"{PINNED_TORCH_INSTALL} (the versions requirements.txt pins: a CUDA {PINNED_TORCH_CUDA} build "
                f"that runs on this driver), or upgrade the NVIDIA driver to the "
                f"{DRIVER_SERIES_FOR_CUDA_MAJOR.get(build_major, 'newest')} series or newer."
            )
        else:
            fix = (
                f"upgrade the NVIDIA driver to {MIN_DRIVER_FOR_CUDA_MAJOR[12]} or newer (the 535 series or later), "
                f"then {PINNED_TORCH_INSTALL} (a CUDA {PINNED_TORCH_CUDA} build)."
            )
        return CudaProblem("driver_too_old", reason, fix, **numbers)
    return CudaProblem(
        "cuda_error",
        f"The {found} and this PyTorch ({torch_cuda.version}, CUDA {torch_cuda.cuda} build) should work "
        f"together, but CUDA did not start: {torch_cuda.init_error or 'torch.cuda.is_available() is False'}.",
        "run `nvidia-smi`: if it fails too, reinstall the NVIDIA driver and reboot; if it works, check that no "
        f"other process holds the GPU in exclusive mode, then {PINNED_TORCH_INSTALL} --force-reinstall.",
        **numbers,
    )


def diagnose_cuda() -> CudaProblem | None:
    """``diagnose`` of this machine: None when CUDA works or when there is no NVIDIA GPU."""
    if torch.cuda.is_available():
        return None
    driver = find_nvidia_driver()
    if not driver.present:  # a machine without a GPU: the CPU is expected, CUDA is not even tried
        return None
    return diagnose(driver, inspect_torch())


def out_of_memory_problem(device: torch.device, error: BaseException) -> CudaProblem:
    """CUDA ran out of memory while the models were moved to ``device`` (they stay on the CPU)."""
    free_text = ""
    try:
        free, total = torch.cuda.mem_get_info(device)
        name = torch.cuda.get_device_name(device)
        free_text = f" on {name} ({free / 2**30:.1f} of {total / 2**30:.1f} GiB free)"
    except (RuntimeError, AssertionError):  # CUDA gone altogether: the numbers are left out
        pass
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return CudaProblem(
        "out_of_memory",
        f"CUDA ran out of memory while the models were moved to the GPU{free_text}: {first_line}",
        "free the GPU (`nvidia-smi` lists the processes that hold it) and restart, or start on the CPU with "
        "--device cpu.",
        torch_version=torch.__version__,
        torch_cuda=torch.version.cuda,
    )


class CudaUnavailableError(OSDFaceError, RuntimeError):
    """CUDA was asked for (``--device cuda``) and cannot start on this machine."""


# Where CUDA is asked for explicitly and cannot serve: the way to run anyway.
ON_THE_CPU = "--device cpu, or leave --device out (the GPU is used when CUDA works, else the CPU)."


def check_requested_device(asked: str | None) -> CudaProblem | None:
    """For the command line: with ``--device cuda`` (or ``cuda:N``) and CUDA unusable, or no
    such GPU, raise ``CudaUnavailableError`` (reason and fix) before anything loads; with the
    default device, return the problem that sends the work to the CPU (for a warning), else None."""
    if asked and torch.device(asked).type != "cuda":
        return None
    problem = diagnose_cuda()
    if problem is not None and asked:
        raise CudaUnavailableError(
            problem.reason, source=f"--device {asked}", fix=f"{problem.fix} Or run on the CPU: {ON_THE_CPU}"
        )
    if asked:
        check_cuda_device_exists(asked)
    return problem


def check_cuda_device_exists(asked: str) -> None:
    """Raise ``CudaUnavailableError`` when ``asked`` (a CUDA device) names no GPU on a machine
    where ``diagnose_cuda`` found no problem: one without an NVIDIA GPU (torch would fail on
    the first tensor moved there, after the models loaded), or an index past the last GPU."""
    source = f"--device {asked}"
    if not torch.cuda.is_available():
        raise CudaUnavailableError(
            f"CUDA is not available here: no NVIDIA GPU or driver was found (PyTorch {torch.__version__}).",
            source=source,
            fix=ON_THE_CPU,
        )
    index, count = torch.device(asked).index, torch.cuda.device_count()
    if index is not None and index >= count:
        raise CudaUnavailableError(
            f"there is no GPU {index}: CUDA sees {_gpus(count)}.",
            source=source,
            fix="--device cuda:0 (or leave --device out).",
        )


def _gpus(count: int) -> str:
    return "1 GPU (cuda:0)" if count == 1 else f"{count} GPUs (cuda:0 to cuda:{count - 1})"
