"""Randomly initialised instances of spandrel's own architecture classes for the other
restorers, at their release sizes (or tiny, where spandrel reads the sizes from the state
dict): for tests (``tests/restorer_files.py`` saves them in the release layouts) and the
benchmark (``benchmarks.bench_restorers``)."""

from __future__ import annotations

import torch
from spandrel.architectures.ESRGAN import ESRGAN
from spandrel.architectures.GFPGAN import GFPGAN
from spandrel.architectures.RestoreFormer import RestoreFormer
from spandrel_extra_arches.architectures.CodeFormer import CodeFormer


def build_face_model(key: str, *, tiny: bool = False, seed: int = 0) -> torch.nn.Module:
    """GFPGAN and CodeFormer always come at their release size (spandrel builds them with
    fixed sizes); RestoreFormer is tiny on request."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if key == "gfpgan":
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
            if not tiny:
                return RestoreFormer()
            # GroupNorm needs multiples of 32 channels; six levels bring 512 down to the 16x16 attention
            return RestoreFormer(
                n_embed=64, embed_dim=32, ch=32, ch_mult=(1,) * 6, num_res_blocks=1, z_channels=32
            )
    raise ValueError(f"unknown restorer {key!r}")


def build_rrdbnet(
    scale: int, *, num_filters: int = 64, num_blocks: int = 23, seed: int = 0
) -> torch.nn.Module:
    """spandrel's RRDBNet as Real-ESRGAN x4plus (``scale`` 4) or x2plus (2: pixel-unshuffled
    input); the defaults are the release sizes."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if scale == 2:
            return ESRGAN(
                in_nc=12, out_nc=3, num_filters=num_filters, num_blocks=num_blocks, scale=4, shuffle_factor=2
            )
        return ESRGAN(in_nc=3, out_nc=3, num_filters=num_filters, num_blocks=num_blocks, scale=4)
