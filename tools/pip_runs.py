"""Running pip and the interpreters for tools/pin_requirements.py: an interpreter for each Python
3.X, and what pip's stderr says failed (a requirement it cannot install, or the network).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from packaging.version import InvalidVersion, Version

THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# What pip names as the requirement it cannot install, in the wording of pip 23 to 26.
PIP_FAILURES = (
    r"No matching distribution found for (\S+)",
    r"Could not find a version that satisfies the requirement (\S+)",
    r"Cannot install (.+?) because",
    r"Failed to build '?([^'\s]+)'?",
    r"Failed building wheel for (\S+)",
    r"Could not build wheels for (\S+?),? ",
)


def _version_of(path: str) -> Version:
    try:
        return Version(Path(path).parent.parent.name)
    except InvalidVersion:
        return Version("0")


def _runs_as(interpreter: str, python: str) -> bool:
    try:
        run = subprocess.run(
            [interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return run.returncode == 0 and run.stdout.strip() == python


def pyenv_versions() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def find_python(python: str, given: Mapping[str, str] | None = None) -> str | None:
    """An interpreter for ``python`` ("3.10"): ``given[python]``, this one, a working python3.X on
    PATH (a pyenv shim for a version not selected fails), or the newest pyenv 3.X.N build."""
    if given and python in given:
        if not _runs_as(given[python], python):
            raise SystemExit(f"--python {python}={given[python]}: that is not a working Python {python}")
        return given[python]
    if python == THIS_PYTHON:
        return sys.executable
    pyenv = pyenv_versions()
    # Plain X.Y.N builds only: not 3.13.0t (free-threaded wheels are a different set).
    builds = [
        p
        for p in pyenv.glob(f"{python}.*/bin/python")
        if re.fullmatch(r"\d+\.\d+\.\d+", p.parent.parent.name)
    ]
    candidates = [shutil.which(f"python{python}"), *sorted(map(str, builds), key=_version_of, reverse=True)]
    return next((c for c in candidates if c and _runs_as(c, python)), None)


def unresolvable(stderr: str, requirements: Path | None = None) -> str:
    """The requirement(s) pip's stderr names as the one it cannot install ('' when none is named);
    `-r FILE (line N)` is read from ``requirements``."""
    lines = requirements.read_text().splitlines() if requirements and requirements.exists() else []
    for pattern in PIP_FAILURES:
        match = re.search(pattern, stderr)
        if match is None:
            continue
        names = []
        for part in re.split(r",\s*|\s+and\s+", match.group(1)):
            line = re.fullmatch(r"-r .+ \(line (\d+)\)", part.strip())
            if line and int(line.group(1)) <= len(lines):
                part = lines[int(line.group(1)) - 1].split(";")[0]
            names.append(part.strip())
        return ", ".join(names)
    return ""


# pip's words when the network, not the requirements, failed (pip 23 to 26).
NETWORK_FAILURES = (
    "This is an issue with network connectivity",
    "Connection interrupted while downloading",
    "Max retries exceeded with url",
    "Read timed out",
)
# Exit status when PyPI could not be read: the pins were not checked, not found wrong.
NETWORK_EXIT = 3
# PyPI publishes no separate metadata file for some large wheels (nvidia-nccl-cu12 2.27.3, 322 MB,
# which torch 2.8.0 requires): without this pip downloads the whole wheel to read its dependencies;
# with it pip reads the wheel's METADATA through HTTP range requests. The resolution is the same.
METADATA_BY_RANGE = "--use-feature=fast-deps"


# pip's words when the disk filled up: an index without metadata files (PEP 658), as here, makes
# pip download every wheel it considers to read its dependencies, about 4.2 GB for torch 2.8.0 and
# its CUDA libraries, into its temporary folder.
DISK_FULL = "No space left on device"


def pip_environment(temporary: Path) -> dict[str, str]:
    """This environment with pip's temporary files (the wheels it downloads) in ``temporary``, a
    folder the caller removes: also when pip is killed at its timeout, which leaves its own
    pip-unpack-* folders behind in the system's temporary folder."""
    temporary.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "TMPDIR": str(temporary)}


def disk_problem(stderr: str, temporary: Path) -> str:
    """What to say when pip's stderr says the disk filled up ('' when it does not)."""
    if DISK_FULL not in stderr:
        return ""
    free = shutil.disk_usage(temporary if temporary.exists() else temporary.parent).free
    return (
        f"the disk filled up while pip downloaded wheels to read their dependencies ({DISK_FULL}; "
        f"{free / 1e9:.1f} GB free now under {temporary}): free about 5 GB there (old pytest-of-* "
        "and pip-unpack-* folders in the temporary folder are the usual culprits) and run it again"
    )


def network_problem(stderr: str) -> str:
    """The line of pip's stderr that says the network failed ('' when it does not)."""
    for line in stderr.splitlines():
        if any(words in line for words in NETWORK_FAILURES):
            return line.strip()
    return ""


def stderr_tail(stderr: str, lines: int = 15) -> str:
    # pip warns about every unreachable --find-links/--extra-index-url location: not the failure.
    kept = [line for line in stderr.splitlines() if "is ignored: it is" not in line]
    return "\n".join(kept[-lines:])
