"""The model options every command line shares (``osdface restore``, ``osdface eval-fr``,
``osdface doctor``, ``python app.py``, the benchmarks), defined once.

``add_model_arguments(parser)`` adds them; ``ModelOptions.from_namespace(args)`` turns them
into typed settings at the argparse boundary.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from osdface.runtime.devices import DTYPE_NAMES, check_device_name
from osdface.weights.facexlib_files import ENV_LOCAL_DIR
from osdface.weights.hub import (
    DEFAULT_BASE_MODEL,
    DEFAULT_WEIGHTS_REPO,
    ENV_BASE_MODEL,
    ENV_BASE_REVISION,
    ENV_WEIGHTS,
    ENV_WEIGHTS_REVISION,
)


@dataclass(frozen=True)
class ModelOptions:
    """Where the weights come from and where the models run (None: the documented default)."""

    weights: str | None = None
    base_model: str | None = None
    revision: str | None = None
    base_revision: str | None = None
    device: str | None = None
    dtype: str | None = None
    facexlib_dir: Path | None = None

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> ModelOptions:
        """The options ``add_model_arguments`` added (those a parser left out stay None)."""
        facexlib_dir = getattr(args, "facexlib_dir", None)
        return cls(
            weights=getattr(args, "weights", None),
            base_model=getattr(args, "base_model", None),
            revision=getattr(args, "revision", None),
            base_revision=getattr(args, "base_revision", None),
            device=getattr(args, "device", None),
            dtype=getattr(args, "dtype", None),
            facexlib_dir=Path(facexlib_dir) if facexlib_dir else None,
        )


def device_argument(text: str) -> str:
    """``--device``: a typo ("gpu") is refused by argparse with the valid names, before any
    model loads (torch would otherwise fail deep inside the first ``.to()``)."""
    try:
        return check_device_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_model_arguments(
    parser: argparse.ArgumentParser,
    *,
    revisions: bool = True,
    device: bool = True,
    dtype: bool = True,
    facexlib: bool = True,
) -> None:
    """Add --weights, --base-model, --revision, --base-revision, --device, --dtype and
    --facexlib-dir (each group can be left out where a command has no use for it)."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--weights",
        default=None,
        help=f"OSDFace weights: Hub repo id or folder (default: {ENV_WEIGHTS}, else {DEFAULT_WEIGHTS_REPO})",
    )
    group.add_argument(
        "--base-model",
        default=None,
        help=f"SD 2.1 base model: Hub repo id or folder (default: {ENV_BASE_MODEL}, else {DEFAULT_BASE_MODEL})",
    )
    if revisions:
        group.add_argument(
            "--revision",
            default=None,
            help=f"revision of the weights repo: branch, tag or commit SHA (default: {ENV_WEIGHTS_REVISION}, else main)",
        )
        group.add_argument(
            "--base-revision",
            default=None,
            help=f"revision of the base model repo (default: {ENV_BASE_REVISION}, else main)",
        )
    if device:
        group.add_argument(
            "--device",
            type=device_argument,
            default=None,
            help="torch device: cpu, cuda, cuda:1, mps ... (default: the accelerate launcher's, else cuda, else mps, else cpu)",
        )
    if dtype:
        group.add_argument(
            "--dtype",
            choices=DTYPE_NAMES,
            default=None,
            help="model dtype (default: float16 on cuda and mps; on a CPU bfloat16 where it computes it natively, "
            "else float32; the VRE stays float32)",
        )
    if facexlib:
        group.add_argument(
            "--facexlib-dir",
            default=None,
            help=f"folder holding facexlib's weight files (default: {ENV_LOCAL_DIR}, the cache, then a download)",
        )
