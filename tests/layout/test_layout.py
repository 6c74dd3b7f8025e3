"""The floor plan holds: no import circle, no repeated module name, no private name imported
from another module, an app start that reads one way, and tests that mirror the source tree
without importing each other (tools/layout_report.py reads the source with ``ast``)."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
# Test folders that are not a package of the source: shared code, data, the tree itself, tools/.
NOT_MIRRORS = {"helpers", "fixtures", "layout", "tools", "__pycache__"}


def load_report():
    spec = importlib.util.spec_from_file_location("layout_report", ROOT / "tools" / "layout_report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


report = load_report()


@pytest.fixture(scope="module")
def known():
    return report.modules()


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_find_a_circle_a_repeated_name_and_a_private_import(tmp_path):
    """The same functions the tests below use, on a tree that breaks every rule."""
    write_tree(
        tmp_path,
        {
            "osdface/__init__.py": "",
            "osdface/a/__init__.py": "",
            "osdface/a/util.py": "from osdface.b.util import _secret\n",
            "osdface/b/__init__.py": "",
            # the circle goes through an import inside a function: still a circle in the design
            "osdface/b/util.py": "_secret = 1\ndef f():\n    from osdface.a import util\n",
        },
    )
    known = report.modules(tmp_path)
    assert report.circles(report.graph(known)) == [["osdface.a.util", "osdface.b.util"]]
    assert list(report.repeated_names(known)) == ["util.py"]
    (private,) = report.private_imports(known)
    assert private.endswith("imports osdface.b.util._secret")


def test_no_import_circle(known):
    assert report.circles(report.graph(known)) == []


def test_no_two_modules_share_a_file_name(known):
    assert report.repeated_names(known) == {}


def test_nothing_imports_another_modules_private_name(known):
    assert report.private_imports(known) == []


def test_the_app_starts_one_way_probe_then_models_then_service(known):
    edges = report.graph(known)
    assert not edges["osdface.app.probe"] & {"osdface.app.models", "osdface.app.service"}
    assert "osdface.app.service" not in edges["osdface.app.models"]
    assert {"osdface.app.probe", "osdface.app.models"} <= edges["osdface.app.service"]


def test_every_test_folder_mirrors_a_package_and_test_file_names_are_unique():
    source_packages = {path.parent.name for path in (ROOT / "osdface").glob("*/__init__.py")}
    source_packages.add("benchmarks")
    folders = {path.name for path in TESTS.iterdir() if path.is_dir()} - NOT_MIRRORS
    assert folders <= source_packages, f"test folders without a package: {sorted(folders - source_packages)}"
    names = [path.name for path in TESTS.rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted(name for name in names if names.count(name) > 1)


def test_no_test_file_imports_another_test_file():
    offenders = []
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.split(".")[-1].startswith("test_")
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} from {node.module}")
            elif isinstance(node, ast.Import):
                offenders += [
                    f"{path.relative_to(ROOT)}:{node.lineno} import {alias.name}"
                    for alias in node.names
                    if alias.name.split(".")[-1].startswith("test_")
                ]
    assert offenders == []
