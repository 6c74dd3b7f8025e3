"""Write requirements.txt: the exact versions, in this environment, of the runtime dependencies
listed in pyproject.toml and of everything they depend on.

    python tools/pin_requirements.py            # rewrite requirements.txt from this environment
    python tools/pin_requirements.py --check    # exit 1 when requirements.txt differs from it

(Python 3.11 or later: it reads pyproject.toml with tomllib.)

Run it in an environment where the test suite passes (after upgrading packages there, see the
README's "Upgrading the pins"). pyproject.toml keeps ranges for people who install the
package; requirements.txt is what the Space, the README's first command and CI install.
The CUDA libraries (nvidia-*, cuda-*, triton) are left out: the torch wheel pins its own, and
a CPU-only torch needs none of them.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LEFT_TO_TORCH = ("nvidia-", "cuda-", "triton")
BUILD_TOOLS = {"setuptools", "pip", "wheel"}
# Runtime dependencies of the upscaler peers, pinned ahead of their entry in pyproject.toml
# (listing them in both places is harmless).
ALSO_PINNED = ("spandrel", "spandrel_extra_arches")
HEADER = """\
# Exact versions the test suite passed with: the runtime dependencies (pyproject.toml) and
# everything they depend on. Used by the Hugging Face Space, `pip install -r requirements.txt`
# and CI. Regenerate with `python tools/pin_requirements.py` (see the README, "Upgrading the
# pins"); pyproject.toml keeps version ranges. CUDA libraries come with the torch wheel.
"""


def direct_dependencies(extra: list[str]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in [*project["dependencies"], *ALSO_PINNED, *extra]]


def _applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in extras or {""})


def _own_marker(requirement: Requirement) -> str | None:
    """The requirement's marker without its ``extra == ...`` part (None: always)."""
    if requirement.marker is None or "extra" in str(requirement.marker):
        return None
    return str(requirement.marker)


def closure(roots: list[Requirement]) -> dict[str, tuple[str, str, str | None]]:
    """canonical name -> (distribution name, installed version, marker or None)."""
    pinned: dict[str, tuple[str, str, str | None]] = {}
    todo = [(requirement, None) for requirement in roots]
    seen_extras: dict[str, set[str]] = {}
    while todo:
        requirement, inherited = todo.pop()
        key = canonicalize_name(requirement.name)
        if key in BUILD_TOOLS or key.startswith(LEFT_TO_TORCH):
            continue
        marker = _own_marker(requirement) or inherited
        if marker is not None and not Marker(marker).evaluate():
            continue
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError as exc:
            raise SystemExit(
                f"{requirement.name} is required but not installed here: install it first"
            ) from exc
        extras = set(requirement.extras)
        if key in pinned:
            name, version, known = pinned[key]
            pinned[key] = (name, version, None if known is None or marker is None else known)
            if extras <= seen_extras[key]:
                continue
        else:
            pinned[key] = (dist.metadata["Name"], dist.version, marker)
        seen_extras[key] = seen_extras.get(key, set()) | extras
        for text in dist.requires or []:
            child = Requirement(text)
            if _applies(child, extras):
                todo.append((child, marker))
    return pinned


def render(pinned: dict[str, tuple[str, str, str | None]]) -> str:
    lines = [HEADER]
    for key in sorted(pinned):
        name, version, marker = pinned[key]
        lines.append(f"{name}=={version}" + (f" ; {marker}" if marker else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--extra", action="append", default=[], help="also pin this requirement (repeatable)")
    parser.add_argument("--output", type=Path, default=ROOT / "requirements.txt")
    args = parser.parse_args(argv)
    text = render(closure(direct_dependencies(args.extra)))
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} differs from this environment: run python tools/pin_requirements.py")
            return 1
        print(f"{args.output} matches this environment")
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}: {len(text.splitlines()) - HEADER.count(chr(10)) - 1} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
