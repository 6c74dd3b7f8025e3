"""requirements.txt installs on every Python the project supports (tools/pin_requirements.py's
PYTHONS; ZeroGPU Spaces run 3.10), resolved from PyPI the way a Space installs it: that Python's
own pip, `pip install -r requirements.txt`, here as a dry run. The interpreter's own pip is a
second opinion on the resolution the pin tool made with this environment's pip."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

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
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.slow
@pytest.mark.parametrize("python", tool.PYTHONS)
def test_the_spaces_install_resolves_on_every_supported_python(python, tmp_path):
    interpreter = tool.find_python(python)
    if interpreter is None:
        pytest.skip(f"no Python {python} here (python{python} on PATH, or ~/.pyenv/versions/{python}.N)")
    report_file = tmp_path / "report.json"
    command = [interpreter, "-m", "pip", "install", "--dry-run", tool.METADATA_BY_RANGE, "--ignore-installed"]
    command += ["--quiet"]
    command += ["--report", str(report_file), "-r", str(REQUIREMENTS)]
    started = time.monotonic()
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Python {python}: pip did not resolve requirements.txt within {PIP_TIMEOUT_S} s")
    seconds = time.monotonic() - started
    if run.returncode != 0 and tool.network_problem(run.stderr):
        pytest.skip(
            f"Python {python}: PyPI could not be read, so nothing was checked: {tool.network_problem(run.stderr)}"
        )
    if run.returncode != 0:
        what = tool.unresolvable(run.stderr, REQUIREMENTS) or "(pip names no package)"
        pytest.fail(
            f"Python {python} ({interpreter}): pip cannot install {what}\n{tool.stderr_tail(run.stderr)}"
        )

    report = json.loads(report_file.read_text())
    environment = report["environment"]
    assert environment["python_version"] == python, interpreter
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
