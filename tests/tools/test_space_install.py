"""requirements.txt installs on every Python the project supports (tools/pin_requirements.py's
PYTHONS; ZeroGPU Spaces run 3.10), resolved from PyPI the way a Space installs it: that Python's
own pip, `pip install -r requirements.txt` with the file alone (a Space's build mounts nothing
else), here as a dry run. The interpreter's own pip is a second opinion on the resolution the pin
tool made with this environment's pip. In the repository (the README's commands, CI) the same file
also finds wheels/, whose opencv-python stand-in leaves one OpenCV (issue 22)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from osdface.runtime import opencv

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements.txt"
PIP_TIMEOUT_S = 300


def load_tool():
    spec = importlib.util.spec_from_file_location("pin_requirements", ROOT / "tools" / "pin_requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def pinned_lines() -> list[Requirement]:
    lines = REQUIREMENTS.read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith(("#", "-"))]


def dry_run(python: str, requirements: Path, report_file: Path) -> tuple[dict, float]:
    """pip's --report of ``pip install -r requirements`` on ``python``, run in the requirements
    file's folder (pip also reads a relative --find-links against the working directory), and
    the seconds it took; skips without that Python or without PyPI."""
    interpreter = tool.pip_runs.find_python(python)
    if interpreter is None:
        pytest.skip(f"no Python {python} here (python{python} on PATH, or ~/.pyenv/versions/{python}.N)")
    command = [
        interpreter,
        "-m",
        "pip",
        "install",
        "--dry-run",
        tool.pip_runs.METADATA_BY_RANGE,
        "--ignore-installed",
    ]
    command += ["--quiet"]
    command += ["--report", str(report_file), "-r", str(requirements)]
    # pip's downloads (gigabytes where the index has no metadata files) go to a folder removed
    # here, whatever the outcome: a failed test's tmp_path is kept.
    temporary = report_file.parent / "pip-temporary"
    started = time.monotonic()
    try:
        try:
            run = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=PIP_TIMEOUT_S,
                cwd=requirements.parent,
                env=tool.pip_runs.pip_environment(temporary),
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"Python {python}: pip did not resolve requirements.txt within {PIP_TIMEOUT_S} s")
        disk = tool.pip_runs.disk_problem(run.stderr, temporary)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    seconds = time.monotonic() - started
    if run.returncode != 0 and disk:
        pytest.fail(f"Python {python}: {disk}")
    if run.returncode != 0 and tool.pip_runs.network_problem(run.stderr):
        pytest.skip(
            f"Python {python}: PyPI could not be read, so nothing was checked: {tool.pip_runs.network_problem(run.stderr)}"
        )
    if run.returncode != 0:
        what = tool.pip_runs.unresolvable(run.stderr, requirements) or "(pip names no package)"
        pytest.fail(
            f"Python {python} ({interpreter}): pip cannot install {what}\n{tool.pip_runs.stderr_tail(run.stderr)}"
        )
    report = json.loads(report_file.read_text())
    assert report["environment"]["python_version"] == python, interpreter
    return report, seconds


def opencv_items(report: dict) -> dict[str, dict]:
    """OpenCV's distribution names in pip's report -> their install items."""
    return {
        key: item
        for item in report["install"]
        if (key := canonicalize_name(item["metadata"]["name"])) in opencv.DISTRIBUTIONS
    }


@pytest.mark.slow
@pytest.mark.parametrize("python", tool.PYTHONS)
def test_the_spaces_install_resolves_on_every_supported_python(python, tmp_path):
    # A Space's build mounts requirements.txt alone and runs pip in a folder the repository is
    # copied into later: wheels/ (the OpenCV stand-in) is not there.
    (tmp_path / "space").mkdir()
    alone = shutil.copy(REQUIREMENTS, tmp_path / "space" / "requirements.txt")
    report, seconds = dry_run(python, Path(alone), tmp_path / "report.json")
    interpreter = tool.pip_runs.find_python(python)
    environment = report["environment"]
    resolved = {canonicalize_name(item["metadata"]["name"]): item["metadata"] for item in report["install"]}
    for pin in pinned_lines():
        if pin.marker is not None and not pin.marker.evaluate(environment):
            continue
        key = canonicalize_name(pin.name)
        assert key in resolved, f"Python {python}: pip leaves out {pin}"
        (spec,) = pin.specifier
        assert Version(resolved[key]["version"]) == Version(spec.version), (
            f"Python {python}: {pin} but pip resolves {resolved[key]['version']}"
        )

    # A CUDA 12 build: it runs on NVIDIA drivers 525.60.13 and later, unlike the CUDA 13 builds of
    # torch >= 2.11 (the Space's GPU and older workstations).
    torch = resolved["torch"]
    runtime = [
        Requirement(text)
        for text in torch.get("requires_dist") or []
        if canonicalize_name(Requirement(text).name) == "nvidia-cuda-runtime-cu12"
    ]
    assert runtime, f"Python {python}: torch {torch['version']} does not require nvidia-cuda-runtime-cu12"
    cuda = resolved.get("nvidia-cuda-runtime-cu12", {}).get("version") or str(runtime[0].specifier)
    print(
        f"\nPython {environment['python_full_version']} ({interpreter}): {len(report['install'])} packages, "
        f"torch {torch['version']}, CUDA runtime {cuda} (nvidia-cuda-runtime-cu12); pip resolved it in "
        f"{seconds:.1f} s"
    )
    # What the README's "One OpenCV" says of a Space: PyPI's opencv-python (the GUI build) too.
    items = opencv_items(report)
    assert sorted(items) == ["opencv-python", "opencv-python-headless"], sorted(items)
    assert "+" not in items["opencv-python"]["metadata"]["version"], items["opencv-python"]["download_info"]


@pytest.mark.slow
@pytest.mark.parametrize("python", tool.PYTHONS)
def test_the_readmes_install_takes_the_opencv_stand_in_on_every_supported_python(python, tmp_path):
    """`pip install -r requirements.txt` in the repository (the README, CI): facexlib's
    opencv-python is the stand-in from wheels/, so the headless package is the one OpenCV."""
    report, _ = dry_run(python, REQUIREMENTS, tmp_path / "report.json")
    items = opencv_items(report)
    assert sorted(items) == ["opencv-python", "opencv-python-headless"], sorted(items)
    headless = items["opencv-python-headless"]["metadata"]["version"]
    stand_in = items["opencv-python"]
    assert stand_in["metadata"]["version"] == f"{headless}+headless"
    assert stand_in["download_info"]["url"].endswith(
        f"/wheels/{tool.opencv_shim.wheel_name(headless)}".replace("+", "%2B")
    )
    assert stand_in["metadata"]["requires_dist"] == [f"opencv-python-headless=={headless}"]
