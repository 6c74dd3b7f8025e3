"""The README's "Project layout" table describes the tree as it is: a row for every package of
``osdface/`` (and for ``benchmarks/`` and ``tools/``), naming each of its modules as ``name.py``,
and no row or module that is not there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPECIAL = {"__init__.py", "__main__.py"}
# Folders whose every module the table must name.
MODULE_FOLDERS = ("osdface", "benchmarks", "tools")


def layout_rows(readme: str) -> dict[str, str]:
    """path cell -> description cell, from the table under "## Project layout"."""
    section = readme.split("## Project layout", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `([^`]+)` \| (.+) \|", line.strip())
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def modules_named(description: str) -> set[str]:
    return set(re.findall(r"`(\w+\.py)`", description))


def expected_rows(root: Path) -> dict[str, set[str]]:
    """Each folder the table must describe -> the modules it must name."""
    folders = [root / "osdface", *sorted(p.parent for p in (root / "osdface").glob("*/__init__.py"))]
    folders += [root / name for name in MODULE_FOLDERS[1:]]
    return {
        f"{folder.relative_to(root).as_posix()}/": {
            p.name for p in folder.glob("*.py") if p.name not in SPECIAL
        }
        for folder in folders
    }


def layout_problems(readme: str, root: Path) -> list[str]:
    rows = layout_rows(readme)
    problems = [f"no row for {path}" for path in expected_rows(root) if path not in rows]
    for path, description in rows.items():
        if not (root / path).exists():
            problems.append(f"row {path}: not in the tree")
            continue
        expected = expected_rows(root).get(path)
        if expected is None:
            continue
        named = modules_named(description)
        problems += [f"row {path}: {name} is missing" for name in sorted(expected - named)]
        problems += [f"row {path}: {name} is not there" for name in sorted(named - expected)]
    return problems


def test_the_readme_layout_table_names_every_package_and_module_and_nothing_stale():
    assert layout_problems((ROOT / "README.md").read_text(), ROOT) == []


def test_a_stale_or_missing_module_is_found(tmp_path):
    (tmp_path / "osdface" / "pipeline").mkdir(parents=True)
    for name in (
        "osdface/__init__.py",
        "osdface/cli.py",
        "osdface/pipeline/__init__.py",
        "osdface/pipeline/lora.py",
    ):
        (tmp_path / name).write_text("")
    for name in MODULE_FOLDERS[1:]:
        (tmp_path / name).mkdir()
    readme = (
        "## Project layout\n\n| path | what |\n| --- | --- |\n"
        "| `osdface/` | `cli.py` |\n"
        "| `osdface/pipeline/` | `embedder.py` (moved away) |\n"
        "| `osdface/startup/` | gone |\n"
        "| `benchmarks/` | none |\n"
        "| `tools/` | none |\n"
    )
    assert layout_problems(readme, tmp_path) == [
        "row osdface/pipeline/: lora.py is missing",
        "row osdface/pipeline/: embedder.py is not there",
        "row osdface/startup/: not in the tree",
    ]
