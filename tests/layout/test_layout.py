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


def test_a_circle_through_a_lazy_package_attribute_is_still_found(tmp_path):
    """``from osdface import b`` at the top and ``b.thing`` when a function runs is an edge to
    the submodule ``attach`` names for ``thing``."""
    write_tree(
        tmp_path,
        {
            "osdface/__init__.py": "",
            "osdface/lazy.py": "",
            "osdface/a.py": "from osdface import b\ndef f():\n    return b.thing\n",
            "osdface/b/__init__.py": (
                "from osdface.lazy import attach\n__getattr__, __dir__, __all__ = attach(__name__, {'impl': ['thing']})\n"
            ),
            "osdface/b/impl.py": "from osdface import a\nthing = 1\n",
        },
    )
    known = report.modules(tmp_path)
    assert ["osdface.a", "osdface.b.impl"] in report.circles(report.graph(known))


def module_level_names(tree: ast.Module) -> set[str]:
    """Names a module binds at its top to a module: imports and ``lazy.module(...)``."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            if getattr(node.value.func, "attr", None) == "module":
                names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    return names


def shadowed_modules(tree: ast.Module) -> list[str]:
    """Functions that bind a local of the same name as a module they reach through it
    (``faces = ...`` then ``faces.FaceRestorer``): the call would go to the local."""
    modules = module_level_names(tree)
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        arguments = function.args.posonlyargs + function.args.args + function.args.kwonlyargs
        local = {argument.arg for argument in arguments}
        local |= {
            n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        }
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in local & modules
            ):
                found.append(f"{function.name}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def test_no_function_hides_a_module_it_uses_behind_a_local():
    assert shadowed_modules(
        ast.parse("import faces\ndef f(x):\n    faces = x\n    return faces.FaceRestorer\n")
    ) == ["f:4 faces.FaceRestorer"]
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in [*sorted((ROOT / "osdface").rglob("*.py")), ROOT / "app.py"]
        if (found := shadowed_modules(ast.parse(path.read_text())))
    }
    assert offenders == {}
