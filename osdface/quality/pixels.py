"""PSNR and SSIM on the Y channel, in float64, as the face-restoration papers report them.

The convention is BasicSR's ``calculate_psnr`` / ``calculate_ssim`` with ``test_y_channel=True``
(which the GFPGAN, CodeFormer, DifFace and OSDFace evaluations use): the luma of ITU-R BT.601
in studio range, ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` with R, G, B in 0..255
(so Y lies in 16..235, not rounded), compared with a peak of 255; SSIM with an 11x11 Gaussian
window of sigma 1.5, constants (0.01 x 255)^2 and (0.03 x 255)^2, averaged over the positions
where the whole window lies inside the image. No border is cropped.

pyiqa's ``psnry`` and ``ssim`` use YIQ's full-range luma by default; on the same images our
PSNR is then about 20 log10(255 / 219) = 1.3 dB higher. With ``color_space="ycbcr"`` pyiqa gives
our values (``tests/quality/test_pixels.py``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

PEAK = 255.0
_C1 = (0.01 * PEAK) ** 2
_C2 = (0.03 * PEAK) ** 2
_SIGMA = 1.5
_RADIUS = 5  # an 11x11 window: scipy's truncate=3.5 at sigma 1.5 gives int(3.5 * 1.5 + 0.5) = 5


def luma(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB uint8 -> (H, W) float64 Y in 16..235 (BT.601 studio range)."""
    rgb = np.asarray(image, dtype=np.float64)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def _pair(image: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if np.shape(image) != np.shape(reference):
        raise ValueError(
            f"the image {np.shape(image)} and its reference {np.shape(reference)} differ in size"
        )
    return luma(image), luma(reference)


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB between two (H, W, 3) RGB uint8 images, on Y; ``inf`` when they are equal."""
    y, y_ref = _pair(image, reference)
    mse = float(np.mean((y - y_ref) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(PEAK**2 / mse)


def ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """SSIM between two (H, W, 3) RGB uint8 images (at least 11x11), on Y."""
    y, y_ref = _pair(image, reference)
    if min(y.shape) < 2 * _RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {y.shape[1]}x{y.shape[0]}")

    def blur(values: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(values, _SIGMA, truncate=_RADIUS / _SIGMA)[
            _RADIUS:-_RADIUS, _RADIUS:-_RADIUS
        ]

    mu, mu_ref = blur(y), blur(y_ref)
    var = blur(y * y) - mu * mu
    var_ref = blur(y_ref * y_ref) - mu_ref * mu_ref
    cov = blur(y * y_ref) - mu * mu_ref
    index = ((2 * mu * mu_ref + _C1) * (2 * cov + _C2)) / ((mu**2 + mu_ref**2 + _C1) * (var + var_ref + _C2))
    return float(index.mean())
