"""The classic synthetic degradation of blind face restoration (CelebA-Test style test sets).

    lq = upsample( JPEG_q( downsample_s( image * Gaussian_sigma ) + n_noise ) )

following the recipe popularised by GFPGAN / CodeFormer / DiffBIR-style data pipelines:

1. Gaussian blur with standard deviation ``sigma`` pixels, at most ``MAX_SIGMA`` (reflect-101
   border; skipped when 0);
2. bilinear downsampling by ``scale`` (to round(H / scale) x round(W / scale));
3. additive white Gaussian noise with standard deviation ``noise`` in 0..255 grey levels, then
   clipping to the valid range;
4. JPEG compression at ``jpeg_quality`` (OpenCV's encoder, 4:2:0 chroma; ``None`` skips it);
5. bilinear upsampling back to H x W.

Noise comes from ``numpy.random.default_rng(seed)``; frames of a batch draw from it in order.
Images: see :mod:`._images` (numpy or torch, uint8 or float in [0, 1], RGB); the work is done on the
CPU with OpenCV, and the result goes back in the input's format and device.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from osdface.images.conversion import from_frames, to_frames

MIN_IMAGE_SIDE = 8
# The blur's largest sigma in pixels. The test sets' recipes draw it from 0.1 to 15; at 50 a
# 512 x 512 face is already a blur of its mean colour, the kernel is 401 taps (seconds per frame
# at 2048 x 2048), and far larger ones exhaust OpenCV's memory or its kernel-size check.
MAX_SIGMA = 50.0


def _number(name: str, value: object, *, minimum: float, maximum: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number >= {minimum}, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
    return value


def _degrade_one(
    frame: np.ndarray,
    sigma: float,
    scale: float,
    noise: float,
    jpeg_quality: int | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """``frame``: (H, W, 3) float32 RGB in [0, 1] -> same."""
    height, width = frame.shape[:2]
    out = frame
    if sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
    small = (max(1, round(width / scale)), max(1, round(height / scale)))
    if small != (width, height):
        out = cv2.resize(out, small, interpolation=cv2.INTER_LINEAR)
    if noise > 0:
        out = out + rng.normal(0.0, noise / 255.0, size=out.shape).astype(np.float32)
    out = np.clip(out, 0.0, 1.0)
    if jpeg_quality is not None:
        as_bgr = cv2.cvtColor(np.round(out * 255.0).astype(np.uint8), cv2.COLOR_RGB2BGR)
        ok, encoded = cv2.imencode(".jpg", as_bgr, [int(cv2.IMWRITE_JPEG_QUALITY), jpeg_quality])
        if not ok:
            raise RuntimeError(f"OpenCV failed to JPEG-encode a {small[0]}x{small[1]} image")
        decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
        out = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    if out.shape[:2] != (height, width):
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0)


def classic_degradation(
    image: np.ndarray | torch.Tensor,
    *,
    sigma: float = 3.0,
    scale: float = 4.0,
    noise: float = 10.0,
    jpeg_quality: int | None = 60,
    seed: int = 0,
) -> np.ndarray | torch.Tensor:
    """Blur, downsample, add noise, JPEG-compress and upsample back (module docstring).

    ``sigma``: Gaussian blur std in pixels (0 to ``MAX_SIGMA``, 50); ``scale``: downsampling
    factor (>= 1, leaving at least one pixel);
    ``noise``: noise std in 0..255 grey levels (>= 0); ``jpeg_quality``: 1..100, or None for no JPEG.
    Returns the input's shape, dtype, layout and device.
    """
    sigma = _number("sigma", sigma, minimum=0.0, maximum=MAX_SIGMA)
    scale = _number("scale", scale, minimum=1.0)
    noise = _number("noise", noise, minimum=0.0)
    if jpeg_quality is not None and (
        isinstance(jpeg_quality, bool)
        or not isinstance(jpeg_quality, (int, np.integer))
        or not 1 <= jpeg_quality <= 100
    ):
        raise ValueError(f"jpeg_quality must be an int in [1, 100] or None, got {jpeg_quality!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    frames, fmt = to_frames(image, min_side=MIN_IMAGE_SIDE)
    height, width = frames.shape[-2:]
    if min(height, width) / scale < 1.0:
        raise ValueError(f"scale {scale} is too large for a {height}x{width} image (fewer than 1 pixel left)")
    quality = None if jpeg_quality is None else int(jpeg_quality)
    rng = np.random.default_rng(int(seed))
    hwc = frames.permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3) float32 in [0, 1]
    degraded = np.stack([_degrade_one(frame, sigma, scale, noise, quality, rng) for frame in hwc])
    return from_frames(torch.from_numpy(degraded).permute(0, 3, 1, 2), fmt)
