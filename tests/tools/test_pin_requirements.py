"""requirements.txt pins what the suite runs with; the README and CI install it the same way
(issue 13, items 9 to 11: the documentation a newcomer follows)."""

from __future__ import annotations

import importlib.util
import itertools
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "pin_requirements.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("pin_requirements", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()
PYTHONS = tool.PYTHONS
THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def requirements() -> list[Requirement]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith(("#", "-"))]


def environment(python: str) -> dict[str, str]:
    """This machine's marker environment as it would be on ``python``."""
    return {**default_environment(), "python_version": python, "python_full_version": f"{python}.0"}


def pins(python: str = THIS_PYTHON) -> dict[str, Requirement]:
    """The lines that apply on ``python`` (one per package)."""
    env = environment(python) if python != THIS_PYTHON else default_environment()
    applying = [r for r in requirements() if r.marker is None or r.marker.evaluate(env)]
    by_name = {canonicalize_name(r.name): r for r in applying}
    assert len(by_name) == len(applying), f"two lines for one package on Python {python}"
    return by_name


def test_every_pin_is_exact_and_is_what_this_suite_runs_with():
    for requirement in requirements():
        (spec,) = requirement.specifier
        assert spec.operator == "==", requirement
    pinned = pins()
    assert len(pinned) > 50  # the runtime dependencies and theirs, not only the direct ones
    for requirement in pinned.values():
        installed = metadata.version(requirement.name)
        assert requirement.specifier.contains(installed), f"{requirement} but {installed} is installed"


@pytest.mark.parametrize("python", PYTHONS)
def test_every_direct_dependency_is_pinned_within_its_range(python):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = pins(python)
    for text in project["dependencies"]:
        wanted = Requirement(text)
        assert wanted.specifier, f"pyproject.toml keeps a range for {wanted.name}"
        pin = pinned[canonicalize_name(wanted.name)]
        version = next(iter(pin.specifier)).version
        assert wanted.specifier.contains(version, prereleases=True), (python, text, version)
    for name in ("spandrel", "spandrel_extra_arches", "torch", "gradio"):
        assert canonicalize_name(name) in pinned, name
    assert not any(key.startswith(("nvidia-", "cuda-", "triton")) for key in pinned)


def test_the_supported_pythons_start_where_pyproject_says():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={PYTHONS[0]}"
    assert THIS_PYTHON in PYTHONS


def test_python_markers_name_runs_of_the_supported_pythons():
    assert tool.python_condition(PYTHONS) is None
    assert tool.python_condition(PYTHONS[:1]) == f'python_version < "{PYTHONS[1]}"'
    assert tool.python_condition(PYTHONS[1:]) == f'python_version >= "{PYTHONS[1]}"'
    assert tool.python_condition(PYTHONS[1:2]) == (
        f'python_version >= "{PYTHONS[1]}" and python_version < "{PYTHONS[2]}"'
    )
    own = 'platform_machine == "x86_64" or platform_machine == "aarch64"'
    for size in range(1, len(PYTHONS) + 1):
        for chosen in itertools.combinations(PYTHONS, size):
            for marker in (None, own, tool.python_condition(chosen)):
                line = tool.line_marker(chosen, marker)
                # The marker holds on exactly these Pythons, and the tool reads back what it wrote.
                for python in PYTHONS:
                    holds = line is None or Requirement(f"x ; {line}").marker.evaluate(environment(python))
                    assert holds == (python in chosen), (chosen, marker, line, python)
                assert tool.line_marker(*tool.split_marker(line)) == line, (chosen, marker)


def skip_unless_written_from_this_python() -> None:
    """The file names the Python whose environment gave its pins (the others are resolved from
    those); from another Python, the check would rewrite the whole file around that Python.
    The pins that apply here are still checked against what is installed, above."""
    written_from = re.search(r"passed with \(Python ([\d.]+)\)", (ROOT / "requirements.txt").read_text())
    if written_from and written_from.group(1) != THIS_PYTHON:
        pytest.skip(
            f"requirements.txt was written from Python {written_from.group(1)}; this is {THIS_PYTHON}"
        )


def test_the_offline_check_reproduces_this_pythons_lines():
    skip_unless_written_from_this_python()
    run = subprocess.run(
        [sys.executable, str(TOOL), "--check", "--offline"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "matches this environment" in run.stdout


@pytest.mark.slow
def test_the_refresh_command_reproduces_the_file():
    skip_unless_written_from_this_python()
    missing = [python for python in PYTHONS if tool.pip_runs.find_python(python) is None]
    if missing:
        pytest.skip(f"no interpreter for Python {', '.join(missing)} here (the tool's --python 3.X=PATH)")
    run = subprocess.run(
        [sys.executable, str(TOOL), "--check"],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    if run.returncode == tool.pip_runs.NETWORK_EXIT:
        pytest.skip(f"PyPI could not be read, so nothing was checked: {run.stderr.strip()}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "matches this environment" in run.stdout


# pip 26.3's words when the CI machine lost PyPI in the middle of a wheel (the run skips, not fails).
PIP_DOWNLOAD_CUT = """\
  WARNING: Attempting to resume incomplete download (148.9 MB/322.4 MB, attempt 5)
  WARNING: Connection interrupted while downloading.
error: incomplete-download

x Download failed after 6 attempts because not enough bytes were received (148.9 MB/322.4 MB)
note: This is an issue with network connectivity, not pip.
"""
# pip's words when a pin has no release for that Python (a real failure).
PIP_NO_RELEASE = """\
ERROR: Could not find a version that satisfies the requirement numpy==2.3.5 (from versions: 2.2.6)
ERROR: No matching distribution found for numpy==2.3.5
"""


def test_a_cut_download_is_told_apart_from_a_pin_pip_cannot_install():
    assert (
        tool.pip_runs.network_problem(PIP_DOWNLOAD_CUT)
        == "WARNING: Connection interrupted while downloading."
    )
    assert tool.pip_runs.unresolvable(PIP_DOWNLOAD_CUT) == ""
    assert tool.pip_runs.network_problem(PIP_NO_RELEASE) == ""
    assert tool.pip_runs.unresolvable(PIP_NO_RELEASE) == "numpy==2.3.5"


# pip 24.2's last words in the CI run whose disk filled up with the wheels pip downloads to read
# their dependencies (this index serves no metadata files).
PIP_DISK_FULL = """\
WARNING: Location 'wheels' is ignored: it is either a non-existing path or lacks a specific scheme.
ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device
"""


def test_a_full_disk_is_named_with_the_free_space_and_the_fix(tmp_path):
    said = tool.pip_runs.disk_problem(PIP_DISK_FULL, tmp_path / "pip")
    assert "No space left on device" in said and f"GB free now under {tmp_path / 'pip'}" in said
    assert "free about 5 GB there" in said
    assert tool.pip_runs.disk_problem(PIP_DOWNLOAD_CUT, tmp_path) == ""
    assert tool.pip_runs.unresolvable(PIP_DISK_FULL) == ""
    assert "is ignored" not in tool.pip_runs.stderr_tail(PIP_DISK_FULL)


def test_pips_temporary_files_go_where_the_caller_removes_them(tmp_path):
    environment = tool.pip_runs.pip_environment(tmp_path / "pip")
    assert environment["TMPDIR"] == str(tmp_path / "pip") and (tmp_path / "pip").is_dir()
    run = subprocess.run(
        [sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert run.stdout.strip() == str(tmp_path / "pip")


def test_ci_runs_exactly_the_readmes_test_command_with_the_pins():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = ci[ci.index(next(line for line in ci if line.startswith("# The README's test command"))) + 1]
    assert command == 'pip install -r requirements.txt -e ".[test]" && python -m pytest'
    assert f"```bash\n{command}\n```" in readme


def readme_commands() -> list[list[str]]:
    """The commands of the README's bash blocks, one list of words each, as the shell splits
    them: comments dropped, ``a && b`` two commands."""
    readme = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        for line in block.splitlines():
            command: list[str] = []
            for word in [*shlex.split(line, comments=True), "&&"]:
                if word != "&&":
                    command.append(word)
                elif command:
                    commands.append(command)
                    command = []
    return commands


# The options of `pip install` the README may use: flag -> whether it takes a value.
PIP_INSTALL_OPTIONS = {
    "-r": True,
    "--requirement": True,
    "-e": True,
    "--editable": True,
    "--index-url": True,
    "--extra-index-url": True,
    "-q": False,
    "--quiet": False,
    "-U": False,
    "--upgrade": False,
}


def pip_install(words: list[str]):
    """(options, requirement arguments) of ``pip install ...``; an option this test does not
    know fails it (so a README command is never half understood)."""
    assert words[:2] == ["pip", "install"], words
    options = SimpleNamespace(requirements=[], editables=[], index_url=None)
    arguments = []
    rest = iter(words[2:])
    for word in rest:
        if not word.startswith("-"):
            arguments.append(word)
            continue
        flag, _, value = word.partition("=")
        assert flag in PIP_INSTALL_OPTIONS, f"pip install option {flag} in {words}"
        if PIP_INSTALL_OPTIONS[flag] and not value:
            value = next(rest)
        if flag in ("-r", "--requirement"):
            options.requirements.append(value)
        elif flag in ("-e", "--editable"):
            options.editables.append(value)
        elif flag == "--index-url":
            options.index_url = value
    return options, arguments


def test_the_readmes_pip_commands_parse_and_install_the_pins():
    installs = [words for words in readme_commands() if words[:2] == ["pip", "install"]]
    assert len(installs) >= 3  # the app's, the tests' and the CPU route's
    pinned = pins()
    for words in installs:
        options, arguments = pip_install(words)
        for path in [*options.requirements, *(e.split("[")[0] for e in options.editables)]:
            assert (ROOT / path).exists(), (words, path)
        for argument in arguments:
            wanted = Requirement(argument)
            pin = pinned[canonicalize_name(wanted.name)]
            assert wanted.specifier == pin.specifier, (
                f"the README installs {wanted}, requirements.txt pins {pin}"
            )


def test_the_readmes_cpu_route_installs_the_pinned_cpu_torch_before_the_requirements():
    commands = readme_commands()
    cpu = [i for i, words in enumerate(commands) if "https://download.pytorch.org/whl/cpu" in words]
    assert len(cpu) == 1, cpu
    options, arguments = pip_install(commands[cpu[0]])
    assert options.index_url == "https://download.pytorch.org/whl/cpu"
    pinned = pins()
    assert sorted(arguments) == sorted(str(pinned[name]) for name in ("torch", "torchvision"))
    # The requirements install next; pip keeps the CPU build because its local version
    # (+cpu) satisfies the pin, so nothing pulls the CUDA build back in.
    options, _ = pip_install(commands[cpu[0] + 1])
    assert options.requirements == ["requirements.txt"]
    for name in ("torch", "torchvision"):
        version = next(iter(pinned[name].specifier)).version
        assert pinned[name].specifier.contains(f"{version}+cpu"), pinned[name]


def test_readme_names_every_host_with_its_python_and_torch_build():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Where it runs", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    hosts = " ".join(row.split(" | ")[0] for row in rows)
    for host in ("CPU Space", "GPU Space", "ZeroGPU", "535", "550", "570", "580", "without a GPU", "macOS"):
        assert host in hosts, host
    torch_pin = next(iter(pins()["torch"].specifier)).version
    for row in rows:
        assert len(row.split(" | ")) == 5, row  # host, Python, torch build, its CUDA, what was run
    linux_rows = [row for row in rows if "Intel" not in row]
    assert all(f"torch {torch_pin}" in row for row in linux_rows)
    assert f"{PYTHONS[0]} to {PYTHONS[-1]}" in table and "3.10.13" in table
    front_matter = readme.split("---\n", 2)[1]
    space_python = re.search(r'^python_version: "([\d.]+)"$', front_matter, re.M).group(1)
    assert space_python == PYTHONS[0], "every Space runs the Python ZeroGPU documents"
    assert f"| {PYTHONS[0]} (this README's `python_version`) |" in table


def test_readme_says_how_to_deploy_the_space_and_what_the_gpu_banner_means():
    readme = (ROOT / "README.md").read_text()
    deploy = readme.split("## Deploying the Space", 1)[1].split("\n## ", 1)[0]
    for step in (
        "**Create it.**",
        "**Choose the hardware**",
        "preload_from_hub",
        "**ZeroGPU:**",
        "**The first request**",
    ):
        assert step in deploy, step
    assert "A GPU is present but CUDA cannot start" in deploy
    banner = readme.split("### When the GPU is not used", 1)[1].split("\n## ", 1)[0]
    assert "pip install torch==2.8.0 torchvision==0.23.0" in banner and "osdface doctor" in banner


def test_the_readmes_app_and_pin_tool_commands_are_accepted(monkeypatch):
    """Every ``python app.py ...`` the README shows (in a block or inline) parses with the app's
    own arguments, ``--share`` asking for the public link; every pin tool command parses with the
    tool's."""
    from osdface.app.arguments import parse_args

    monkeypatch.delenv("OSDFACE_AUTH", raising=False)
    readme = (ROOT / "README.md").read_text()
    inline = [shlex.split(code) for code in re.findall(r"`(python app\.py[^`]*)`", readme)]
    app_commands = [words for words in readme_commands() + inline if words[:2] == ["python", "app.py"]]
    assert any("--share" in words for words in app_commands)
    for words in app_commands:
        if "--help" in words:
            with pytest.raises(SystemExit) as printed:
                parse_args(words[2:])
            assert printed.value.code == 0, words
            continue
        _, launch = parse_args(words[2:])
        assert launch.share == ("--share" in words), words

    class Parsed(Exception):
        pass

    def stop(*args, **kwargs):
        raise Parsed  # reached only once the arguments parsed

    monkeypatch.setattr(tool, "direct_dependencies", stop)
    tool_commands = [
        words for words in readme_commands() if words[:2] == ["python", "tools/pin_requirements.py"]
    ]
    assert any("--check" in words for words in tool_commands)
    for words in tool_commands:
        with pytest.raises(Parsed):
            tool.main(words[2:])


# ------------------------------------------------------------------- one OpenCV (issue 22)


def test_facexlibs_opencv_python_is_the_headless_stand_in_on_every_python():
    """requirements.txt finds wheels/ (--find-links, read relative to the file), whose
    opencv-python V+headless pip prefers to PyPI's V: a newer version that still satisfies
    `opencv-python==V`. A pin with that local label would fail where wheels/ is absent (a Space),
    and no pin without wheels/ would bring OpenCV's GUI build."""
    text = (ROOT / "requirements.txt").read_text()
    assert text.splitlines().count(tool.opencv_shim.FIND_LINKS) == 1
    assert tool.opencv_shim.FIND_LINKS == "--find-links wheels" and (ROOT / "wheels").is_dir()
    for python in PYTHONS:
        pinned = pins(python)
        headless = pinned["opencv-python-headless"].specifier
        assert pinned["opencv-python"].specifier == headless, python  # the stand-in's release
        assert not {"opencv-contrib-python", "opencv-contrib-python-headless"} & set(pinned)
    assert tool.opencv_shim.problems(tool.opencv_shim.FOLDER, ROOT / "requirements.txt") == []


def test_the_stand_in_holds_no_code_only_the_headless_requirement():
    import zipfile

    (version,) = tool.opencv_shim.pinned_provider_version(ROOT / "requirements.txt")
    with zipfile.ZipFile(ROOT / "wheels" / tool.opencv_shim.wheel_name(version)) as wheel:
        names = wheel.namelist()
        meta = wheel.read(f"opencv_python-{version}+headless.dist-info/METADATA").decode()
    assert all(name.startswith(f"opencv_python-{version}+headless.dist-info/") for name in names), names
    headers = dict(line.split(": ", 1) for line in meta.split("\n\n", 1)[0].splitlines())
    assert headers["Name"] == "opencv-python" and headers["Version"] == f"{version}+headless"
    assert [line for line in meta.splitlines() if line.startswith("Requires-Dist")] == [
        f"Requires-Dist: opencv-python-headless=={version}"
    ]
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "opencv_shim.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_pins_name_the_release_without_a_local_label_and_read_back():
    here = {
        "opencv-python": ("opencv-python", "5.0.0.93+headless", None),
        "torch": ("torch", "2.8.0+cpu", None),
    }
    elsewhere = {"opencv-python": ("opencv-python", "5.0.0.93", None), "torch": ("torch", "2.8.0", None)}
    per_python = {python: here if python == THIS_PYTHON else elsewhere for python in PYTHONS}
    text = tool.render(per_python, "2026-01-01T00:00:00Z")
    assert "\n--find-links wheels\n" in text
    assert "opencv-python==5.0.0.93\n" in text and "torch==2.8.0\n" in text and "+" not in text
    assert tool.read_pins(text)[THIS_PYTHON]["opencv-python"] == ("opencv-python", "5.0.0.93", None)
