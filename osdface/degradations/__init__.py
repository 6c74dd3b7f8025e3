"""Synthetic degradations for evaluating face restoration.

- :func:`simulate_turbulence`: anisoplanatic atmospheric turbulence (Chimitt & Chan 2020), with
  :class:`TurbulenceParams` (propagation length, aperture, wavelength, Cn2, ...) and
  :class:`TurbulenceResult` (image plus the tilt fields).
- :func:`classic_degradation`: the blur / downsample / noise / JPEG recipe of synthetic
  blind-face-restoration test sets (CelebA-Test style).

Imports stay light (numpy, scipy, torch, OpenCV): no diffusers or gradio.
"""

from osdface.lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "classic": ["classic_degradation"],
        "turbulence": ["TurbulenceParams", "TurbulenceResult", "simulate_turbulence"],
    },
)
