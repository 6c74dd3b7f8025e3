"""Subcommands of the ``osdface`` CLI (see ``osdface/cli.py``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

# module name -> each exposes register(subparsers)
_MODULES = ("osdface.commands.restore", "osdface.commands.eval_fr")


def _registrars() -> list[Callable]:
    registrars = []
    for name in _MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Only a subcommand module that does not exist yet is skipped; a missing
            # dependency inside one is a real error and propagates.
            if exc.name != name:
                raise
            continue
        registrars.append(module.register)
    return registrars


COMMANDS = _registrars()
