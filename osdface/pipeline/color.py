"""Colour correction of a restoration against its input.

One-step diffusion can shift colours; the OSDFace paper names AdaIN as the cure. Two options:

* ``adain``: per image and channel, give the output the input's mean and standard deviation;
* ``wavelet``: keep the output's high frequencies (detail) and take the low frequencies
  (colour, shading) from the input, splitting each with a stack of dilated 3x3 blurs (an
  "a trous" wavelet decomposition).

Both take and return (B, 3, H, W) float tensors in [0, 1] on any device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from osdface.choices import ColorFix


def adain_color_fix(output: torch.Tensor, reference: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    dims = (2, 3)
    out_mean, out_std = output.mean(dims, keepdim=True), output.std(dims, keepdim=True)
    ref_mean, ref_std = reference.mean(dims, keepdim=True), reference.std(dims, keepdim=True)
    return ((output - out_mean) / (out_std + eps) * ref_std + ref_mean).clamp(0.0, 1.0)


def _blur(x: torch.Tensor, dilation: int) -> torch.Tensor:
    kernel = (
        torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=x.dtype, device=x.device) / 16
    )
    kernel = kernel.expand(x.shape[1], 1, 3, 3)
    x = F.pad(x, (dilation,) * 4, mode="replicate")
    return F.conv2d(x, kernel, groups=x.shape[1], dilation=dilation)


def _split_frequencies(x: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (high, low) with high + low == x."""
    low = x
    for level in range(levels):
        low = _blur(low, 2**level)
    return x - low, low


def wavelet_color_fix(output: torch.Tensor, reference: torch.Tensor, levels: int = 5) -> torch.Tensor:
    if reference.shape[-2:] != output.shape[-2:]:
        reference = F.interpolate(reference, size=output.shape[-2:], mode="bilinear", align_corners=False)
    high, _ = _split_frequencies(output, levels)
    _, low = _split_frequencies(reference, levels)
    return (high + low).clamp(0.0, 1.0)


def apply_color_fix(
    output: torch.Tensor, reference: torch.Tensor, method: str | ColorFix | None
) -> torch.Tensor:
    method = ColorFix.parse(method)
    if method is ColorFix.ADAIN:
        return adain_color_fix(output, reference)
    if method is ColorFix.WAVELET:
        return wavelet_color_fix(output, reference)
    return output
