"""Write requirements.txt: exact versions of the runtime dependencies listed in pyproject.toml and of
everything they depend on, for every Python in PYTHONS.

    python tools/pin_requirements.py                    # rewrite requirements.txt (PyPI + interpreters)
    python tools/pin_requirements.py --check            # exit 1 when requirements.txt differs from it
    python tools/pin_requirements.py --check --offline  # the same for this Python's lines only

Run it in an environment where the test suite passes (after upgrading packages there, see the
README's "Upgrading the pins"). pyproject.toml keeps ranges for people who install the package;
requirements.txt is what the Space, the README's first command and CI install.

- This Python: the installed versions (what the suite ran with).
- Each other Python in PYTHONS: what this environment's pip resolves for that interpreter
  (`pip --python X install --dry-run --report`) from the same direct requirements, with every
  package capped at its version here (so each gets the newest release no newer than what the suite
  ran with), from PyPI files uploaded before the date in the file's header. Writing sets that date
  to today 00:00 UTC (--keep-date keeps the file's); --check reuses it, so it reproduces the file
  until a release is yanked.
- A package whose version or marker differs between Pythons, or that only some Pythons need, gets
  one line per version and marker under a python_version marker for those Pythons.
- Interpreters: --python 3.X=PATH, else a working python3.X on PATH, else the newest
  $PYENV_ROOT/versions/3.X.N (default ~/.pyenv). A missing one is an error unless --offline, which
  keeps the other Pythons' pins (and the date) as the file has them and writes or checks this
  Python's only.

- opencv-python is the stand-in in wheels/ (tools/opencv_shim.py, the README's "One OpenCV"): the
  file's `--find-links wheels` line offers it, each Python resolves with it, and pins name releases
  without a local label (5.0.0.93, not 5.0.0.93+headless; torch 2.8.0, not 2.8.0+cpu).

The CUDA libraries (nvidia-*, cuda-*, triton) are left out: the torch wheel pins its own, and a
CPU-only torch needs none of them. pip, setuptools and wheel are left out too.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import importlib.util
import itertools
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
# The Pythons requirements.txt installs on (pyproject.toml's requires-python starts at the first;
# ZeroGPU Spaces run 3.10).
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
LEFT_TO_TORCH = ("nvidia-", "cuda-", "triton")
BUILD_TOOLS = {"setuptools", "pip", "wheel"}
# Runtime dependencies of the upscaler restorers, pinned ahead of their entry in pyproject.toml
# (listing them in both places is harmless).
ALSO_PINNED = ("spandrel", "spandrel_extra_arches")
# Extras of pyproject.toml that the app uses by default, so the Space installs them too.
PINNED_EXTRAS = ("metrics",)
HEADER = """\
# Exact versions the test suite passed with (Python {this}): the runtime dependencies and the
# metrics extra (pyproject.toml) and everything they depend on. Used by the Hugging Face Space,
# `pip install -r requirements.txt` and CI. Regenerate with `python tools/pin_requirements.py`
# (see the README, "Upgrading the pins"); pyproject.toml keeps version ranges. CUDA libraries
# come with the torch wheel.
# Python {others}: what pip resolves there with each package capped at its version on {this}
# (python_version markers where they differ), from PyPI files uploaded before {date}
# One OpenCV, the headless one: facexlib asks for opencv-python, which wheels/ satisfies with a
# stand-in that only requires opencv-python-headless (tools/opencv_shim.py; see the README, "One
# OpenCV"). A Space's build reads this file without wheels/ and installs PyPI's opencv-python too.
{find_links}
"""
DATE_LINE = re.compile(r"^# .*uploaded before (\S+)$", re.MULTILINE)


def _beside(name: str):
    """tools/NAME.py, beside this file (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


opencv_shim = _beside("opencv_shim")
pip_runs = _beside("pip_runs")  # finding each Python; reading pip's failures

Dist = tuple[str, str, list[str]]  # name, version, requires-dist
Pin = tuple[str, str, str | None]  # name, version, marker (None: always)


def direct_dependencies(extra: list[str]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [text for name in PINNED_EXTRAS for text in project["optional-dependencies"][name]]
    return [Requirement(text) for text in [*project["dependencies"], *extras, *ALSO_PINNED, *extra]]


def installed(name: str) -> Dist | None:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    return dist.metadata["Name"], dist.version, dist.requires or []


def from_report(report: dict) -> Callable[[str], Dist | None]:
    """A lookup like ``installed`` over a ``pip install --report`` file's install list."""
    dists = {}
    for item in report["install"]:
        data = item["metadata"]
        dists[canonicalize_name(data["name"])] = (
            data["name"],
            data["version"],
            data.get("requires_dist", []),
        )
    return lambda name: dists.get(canonicalize_name(name))


def _applies(requirement: Requirement, extras: set[str], environment: Mapping[str, str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**environment, "extra": extra}) for extra in extras or {""})


def _own_marker(requirement: Requirement) -> str | None:
    """The requirement's marker without its ``extra == ...`` part (None: always)."""
    if requirement.marker is None or "extra" in str(requirement.marker):
        return None
    return str(requirement.marker)


def closure(
    roots: list[Requirement],
    lookup: Callable[[str], Dist | None],
    environment: Mapping[str, str],
    missing: str = "not installed here: install it first",
) -> dict[str, Pin]:
    """canonical name -> (distribution name, version, marker or None), markers evaluated in
    ``environment`` (a Python's marker environment: the one ``lookup`` describes)."""
    pinned: dict[str, Pin] = {}
    todo = [(requirement, None) for requirement in roots]
    seen_extras: dict[str, set[str]] = {}
    while todo:
        requirement, inherited = todo.pop()
        key = canonicalize_name(requirement.name)
        if key in BUILD_TOOLS or key.startswith(LEFT_TO_TORCH):
            continue
        marker = _own_marker(requirement) or inherited
        if marker is not None and not Marker(marker).evaluate(dict(environment)):
            continue
        dist = lookup(requirement.name)
        if dist is None:
            raise SystemExit(f"{requirement.name} is required but {missing}")
        extras = set(requirement.extras)
        if key in pinned:
            name, version, known = pinned[key]
            pinned[key] = (name, version, None if known is None or marker is None else known)
            if extras <= seen_extras[key]:
                continue
        else:
            pinned[key] = (dist[0], dist[1], marker)
        seen_extras[key] = seen_extras.get(key, set()) | extras
        for text in dist[2]:
            child = Requirement(text)
            if _applies(child, extras, environment):
                todo.append((child, marker))
    return pinned


def python_condition(pythons: Iterable[str]) -> str | None:
    """A python_version marker for these PYTHONS (None: all of them), as contiguous runs over
    PYTHONS; the first run is open downward and the last upward, like the Pythons around them."""
    chosen = {PYTHONS.index(python) for python in pythons}
    if len(chosen) == len(PYTHONS):
        return None
    runs = []
    for first in sorted(chosen):
        if first - 1 in chosen:
            continue
        last = first
        while last + 1 in chosen:
            last += 1
        parts = []
        if first > 0:
            parts.append(f'python_version >= "{PYTHONS[first]}"')
        if last < len(PYTHONS) - 1:
            parts.append(f'python_version < "{PYTHONS[last + 1]}"')
        runs.append(" and ".join(parts))
    if len(runs) == 1:
        return runs[0]
    return " or ".join(f"({run})" if " and " in run else run for run in runs)


def _grouped(marker: str) -> str:
    # `and` binds tighter than `or`: an operand with an `or` keeps its own meaning in parentheses.
    return f"({marker})" if " or " in marker else marker


def line_marker(pythons: Iterable[str], own: str | None) -> str | None:
    condition = python_condition(pythons)
    if condition is None or own is None or own == condition:
        return condition or own
    return f"{_grouped(condition)} and {_grouped(own)}"


def split_marker(marker: str | None) -> tuple[tuple[str, ...], str | None]:
    """The inverse of ``line_marker``: (the Pythons, the package's own marker)."""
    if marker is None:
        return PYTHONS, None
    subsets = [s for size in range(1, len(PYTHONS)) for s in itertools.combinations(PYTHONS, size)]
    # Longest condition first: `>= "3.12" and < "3.13"` (3.12 only) also starts with `>= "3.12"`.
    for pythons in sorted(subsets, key=lambda s: -len(python_condition(s))):
        condition = python_condition(pythons)
        if marker == condition:
            return pythons, None
        if marker.startswith(f"{_grouped(condition)} and "):
            own = marker[len(_grouped(condition)) + len(" and ") :]
            return pythons, own[1:-1] if " or " in own else own
    return PYTHONS, marker


def render(per_python: Mapping[str, Mapping[str, Pin]], date: str) -> str:
    others = ", ".join(python for python in PYTHONS if python != THIS_PYTHON)
    lines = [HEADER.format(this=THIS_PYTHON, others=others, date=date, find_links=opencv_shim.FIND_LINKS)]
    for key in sorted(set().union(*per_python.values())):
        groups: dict[tuple[str, str | None], list[str]] = {}
        for python in PYTHONS:
            if key in per_python[python]:
                _, version, own = per_python[python][key]
                # A local label names a build of the release (torch's +cpu, the OpenCV stand-in's
                # +headless): the pin names the release, which every build of it satisfies.
                version = public_version(version)
                groups.setdefault((version, own), []).append(python)
        # One spelling of the name for all its lines: this Python's where it has the package.
        name = next(per_python[p][key][0] for p in (THIS_PYTHON, *PYTHONS) if key in per_python[p])
        for (version, own), pythons in groups.items():
            marker = line_marker(pythons, own)
            lines.append(f"{name}=={version}" + (f" ; {marker}" if marker else ""))
    return "\n".join(lines) + "\n"


def public_version(version: str) -> str:
    return version.split("+", 1)[0]


def read_pins(text: str) -> dict[str, dict[str, Pin]]:
    """Python -> canonical name -> Pin, from a requirements.txt that ``render`` wrote."""
    per_python: dict[str, dict[str, Pin]] = {python: {} for python in PYTHONS}
    for line in text.splitlines():
        if not line.strip() or line.startswith(("#", "-")):  # comments, pip options
            continue
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        pythons, own = split_marker(line.split(";", 1)[1].strip() if ";" in line else None)
        for python in pythons:
            per_python[python][canonicalize_name(requirement.name)] = (requirement.name, spec.version, own)
    return per_python


def resolve(
    python: str, interpreter: str, roots: list[Requirement], caps: Mapping[str, Pin], date: str
) -> dict:
    """pip's --report of installing ``roots`` on ``interpreter`` with every package capped at ``caps``."""
    with tempfile.TemporaryDirectory(prefix=f"pins-{python}-") as tmp:
        folder = Path(tmp)
        (folder / "roots.txt").write_text("".join(f"{root}\n" for root in roots))
        (folder / "caps.txt").write_text(
            "".join(f"{name}<={public_version(version)}\n" for name, version, _ in caps.values())
        )
        # This pip, run for that interpreter: the same resolver everywhere, and --uploaded-prior-to,
        # which the interpreters' own (older) pips may lack.
        command = [sys.executable, "-m", "pip", "--python", interpreter, "install", "--dry-run"]
        command += [pip_runs.METADATA_BY_RANGE, "--resume-retries", "10"]
        command += ["--ignore-installed", "--quiet", "--report", str(folder / "report.json")]
        command += ["--uploaded-prior-to", date, "-c", str(folder / "caps.txt")]
        # requirements.txt's --find-links: the OpenCV stand-in, for opencv-python, on every Python.
        command += ["--find-links", str(opencv_shim.FOLDER)]
        command += ["-r", str(folder / "roots.txt")]
        run = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=1200,
            env=pip_runs.pip_environment(folder / "pip"),
        )
        if run.returncode != 0 and pip_runs.disk_problem(run.stderr, folder / "pip"):
            raise SystemExit(f"Python {python}: {pip_runs.disk_problem(run.stderr, folder / 'pip')}")
        if run.returncode != 0 and pip_runs.network_problem(run.stderr):
            print(
                f"PyPI could not be read for Python {python} ({interpreter}): {pip_runs.network_problem(run.stderr)}\n"
                "The pins were not checked; run it again when the network is back.",
                file=sys.stderr,
            )
            raise SystemExit(pip_runs.NETWORK_EXIT)
        if run.returncode != 0:
            what = pip_runs.unresolvable(run.stderr, folder / "roots.txt") or "see pip's output"
            raise SystemExit(
                f"pip cannot resolve the pins for Python {python} ({interpreter}): {what}\n"
                + pip_runs.stderr_tail(run.stderr)
            )
        report = json.loads((folder / "report.json").read_text())
    if report["environment"]["python_version"] != python:
        raise SystemExit(
            f"{interpreter} resolved for Python {report['environment']['python_version']}, not {python}"
        )
    return report


def resolve_others(roots: list[Requirement], here: Mapping[str, Pin], date: str, given: Mapping[str, str]):
    others = [python for python in PYTHONS if python != THIS_PYTHON]
    interpreters = {python: pip_runs.find_python(python, given) for python in others}
    missing = [python for python, interpreter in interpreters.items() if interpreter is None]
    if missing:
        raise SystemExit(
            "\n".join(
                f"no Python {python} found (python{python} on PATH, {pip_runs.pyenv_versions()}/{python}.N): "
                f"pass --python {python}=/path/to/python{python}"
                for python in missing
            )
            + "\n(or --offline to keep the other Pythons' pins as requirements.txt has them)"
        )
    # pip spends its time waiting for PyPI: the Pythons resolve side by side.
    with ThreadPoolExecutor(len(others)) as pool:
        reports = dict(
            zip(others, pool.map(lambda p: resolve(p, interpreters[p], roots, here, date), others))
        )
    return {
        python: closure(
            roots, from_report(report), report["environment"], f"missing from pip's report for {python}"
        )
        for python, report in reports.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--extra", action="append", default=[], help="also pin this requirement (repeatable)")
    parser.add_argument("--output", type=Path, default=ROOT / "requirements.txt")
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="3.X=PATH",
        help="the interpreter for 3.X (repeatable)",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="this Python's pins only: keep the other Pythons' from the file",
    )
    parser.add_argument(
        "--keep-date", action="store_true", help="resolve with the file's upload date, not today's"
    )
    args = parser.parse_args(argv)
    if THIS_PYTHON not in PYTHONS:
        raise SystemExit(f"this is Python {THIS_PYTHON}; run it with one of PYTHONS: {', '.join(PYTHONS)}")
    given = dict(item.partition("=")[::2] for item in args.python)
    if not set(given) <= set(PYTHONS) or not all(given.values()):
        raise SystemExit(f"--python takes 3.X=PATH, 3.X one of {', '.join(PYTHONS)}")

    roots = direct_dependencies(args.extra)
    here = closure(roots, installed, default_environment())
    current = args.output.read_text() if args.output.exists() else ""
    found = DATE_LINE.search(current)
    if args.check or args.offline or args.keep_date:
        if found is None:
            print(f"{args.output} names no upload date: run python tools/pin_requirements.py")
            return 1
        date = found.group(1)
    else:
        # Midnight: every file uploaded before it is on PyPI already, so the date reproduces this run.
        today = datetime.datetime.now(datetime.timezone.utc).date()
        date = f"{today.isoformat()}T00:00:00Z"
    if args.offline:
        per_python = {**read_pins(current), THIS_PYTHON: here}
    else:
        per_python = {THIS_PYTHON: here, **resolve_others(roots, here, date, given)}
    text = render(per_python, date)

    others = ", ".join(python for python in PYTHONS if python != THIS_PYTHON)
    if args.offline:
        scope = f"Python {THIS_PYTHON}; --offline: the lines of {others} were not re-resolved"
    else:
        scope = f"Python {THIS_PYTHON}, and pip's resolution for {others}"
    if args.check:
        if current != text:
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(), "file", "now", lineterm="")
            print("\n".join(list(diff)[:40]))
            print(
                f"{args.output} differs from this environment ({scope}): run python tools/pin_requirements.py"
            )
            return 1
        print(f"{args.output} matches this environment ({scope})")
        return 0
    args.output.write_text(text)
    shim = opencv_shim.problems(opencv_shim.FOLDER, args.output)
    if shim:
        print("\n".join(shim) + "\nwrite it: python tools/opencv_shim.py", file=sys.stderr)
        return 1
    counts = ", ".join(f"{len(per_python[python])} for {python}" for python in PYTHONS)
    print(f"wrote {args.output}: pins {counts} (files uploaded before {date}; {scope})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
