"""The ``osdface restore`` options for other restorers and backgrounds (kept apart from
``osdface.commands.restore`` so that file stays about OSDFace):

    --restorers gfpgan,codeformer  each other restorer's result beside OSDFace's (a.png -> a.gfpgan.png)
    --background realesrgan-x4     the photo behind the faces with --upscale (default: none)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

# torch and spandrel load when the restorers do (osdface.lazy), not to build the parser.
import osdface.restorers
from osdface.restorers.specs import BACKGROUNDS, RESTORERS, parse_restorers


def add_restorer_arguments(parser: argparse.ArgumentParser) -> None:
    licences = "; ".join(f"{key}: {spec.choice_label}" for key, spec in RESTORERS.items())
    parser.add_argument(
        "--restorers",
        default="",
        metavar="RESTORERS",
        help=f"also restore the same faces with these other restorers, written beside OSDFace's output as "
        f"NAME.RESTORER.png ({licences}). Weights: OSDFACE_RESTORERS_DIR, the cache, OSDFACE_<RESTORER>_REPO, "
        "then the release URL",
    )
    # The flag's name before 0.3, kept for one release.
    parser.add_argument("--compare", dest="restorers", default="", help=argparse.SUPPRESS)
    parser.add_argument(
        "--codeformer-w",
        type=float,
        default=0.5,
        help="CodeFormer's fidelity weight w, 0 (quality) to 1 (fidelity) (default: 0.5)",
    )
    parser.add_argument(
        "--background",
        choices=BACKGROUNDS,
        default="none",
        help="with --upscale: enlarge the photo behind the faces with this (Real-ESRGAN x2plus/x4plus, "
        "BSD-3-Clause, tiled); none resamples it (default: none)",
    )


def restorer_settings(args: argparse.Namespace) -> dict[str, Any]:
    """RestoreCommand fields from the namespace (ValueError for an unknown method)."""
    if not 0.0 <= args.codeformer_w <= 1.0:
        raise ValueError(f"--codeformer-w must be in [0, 1], got {args.codeformer_w}")
    return {
        "compare": parse_restorers(args.restorers),
        "background": args.background,
        "fidelity": args.codeformer_w,
    }


def beside_writer(command: Any, get_restorer: Callable[[], Any]):
    """The ``compare`` callback of ``restore_files`` for ``command.compare``: loads the restorers on
    the restorer's device; a restorer whose weights are missing is reported and left out."""
    restorer = get_restorer()
    restorers = osdface.restorers.RestorerSet(device=restorer.device, options={"fidelity": command.fidelity})
    models, errors = restorers.get(command.compare)
    for key, reason in errors.items():
        print(f"warning: --restorers {key} is skipped: {reason}", file=sys.stderr)
    return osdface.restorers.BesideWriter(models, command.options, background=restorer.background)
