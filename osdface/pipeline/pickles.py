"""The release's pickles (``associate_2.ckpt``, ``embedding_change_weights.pth``), read without
running any code in them, and the error that names which file was bad.

``torch.load(weights_only=True)`` refuses every global but tensors and containers. Training
checkpoints name others (an argparse Namespace, Lightning callbacks...): in torch's zip format
they are listed without unpickling (``get_unsafe_globals_in_checkpoint``) and each is mapped to
the inert ``_Inert``, so the tensors load and nothing else is constructed. A file in the legacy
(non-zip) format, which ``torch.save(..., _use_new_zipfile_serialization=False)`` still writes,
cannot be listed: it goes to ``weights_only`` as it is, which reads a plain state dict and refuses
anything else. (``safe_globals`` and ``get_unsafe_globals_in_checkpoint`` are torch 2.5's: the
floor in pyproject.toml.)
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch


class WeightFileError(ValueError):
    """A weight file that was read but is not what it must be. ``path`` is that file: a step that
    reads two (the VRE's checkpoint and projection) reports the one at fault."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{self.path}: {reason}")


class _Inert:
    """Stands in for any class or function a checkpoint pickle names (hyper-parameters,
    callbacks, optimizer configs). It accepts whatever the unpickler hands it and runs nothing."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


def load_pickled_state_dict(path: str | os.PathLike):
    """``torch.load(weights_only=True)`` of a training checkpoint or state dict, never executing
    pickled code; ``WeightFileError`` naming ``path`` when torch cannot read it."""
    path = Path(path)
    try:
        # Only the zip format can be listed without unpickling (torch raises for the legacy one).
        unsafe = (
            torch.serialization.get_unsafe_globals_in_checkpoint(path) if zipfile.is_zipfile(path) else []
        )
        with torch.serialization.safe_globals([(_Inert, name) for name in unsafe]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise WeightFileError(path, f"torch cannot read it as a checkpoint: {exc}") from exc
