"""Release files of the other restorers and of Real-ESRGAN, made in tests from randomly
initialised instances of spandrel's own architecture classes, saved the way the projects
publish them: a ``.pth`` holding ``{"params_ema": state_dict}`` with the projects' key names."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from osdface.restorers.backgrounds import REALESRGAN_FILES
from osdface.restorers.loading import RESTORERS
from osdface.testing.random_restorers import build_face_model, build_rrdbnet


def write_face_release(key: str, folder: Path, *, tiny: bool = True) -> dict[str, torch.Tensor]:
    """``folder/<release name>`` as published; returns the state dict written."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.clone() for k, v in build_face_model(key, tiny=tiny).state_dict().items()}
    torch.save({"params_ema": state}, folder / RESTORERS[key].weights.filename)
    return state


def to_basicsr_keys(state: dict[str, torch.Tensor], num_blocks: int) -> dict[str, torch.Tensor]:
    """spandrel's (old ESRGAN) key names -> Real-ESRGAN's (basicsr RRDBNet) names."""
    fixed = {
        "model.0": "conv_first",
        f"model.1.sub.{num_blocks}": "conv_body",
        "model.3": "conv_up1",
        "model.6": "conv_up2",
        "model.8": "conv_hr",
        "model.10": "conv_last",
    }
    out = {}
    for key, value in state.items():
        match = re.fullmatch(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", key)
        if match:
            block, rdb, conv, kind = match.groups()
            out[f"body.{block}.rdb{rdb}.conv{conv}.{kind}"] = value
            continue
        prefix, kind = key.rsplit(".", 1)
        out[f"{fixed[prefix]}.{kind}"] = value
    return out


def write_realesrgan_release(name: str, folder: Path, **sizes) -> dict[str, torch.Tensor]:
    """``RealESRGAN_x{2,4}plus.pth`` as published; returns spandrel's state dict of the model."""
    scale = 2 if name.endswith("x2") else 4
    sizes = {"num_filters": 8, "num_blocks": 1, **sizes}  # tiny unless asked
    model = build_rrdbnet(scale, **sizes)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    release = to_basicsr_keys(state, sizes["num_blocks"])
    torch.save({"params_ema": release}, folder / REALESRGAN_FILES[name].filename)
    return state
