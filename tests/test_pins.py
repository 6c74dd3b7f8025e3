"""requirements.txt pins what the suite runs with; the README and CI install it the same way
(issue 13, items 9 to 11: the documentation a newcomer follows)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def pins() -> dict[str, Requirement]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    requirements = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {canonicalize_name(r.name): r for r in requirements}


def test_every_pin_is_exact_and_is_what_this_suite_runs_with():
    pinned = pins()
    assert len(pinned) > 50  # the runtime dependencies and theirs, not only the direct ones
    for requirement in pinned.values():
        (spec,) = requirement.specifier
        assert spec.operator == "==", requirement
        if requirement.marker is None or requirement.marker.evaluate():
            installed = metadata.version(requirement.name)
            assert spec.contains(installed), f"{requirement} but {installed} is installed"


def test_every_direct_dependency_is_pinned_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = pins()
    for text in project["dependencies"]:
        wanted = Requirement(text)
        assert wanted.specifier, f"pyproject.toml keeps a range for {wanted.name}"
        pin = pinned[canonicalize_name(wanted.name)]
        version = next(iter(pin.specifier)).version
        assert wanted.specifier.contains(version, prereleases=True), (text, version)
    for name in ("spandrel", "spandrel_extra_arches", "torch", "gradio"):
        assert canonicalize_name(name) in pinned, name
    assert not any(key.startswith(("nvidia-", "cuda-")) for key in pinned)


def test_the_refresh_command_reproduces_the_file():
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "pin_requirements.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "matches this environment" in run.stdout


def test_ci_runs_exactly_the_readmes_test_command_with_the_pins():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = ci[ci.index(next(line for line in ci if line.startswith("# The README's test command"))) + 1]
    assert command == 'pip install -r requirements.txt -e ".[test]" && python -m pytest'
    assert f"```bash\n{command}\n```" in readme
    assert "python tools/pin_requirements.py" in readme and "Upgrading the pins" in readme


def test_readme_says_how_to_install_on_a_cpu_and_what_it_costs():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Installing on a machine without a GPU", 1)[1].split("\n### ", 1)[0]
    assert (
        "pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu"
        in section
    )
    assert re.search(r"6\.7 GB environment and took 5\.4 min", section)
    assert "2.3 GB" in section
    pinned = pins()
    assert f"torch=={next(iter(pinned['torch'].specifier)).version}" in section


def test_readme_says_what_the_without_vre_output_is_and_how_to_share():
    readme = (ROOT / "README.md").read_text()
    assert "This is not the\n  paper's ablation" in readme and "ours is not retrained" in readme
    assert "`python app.py --share`" in readme and "public" in readme and "1 week" in readme
