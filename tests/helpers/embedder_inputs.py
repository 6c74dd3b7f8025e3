"""The VRE parity fixtures' inputs: the synthetic weights rule of shared/reference and the
reference PNGs as the authors convert them."""

from __future__ import annotations

import zlib

import numpy as np
import torch
from PIL import Image


def synthetic_tensor(key: str, shape: list[int]) -> torch.Tensor:
    """The reference README's rule: every tensor from its key alone."""
    seed = zlib.crc32(key.encode("utf-8"))
    z = np.random.Generator(np.random.PCG64(seed)).standard_normal(int(np.prod(shape)), dtype=np.float64)
    z = z.reshape(shape)
    if key.endswith("quantize.embedding.weight"):
        scale, offset = 0.3, 0.0
    elif key.split(".")[-1] == "bias":
        scale, offset = 0.02, 0.0
    elif len(shape) == 1:
        scale, offset = 0.1, 1.0
    else:
        scale, offset = 1.0 / np.sqrt(np.prod(shape[1:])), 0.0
    return torch.from_numpy((offset + scale * z).astype(np.float32))


def load_input(fixtures_dir, name: str) -> torch.Tensor:
    """As the authors convert: to_tensor(png) * 2 - 1, shape (1, 3, 512, 512)."""
    array = np.asarray(Image.open(fixtures_dir / f"vre_input_{name}.png").convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array / 255.0).permute(2, 0, 1).unsqueeze(0) * 2 - 1
