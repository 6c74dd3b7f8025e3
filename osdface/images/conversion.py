"""Every conversion between the image formats OSDFace Studio handles, in one place. Reading a
file into the one format the rest uses is ``osdface.images.reading``.

- ``(H, W, 3) RGB uint8`` arrays: the format at every boundary (files, the app, the faces code);
- PIL RGB images: what the pipeline returns and the app shows (``to_pil``, ``tensor_to_pil``);
  PIL images of any mode in (``pil_to_unit_rgb``): Pillow's 16-bit, 32-bit integer and float
  grayscale modes are scaled to [0, 1], not clipped as ``convert("RGB")`` clips them;
- the pipeline's batches: (B, 3, 512, 512) float32 in [0, 1] (``to_batch``, ``postprocess``,
  ``to_uint8_rgb``);
- the degradations' frames: (B, 3, H, W) float32 in [0, 1] on the input's device, going back to
  the input's type, dtype, layout and device (``to_frames``, ``from_frames``, ``fields_like``).
  Accepted there: numpy arrays channels last, (H, W, 3) or (B, H, W, 3), uint8 or float in
  [0, 1]; torch tensors on any device, channels last or first, uint8 or float in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from PIL import Image

from osdface.errors import ImageError
from osdface.faces.template import FACE_SIZE

# Pillow's high-depth grayscale modes and the value each takes for white. ``convert("RGB")``
# clips them to 0..255, so a mid-grey 16-bit face would turn white and a float one black. The
# assumptions, as osdface.images.reading makes them for files: "I;16*" holds 0..65535 (a 16-bit
# PNG or TIFF); "I" (32-bit int) holds 16-bit values too (Pillow's mode for many 16-bit files);
# "F" (32-bit float) holds [0, 1]. Values outside are clipped.
_WHITE_OF_MODE = {"I": 65535.0, "F": 1.0}
_WHITE_OF_16_BIT = 65535.0


def to_pil(image: np.ndarray) -> Image.Image:
    """``(H, W, 3) RGB uint8`` array -> PIL RGB image."""
    if not (
        isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    ):
        raise ValueError(
            f"to_pil expects an (H, W, 3) uint8 array, got "
            f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}"
        )
    return Image.fromarray(np.ascontiguousarray(image), mode="RGB")


def tensor_to_pil(face: torch.Tensor) -> Image.Image:
    """(3, H, W) float in [0, 1] -> PIL RGB."""
    array = (face.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array)


def pil_to_unit_rgb(image: Image.Image) -> np.ndarray:
    """A PIL image of any mode -> (H, W, 3) float32 RGB in [0, 1]: 16-bit, 32-bit integer and
    float grayscale scaled by the white of their mode (see ``_WHITE_OF_MODE``); every other mode
    through Pillow's own RGB conversion."""
    mode = image.mode
    white = _WHITE_OF_16_BIT if mode.startswith("I;16") else _WHITE_OF_MODE.get(mode)
    if white is None:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    gray = np.clip(np.asarray(image, dtype=np.float64) / white, 0.0, 1.0).astype(np.float32)
    return np.repeat(gray[..., None], 3, axis=2)


def pil_to_uint8_rgb(image: Image.Image) -> np.ndarray:
    """A PIL image of any mode -> (H, W, 3) RGB uint8 (16-bit values: v / 257, rounded)."""
    if image.mode.startswith("I;16") or image.mode in _WHITE_OF_MODE:
        return np.rint(pil_to_unit_rgb(image) * 255.0).astype(np.uint8)
    return np.asarray(image.convert("RGB"))


def to_batch(image) -> torch.Tensor:
    """Any accepted input (checked by ``check_image``) -> (B, 3, 512, 512) float32 in [0, 1],
    on the CPU or the tensor's own device."""
    items = list(image) if isinstance(image, list | tuple) else [image]
    tensors = []
    for item in items:
        if isinstance(item, PIL.Image.Image):
            item = pil_to_unit_rgb(item)
        if isinstance(item, np.ndarray):
            array = item.astype(np.float32) / 255.0 if item.dtype == np.uint8 else item.astype(np.float32)
            item = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
        tensors.append(resize_to_face(item.float().reshape(-1, *item.shape[-3:])))
    return torch.cat(tensors)


def resize_to_face(batch: torch.Tensor) -> torch.Tensor:
    if batch.shape[-2:] == (FACE_SIZE, FACE_SIZE):
        return batch
    # The authors' script resizes square inputs to 512 this way (align_corners=True).
    return F.interpolate(batch, size=(FACE_SIZE, FACE_SIZE), mode="bilinear", align_corners=True).clamp(0, 1)


def to_uint8_rgb(item, where: str) -> np.ndarray:
    """One face (any input ``osdface.pipeline.inputs.check_image`` accepts, checked before, a
    batch of one at most) -> (H, W, 3) RGB uint8: for code that works on pixels (ArcFace's crop)
    rather than on the model's tensors."""
    if isinstance(item, PIL.Image.Image):
        return pil_to_uint8_rgb(item)
    if isinstance(item, np.ndarray):
        # A flipped view (bgr[..., ::-1]) has negative strides, which torch.from_numpy refuses.
        item = np.ascontiguousarray(item)
        return item if item.dtype == np.uint8 else np.clip(np.rint(item * 255.0), 0, 255).astype(np.uint8)
    if item.ndim == 4:
        if item.shape[0] != 1:
            raise ImageError(f"expected one face, got a batch of {item.shape[0]}", source=where)
        item = item[0]
    return (item.detach().float().clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).cpu().numpy()


def postprocess(images: torch.Tensor, output_type: str):
    """(B, 3, H, W) float in [0, 1] -> the requested type."""
    if output_type == "pt":
        return images
    array = images.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)  # (B, H, W, 3) RGB float32
    if output_type == "np":
        return array
    return [PIL.Image.fromarray((a * 255.0).round().astype(np.uint8)) for a in array]


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
