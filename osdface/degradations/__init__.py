"""Synthetic degradations for evaluating face restoration.

- :func:`simulate_turbulence`: anisoplanatic atmospheric turbulence (Chimitt & Chan 2020), with
  :class:`TurbulenceParams` (propagation length, aperture, wavelength, Cn2, ...) and
  :class:`TurbulenceResult` (image plus the tilt fields).
- :func:`classic_degradation`: the blur / downsample / noise / JPEG recipe of synthetic
  blind-face-restoration test sets (CelebA-Test style).

Imports stay light (numpy, scipy, torch, OpenCV): no diffusers or gradio.
"""

from .classic import classic_degradation
from .turbulence import TurbulenceParams, TurbulenceResult, simulate_turbulence

__all__ = ["TurbulenceParams", "TurbulenceResult", "classic_degradation", "simulate_turbulence"]
