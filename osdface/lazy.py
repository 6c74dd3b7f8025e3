"""The one place the package defers imports (as diffusers' ``_LazyModule`` and scientific-python's
``lazy_loader`` do), so that every module lists what it imports at its top while ``--help`` and
the app's page come up without loading torch, diffusers, spandrel or facexlib.

- ``attach``: a package's ``__init__`` names what it exports and the submodule that defines each
  name; the submodule is imported on first attribute access. A module that needs a heavy part
  of the package only when a function runs imports the package at its top
  (``from osdface import faces``) and reaches the part when it runs (``faces.FaceRestorer``).

      __getattr__, __dir__, __all__ = attach(__name__, {"pipeline_osdface": ["OSDFacePipeline"]})

- ``module``: the same for another library: ``torch = module("torch")`` at the top, imported on
  the first ``torch.something``. Only where the module does not use it at import time (a base
  class, a decorator); where it does, it imports it plainly.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
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


class _Deferred(ModuleType):
    """Stands for the module of the same name until an attribute is asked for: then imports it
    (the import system's own lock makes that safe from several threads) and answers from it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module(self.__name__), name)

    def __setattr__(self, name: str, value: Any) -> None:
        # a flag set through the stand-in (huggingface_hub's HF_HUB_OFFLINE) lands on the module
        setattr(importlib.import_module(self.__name__), name, value)

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module(self.__name__))

    def __repr__(self) -> str:
        return f"<module {self.__name__!r}, imported on first use>"


def module(name: str) -> ModuleType:
    """``name`` (a dotted module name), imported on first attribute access."""
    return _Deferred(name)
