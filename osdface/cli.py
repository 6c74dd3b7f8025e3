"""The ``osdface`` command line.

Each subcommand lives in its own module under ``osdface/commands/`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable taking
the parsed namespace and returning the exit status). The namespace is turned into a
typed settings dataclass inside each command, at this boundary only.

Also runnable as ``python -m osdface`` or ``python -m osdface.cli`` (and so as
``accelerate launch -m osdface.cli ...``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from osdface import __version__
from osdface.commands import doctor, eval_fr, evaluate, export, restore
from osdface.runtime.distributed import run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="osdface",
        description="OSDFace Studio: one-step diffusion face restoration.",
    )
    parser.add_argument("--version", action="version", version=f"osdface {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (restore, eval_fr, evaluate, doctor, export):  # the order --help lists them in
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # every process of every command leaves through the same orderly shutdown
    return run_command(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
