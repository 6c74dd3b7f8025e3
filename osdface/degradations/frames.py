"""Image conversion at the degradations' boundary.

Accepted inputs (RGB only):

- numpy arrays, channels last: (H, W, 3) or (B, H, W, 3); uint8, or float in [0, 1];
- torch tensors on any device, channels last (..., H, W, 3) or channels first (..., 3, H, W) (the
  pipeline's layout); uint8, or float in [0, 1].

Inside, every frame is a (B, 3, H, W) float32 tensor in [0, 1] on the input's device. Outputs go back
to the input's type, dtype, layout and device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ImageFormat:
    """How an input image arrived, so results can go back the same way."""

    is_numpy: bool
    dtype: np.dtype | torch.dtype
    channels_last: bool
    batched: bool
    device: torch.device


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(int(d)) for d in shape) + ")"


def to_frames(image: object, *, min_side: int, name: str = "image") -> tuple[torch.Tensor, ImageFormat]:
    """(B, 3, H, W) float32 tensor in [0, 1], on the input's device, and the input's format."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
            raise ValueError(f"{name} must be uint8 or float in [0, 1], got dtype {image.dtype}")
        array = np.ascontiguousarray(image)
        if not array.flags.writeable:  # torch warns on read-only memory (e.g. np.asarray(PIL image))
            array = array.copy()
        tensor, is_numpy = torch.from_numpy(array), True
    elif isinstance(image, torch.Tensor):
        tensor, is_numpy = image.detach(), False
    else:
        raise ValueError(f"{name} must be a numpy array or a torch tensor, got {type(image).__name__}")
    shape = tuple(tensor.shape)
    if tensor.ndim not in (3, 4):
        raise ValueError(f"{name} must have shape (H, W, 3) or (B, H, W, 3), got {_shape_text(shape)}")
    if shape[-1] == 3:
        channels_last = True
    elif not is_numpy and shape[-3] == 3:
        channels_last = False
    else:
        expected = "(H, W, 3)" if is_numpy else "(H, W, 3) or (3, H, W) (optionally batched)"
        raise ValueError(f"{name} must be RGB with shape {expected}, got {_shape_text(shape)}")
    dtype = tensor.dtype
    if dtype != torch.uint8 and not dtype.is_floating_point:
        raise ValueError(f"{name} must be uint8 or float in [0, 1], got dtype {dtype}")
    frames = tensor if tensor.ndim == 4 else tensor.unsqueeze(0)
    if channels_last:
        frames = frames.permute(0, 3, 1, 2)
    height, width = frames.shape[-2:]
    if min(height, width) < min_side:
        raise ValueError(f"{name} is too small: {height}x{width} pixels, need at least {min_side}x{min_side}")
    if frames.shape[0] == 0:
        raise ValueError(f"{name} batch is empty: shape {_shape_text(shape)}")
    if dtype == torch.uint8:
        frames = frames.float() / 255.0
    else:
        frames = frames.float()
        low, high = float(frames.min()), float(frames.max())
        if not (np.isfinite(low) and np.isfinite(high)) or low < 0.0 or high > 1.0:
            raise ValueError(f"float {name} must hold finite values in [0, 1], got range [{low}, {high}]")
    fmt = ImageFormat(
        is_numpy=is_numpy,
        dtype=image.dtype if is_numpy else dtype,
        channels_last=channels_last,
        batched=tensor.ndim == 4,
        device=tensor.device,
    )
    return frames.contiguous(), fmt


def from_frames(frames: torch.Tensor, fmt: ImageFormat) -> np.ndarray | torch.Tensor:
    """Inverse of :func:`to_frames` for (B, 3, H, W) float frames in [0, 1]."""
    frames = frames.clamp(0.0, 1.0)
    if fmt.channels_last:
        frames = frames.permute(0, 2, 3, 1)
    if not fmt.batched:
        frames = frames[0]
    is_uint8 = fmt.dtype == np.uint8 if fmt.is_numpy else fmt.dtype == torch.uint8
    if is_uint8:
        frames = torch.round(frames * 255.0).to(torch.uint8)
    if fmt.is_numpy:
        out = frames.cpu().numpy()
        return out if is_uint8 else out.astype(fmt.dtype, copy=False)
    return frames.to(device=fmt.device, dtype=fmt.dtype).contiguous()


def fields_like(field: torch.Tensor, fmt: ImageFormat) -> np.ndarray | torch.Tensor:
    """A (B, H, W) float32 per-pixel field in the input's container: (H, W) for an unbatched input."""
    if not fmt.batched:
        field = field[0]
    if fmt.is_numpy:
        return field.cpu().numpy()
    return field.to(fmt.device)
