"""Release files of the other restorers and of Real-ESRGAN, made in tests from randomly
initialised instances of spandrel's own architecture classes, saved the way the projects
publish them: a ``.pth`` holding ``{"params_ema": state_dict}`` with the projects' key names."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from osdface.peers import PEERS
from osdface.upscale import REALESRGAN_FILES


def build_face_model(key: str, *, tiny: bool = True) -> torch.nn.Module:
    """Seed 0. GFPGAN and CodeFormer come at their release size (spandrel builds them with
    fixed sizes); RestoreFormer can be tiny (spandrel reads its sizes from the state dict)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if key == "gfpgan":
            from spandrel.architectures.GFPGAN import GFPGAN

            return GFPGAN(
                out_size=512,
                num_style_feat=512,
                channel_multiplier=2,
                decoder_load_path=None,
                fix_decoder=False,
                num_mlp=8,
                input_is_latent=True,
                different_w=True,
                narrow=1,
                sft_half=True,
            )
        if key == "codeformer":
            from spandrel_extra_arches.architectures.CodeFormer import CodeFormer

            return CodeFormer(
                dim_embd=512,
                n_head=8,
                n_layers=9,
                codebook_size=1024,
                latent_size=256,
                connect_list=["32", "64", "128", "256"],
                fix_modules=["quantize", "generator"],
            )
        if key == "restoreformer":
            from spandrel.architectures.RestoreFormer import RestoreFormer

            if not tiny:
                return RestoreFormer()
            # GroupNorm needs multiples of 32 channels; six levels bring 512 down to the 16x16 attention
            return RestoreFormer(
                n_embed=64, embed_dim=32, ch=32, ch_mult=(1,) * 6, num_res_blocks=1, z_channels=32
            )
    raise ValueError(key)


def write_face_release(key: str, folder: Path, *, tiny: bool = True) -> dict[str, torch.Tensor]:
    """``folder/<release name>`` as published; returns the state dict written."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.clone() for k, v in build_face_model(key, tiny=tiny).state_dict().items()}
    torch.save({"params_ema": state}, folder / PEERS[key].weights.filename)
    return state


def build_rrdbnet(scale: int, *, num_filters: int = 8, num_blocks: int = 1) -> torch.nn.Module:
    """spandrel's RRDBNet as Real-ESRGAN x4plus (scale 4) or x2plus (pixel-unshuffled input)."""
    from spandrel.architectures.ESRGAN import ESRGAN

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if scale == 2:
            return ESRGAN(
                in_nc=12, out_nc=3, num_filters=num_filters, num_blocks=num_blocks, scale=4, shuffle_factor=2
            )
        return ESRGAN(in_nc=3, out_nc=3, num_filters=num_filters, num_blocks=num_blocks, scale=4)


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
    model = build_rrdbnet(scale, **sizes)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    release = to_basicsr_keys(state, sizes.get("num_blocks", 1))
    torch.save({"params_ema": release}, folder / REALESRGAN_FILES[name].filename)
    return state
