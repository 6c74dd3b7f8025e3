"""The package's floor plan in figures: modules at the top of ``osdface/``, import circles,
repeated module names, imports of another module's private names, the largest module and the
longest function.

    python tools/layout_report.py          # print the figures
    python tools/layout_report.py --check  # exit 1 when there is a circle, a repeated name or a
                                           # private import

Read from the source with ``ast`` (nothing is imported), so it runs without torch. An import inside
a function counts like one at the top: a circle through a lazy import is still a circle in the
design.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "osdface"
# Files that are modules of the project without being in the package.
ROOT_MODULES = ("app.py",)
BENCHMARKS = "benchmarks"
SPECIAL_NAMES = {"__init__.py", "__main__.py"}


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. osdface.pipeline.pipeline_osdface.lora
    path: Path
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


def modules(root: Path = ROOT) -> dict[str, Module]:
    found = {}
    paths = sorted((root / PACKAGE).rglob("*.py")) + sorted((root / BENCHMARKS).rglob("*.py"))
    paths += [root / name for name in ROOT_MODULES]
    for path in paths:
        if not path.exists():
            continue
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        found[name] = Module(name, path, ast.parse(path.read_text(), str(path)))
    return found


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _owner(name: str, known: dict[str, Module]) -> str | None:
    """The project module ``name`` lives in (``a.b.c`` -> ``a.b`` when ``c`` is a name in it)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def lazy_exports(package: Module) -> dict[str, str]:
    """name -> submodule (dotted, absolute) from a package's ``attach(__name__, {...})``."""
    exports = {}
    for node in ast.walk(package.tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "attach" and len(node.args) == 2:
            mapping = node.args[1]
            if isinstance(mapping, ast.Dict):
                for key, names in zip(mapping.keys, mapping.values):
                    submodule = f"{package.name}.{ast.literal_eval(key)}"
                    exports[submodule.rpartition(".")[2]] = submodule
                    for name in ast.literal_eval(names):
                        exports[name] = submodule
    return exports


def _deferred(module: Module, known: dict[str, Module]) -> list[tuple[str, str, int]]:
    """What runs later: ``pkg.Name`` where ``pkg`` is a lazy package of the project bound at the
    top (``from osdface import pkg``), and ``lazy.module("osdface...")``."""
    packages = {}
    for node in module.tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known and known[alias.name].is_package and "." not in alias.name:
                    packages[alias.asname or alias.name] = known[alias.name]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                full = f"{source}.{alias.name}"
                if full in known and known[full].is_package:
                    packages[alias.asname or alias.name] = known[full]
    for node in module.tree.body:  # import osdface.pipeline: the chain osdface.pipeline.X
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname is None and alias.name in known and known[alias.name].is_package:
                    packages[alias.name] = known[alias.name]
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Attribute):
            owner = ast.unparse(node.value)
            if owner in packages:
                target = lazy_exports(packages[owner]).get(node.attr)
                if target in known:
                    found.append((target, "", node.lineno))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            owner = _owner(node.args[0].value, known)
            if owner:
                found.append((owner, "", node.lineno))
    return found


def imports(module: Module, known: dict[str, Module]) -> list[tuple[str, str, int]]:
    """(imported project module, imported name or '', line) for every import in ``module``, the
    deferred ones included."""
    found = _deferred(module, known)
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                owner = _owner(alias.name, known)
                if owner:
                    found.append((owner, "", node.lineno))
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                full = f"{source}.{alias.name}"
                if full in known:  # a submodule
                    found.append((full, "", node.lineno))
                else:
                    owner = _owner(source, known)
                    if owner:
                        found.append((owner, alias.name, node.lineno))
    return found


def graph(known: dict[str, Module]) -> dict[str, set[str]]:
    """Who imports whom; a package's ``__init__`` is not an edge of its own submodules (Python
    runs it first anyway, and a lazy ``__init__`` only names them)."""
    edges = {name: set() for name in known}
    for name, module in known.items():
        for target, _, _ in imports(module, known):
            if (
                target != name
                and not name.startswith(target + ".")
                and not (known[name].is_package and target.startswith(name + "."))
            ):
                edges[name].add(target)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def repeated_names(known: dict[str, Module]) -> dict[str, list[str]]:
    names = Counter(module.path.name for module in known.values() if module.path.name not in SPECIAL_NAMES)
    return {
        file: sorted(_shown(m.path) for m in known.values() if m.path.name == file)
        for file, count in names.items()
        if count > 1
    }


def private_imports(known: dict[str, Module]) -> list[str]:
    """``from other import _name``: another module's private name used here."""
    found = []
    for name, module in known.items():
        for target, imported, line in imports(module, known):
            if imported.startswith("_") and not imported.startswith("__") and target != name:
                found.append(f"{_shown(module.path)}:{line} imports {target}.{imported}")
    return found


def longest_function(known: dict[str, Module]) -> tuple[int, str]:
    best = (0, "")
    for module in known.values():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > best[0]:
                    best = (length, f"{_shown(module.path)}:{node.lineno} {node.name}")
    return best


def largest_module(known: dict[str, Module]) -> tuple[int, str]:
    return max((len(m.path.read_text().splitlines()), _shown(m.path)) for m in known.values())


def top_level_modules(root: Path = ROOT) -> list[str]:
    return sorted(p.name for p in (root / PACKAGE).glob("*.py") if p.name not in SPECIAL_NAMES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the package's floor plan in figures")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 on a circle, repeated name or private import"
    )
    args = parser.parse_args(argv)
    known = modules()
    found_circles = circles(graph(known))
    repeated = repeated_names(known)
    private = private_imports(known)
    lines, where = largest_module(known)
    length, function = longest_function(known)
    top = top_level_modules()
    print(f"modules at the top of {PACKAGE}/: {len(top)} ({', '.join(top)})")
    print(f"modules in all: {len(known)}")
    print(f"import circles: {len(found_circles)}")
    for circle in found_circles:
        print(f"  {' <-> '.join(circle)}")
    print(f"repeated module names: {len(repeated)}")
    for file, paths in sorted(repeated.items()):
        print(f"  {file}: {', '.join(paths)}")
    print(f"imports of another module's private name: {len(private)}")
    for line in private:
        print(f"  {line}")
    print(f"largest module: {where} ({lines} lines)")
    print(f"longest function: {function} ({length} lines)")
    if args.check and (found_circles or repeated or private):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
