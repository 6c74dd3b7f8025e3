"""The pipeline's image boundary: what ``OSDFacePipeline`` accepts, checked, with the bad value
named (the conversions are in ``osdface.images.conversion``).

In: a PIL image, an (H, W, 3) RGB uint8 or float [0, 1] array, a (3, H, W) or (B, 3, H, W)
float tensor in [0, 1], or a list of these; square, at least ``MIN_INPUT_SIZE`` pixels.
Inside: (B, 3, 512, 512) float32 in [0, 1]. Out: PIL images, (B, H, W, 3) float32 arrays or
the tensor. Errors are ``osdface.errors.ImageError`` (a ``ValueError``, as diffusers'
``check_inputs`` raise).
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch

from osdface.errors import ImageError

# OSDFace's face size: SD 2.1 base works at 512, and the FFHQ template's crops are 512 wide
# (osdface.faces.template takes it from here).
MIN_INPUT_SIZE = 32

ImageInput = PIL.Image.Image | np.ndarray | torch.Tensor


def check_image(item, where: str) -> None:
    """One input of the pipeline; ``where`` names it in the error ("image[2]")."""
    if isinstance(item, PIL.Image.Image):
        width, height = item.size
    elif isinstance(item, np.ndarray):
        if item.ndim != 3 or item.shape[2] != 3:
            raise ImageError(f"expected an (H, W, 3) RGB array, got shape {item.shape}", source=where)
        if item.dtype != np.uint8 and not np.issubdtype(item.dtype, np.floating):
            raise ImageError(f"expected uint8 or float values, got dtype {item.dtype}", source=where)
        if np.issubdtype(item.dtype, np.floating):
            # A copy when the caller's view has negative strides (bgr[..., ::-1]): torch refuses those.
            _check_finite_unit(torch.from_numpy(np.ascontiguousarray(item)), where)
        height, width, _ = item.shape
    elif isinstance(item, torch.Tensor):
        if item.ndim not in (3, 4) or item.shape[-3] != 3:
            raise ValueError(
                f"{where}: expected a (3, H, W) or (B, 3, H, W) tensor, got shape {tuple(item.shape)}"
            )
        if item.ndim == 4 and item.shape[0] == 0:
            raise ImageError(f"the tensor batch is empty (shape {tuple(item.shape)})", source=where)
        if not item.is_floating_point():
            raise ImageError(f"expected a float tensor in [0, 1], got dtype {item.dtype}", source=where)
        _check_finite_unit(item, where)
        height, width = item.shape[-2], item.shape[-1]
    else:
        raise ImageError(
            f"unsupported type {type(item).__name__}; pass a PIL image, an (H, W, 3) numpy "
            f"array or a (B, 3, H, W) tensor",
            source=where,
        )
    if width != height:
        raise ImageError(
            f"OSDFace takes square 512x512 aligned faces, got {width}x{height}",
            source=where,
            fix="for whole photos use osdface.faces.FaceRestorer, which detects and aligns the faces.",
        )
    if width < MIN_INPUT_SIZE:
        raise ImageError(
            f"the face is only {width}x{height} pixels; at least {MIN_INPUT_SIZE} are needed", source=where
        )


def _check_finite_unit(values: torch.Tensor, where: str) -> None:
    if not torch.isfinite(values).all():
        raise ImageError("contains NaN or infinite values", source=where)
    low, high = values.min().item(), values.max().item()
    if low < -1e-3 or high > 1 + 1e-3:
        raise ImageError(f"float values must lie in [0, 1], got range [{low:.3g}, {high:.3g}]", source=where)
