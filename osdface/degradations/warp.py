"""The tilt warp ``warped(x, y) = frame(x - shift_x, y - shift_y)``: bilinear, reflected at the border.

Two implementations of the same sampling (reflection about the first and last pixel centres, i.e.
OpenCV's BORDER_REFLECT_101 and ``grid_sample``'s ``padding_mode="reflection", align_corners=True``):

- CPU tensors: ``cv2.remap`` (``python -m benchmarks.bench_turbulence`` times both); on a
  512x512 RGB test frame with sharp edges and a 40 km tilt field it differs from ``grid_sample``
  by at most 0.004/255: float32 rounding of the sample coordinates, which both share; against
  the float64 warp cv2.remap is off by 0.0038/255 and float32 ``grid_sample`` by 0.0051/255;
- other devices (CUDA): ``torch.nn.functional.grid_sample``, kept on the GPU.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# cv2.remap handles at most 4 channels in one call.
_CV_MAX_CHANNELS = 4


def warp(frame: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor) -> torch.Tensor:
    """``frame``: (C, H, W) float; shifts: (H, W) pixels; returns (C, H, W), same device and dtype."""
    if frame.device.type == "cpu":
        return warp_remap(frame, shift_x, shift_y)
    return warp_grid_sample(frame, shift_x, shift_y)


def warp_grid_sample(frame: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor) -> torch.Tensor:
    """The torch implementation (any device)."""
    _, height, width = frame.shape
    ys = torch.arange(height, device=frame.device, dtype=frame.dtype)[:, None] - shift_y
    xs = torch.arange(width, device=frame.device, dtype=frame.dtype)[None, :] - shift_x
    grid = torch.stack([2.0 * xs / (width - 1) - 1.0, 2.0 * ys / (height - 1) - 1.0], dim=-1)
    return F.grid_sample(
        frame[None], grid[None], mode="bilinear", padding_mode="reflection", align_corners=True
    )[0]


def warp_remap(frame: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor) -> torch.Tensor:
    """The OpenCV implementation (CPU tensors only); computes in float32."""
    channels, height, width = frame.shape
    map_x = (np.arange(width, dtype=np.float32)[None, :] - shift_x.numpy().astype(np.float32)).astype(
        np.float32
    )
    map_y = (np.arange(height, dtype=np.float32)[:, None] - shift_y.numpy().astype(np.float32)).astype(
        np.float32
    )
    # (H, W, C) float32, the layout cv2 wants
    pixels = np.ascontiguousarray(frame.detach().permute(1, 2, 0).numpy(), dtype=np.float32)
    parts = []
    for first in range(0, channels, _CV_MAX_CHANNELS):
        chunk = np.ascontiguousarray(pixels[:, :, first : first + _CV_MAX_CHANNELS])
        moved = cv2.remap(
            chunk, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        parts.append(moved.reshape(height, width, -1))
    warped = np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]
    return torch.from_numpy(np.ascontiguousarray(warped.transpose(2, 0, 1))).to(frame.dtype)
