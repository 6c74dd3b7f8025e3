"""Subcommands of the ``osdface`` CLI (see ``osdface/cli.py``); each module exposes
``register(subparsers)``."""

from __future__ import annotations

from osdface.commands import eval_fr, restore

COMMANDS = (restore.register, eval_fr.register)
