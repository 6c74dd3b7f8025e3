"""Lazy package namespaces, the one place the package defers imports (as diffusers' ``_LazyModule``
and scientific-python's ``lazy_loader.attach`` do).

A package's ``__init__`` names what it exports and the submodule that defines each name; the
submodule is imported on first attribute access. So ``import osdface.degradations`` or the CLI's
``--help`` do not load torch, diffusers or facexlib through a package ``__init__``, while every
leaf module imports what it needs at its top.

    __getattr__, __dir__, __all__ = attach(__name__, {"pipeline_osdface": ["OSDFacePipeline"]})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def attach(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``: each name in ``exports[submodule]`` is
    ``package.submodule.name``, and each submodule is reachable as an attribute too."""
    owner = {name: submodule for submodule, names in exports.items() for name in names}
    clash = sorted(set(owner) & set(exports))
    if clash:
        raise ValueError(f"{package}: {clash} name both a submodule and an exported name")
    names = sorted(owner)

    def __getattr__(name: str) -> Any:
        if name in owner:
            return getattr(importlib.import_module(f"{package}.{owner[name]}"), name)
        if name in exports:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(names) | set(exports))

    return __getattr__, __dir__, list(names)
