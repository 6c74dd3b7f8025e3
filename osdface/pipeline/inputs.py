"""The pipeline's image boundary: what ``OSDFacePipeline`` accepts (checked, with the bad value
named) and how it converts it, and back.

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
import torch.nn.functional as F

from osdface.errors import ImageError

# OSDFace's face size: SD 2.1 base works at 512, and the FFHQ template's crops are 512 wide
# (osdface.faces.template takes it from here).
RESOLUTION = 512
MIN_INPUT_SIZE = 32

ImageInput = PIL.Image.Image | np.ndarray | torch.Tensor


def to_batch(image) -> torch.Tensor:
    """Any accepted input (checked by ``check_image``) -> (B, 3, 512, 512) float32 in [0, 1],
    on the CPU or the tensor's own device."""
    items = list(image) if isinstance(image, list | tuple) else [image]
    tensors = []
    for item in items:
        if isinstance(item, PIL.Image.Image):
            item = np.asarray(item.convert("RGB"))
        if isinstance(item, np.ndarray):
            array = item.astype(np.float32) / 255.0 if item.dtype == np.uint8 else item.astype(np.float32)
            item = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
        tensors.append(_resize(item.float().reshape(-1, *item.shape[-3:])))
    return torch.cat(tensors)


def to_uint8_rgb(item, where: str) -> np.ndarray:
    """One face (any input ``check_image`` accepts, a batch of one at most) -> (H, W, 3) RGB
    uint8: for code that works on pixels (ArcFace's crop) rather than on the model's tensors."""
    check_image(item, where)
    if isinstance(item, PIL.Image.Image):
        return np.asarray(item.convert("RGB"))
    if isinstance(item, np.ndarray):
        return item if item.dtype == np.uint8 else np.clip(np.rint(item * 255.0), 0, 255).astype(np.uint8)
    if item.ndim == 4:
        if item.shape[0] != 1:
            raise ImageError(f"expected one face, got a batch of {item.shape[0]}", source=where)
        item = item[0]
    return (item.detach().float().clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).cpu().numpy()


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
            _check_finite_unit(torch.from_numpy(np.asarray(item)), where)
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


def _resize(batch: torch.Tensor) -> torch.Tensor:
    if batch.shape[-2:] == (RESOLUTION, RESOLUTION):
        return batch
    # The authors' script resizes square inputs to 512 this way (align_corners=True).
    return F.interpolate(batch, size=(RESOLUTION, RESOLUTION), mode="bilinear", align_corners=True).clamp(
        0, 1
    )


def postprocess(images: torch.Tensor, output_type: str):
    """(B, 3, H, W) float in [0, 1] -> the requested type."""
    if output_type == "pt":
        return images
    array = images.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)  # (B, H, W, 3) RGB float32
    if output_type == "np":
        return array
    return [PIL.Image.fromarray((a * 255.0).round().astype(np.uint8)) for a in array]
