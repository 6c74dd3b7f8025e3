"""The package: it builds without a deprecation warning from its build backend (issue 22, item 7):
setuptools stops building projects that use the deprecated forms after 2027-02-18, and with them
the README's `pip install -e .` and CI would stop working; `python -m osdface` runs the command."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_wheel_builds_without_deprecation_warnings_and_carries_its_licence(tmp_path):
    # pip builds in an isolated environment with the setuptools pyproject.toml asks for, as a
    # user's install does; -v shows the backend's warnings, which pip otherwise hides.
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = build.stdout + build.stderr
    assert build.returncode == 0, output[-3000:]
    warnings = sorted(set(re.findall(r"\w*(?:Deprecation|BuildBackend)Warning: [^\n]*", output)))
    assert not warnings, "\n".join(warnings)
    (wheel,) = tmp_path.glob("osdface_studio-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_python_m_osdface_is_the_osdface_command():
    """For environments whose scripts folder is not on PATH (a notebook, a Space's shell)."""
    result = subprocess.run(
        [sys.executable, "-m", "osdface", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: osdface ")
    assert all(command in result.stdout for command in ("restore", "eval-fr", "doctor", "export"))
