"""Spatially correlated Zernike-tilt fields (the geometric "wobble" of anisoplanatic turbulence).

Per-axis tilt variance
----------------------
The Z-tilt coefficient a_2 of Z_2 = 2 rho cos(theta) makes a phase slope 4 a_2 / D rad/m, i.e. an
angle of arrival (lambda / 2 pi) 4 a_2 / D = (2/pi) a_2 lambda/D. With Noll's <a_2^2> =
0.449 (D/r0)^(5/3) (see :mod:`.zernike`) the per-axis angular variance is

    sigma_theta^2 = 0.182 (lambda/D)^2 (D/r0)^(5/3)   [rad^2]

A point of the object plane at range L moves by L theta metres, i.e. L theta / pixel_pitch pixels.

Spatial correlation
-------------------
Two object points a distance d apart are seen through pupils whose turbulent volumes overlap. Following
Chimitt & Chan (Optical Engineering 2020) the tilt correlation, as a function of s = d / D, is

    C(s) = [I_0(s) + I_2(s)] / I_0(0),   I_n(s) = integral_0^inf z^(-14/3) J_n(2 s z) J_2(z)^2 dz,

used here as an isotropic correlation for each of the two shift components (which are independent).

Quadrature. Near z = 0 the integrand behaves as z^(-2/3) / 64, an integrable singularity; the
substitution z = t^3 (dz = 3 t^2 dt) makes it smooth on [0, 1]. Beyond z = 1 the weight decays as
z^(-17/3), so the tail past z = 16 is below 1e-5 of I_0(0) and is dropped. Both pieces use 16-point
Gauss-Legendre panels, each spanning at most 8 radians of the fastest oscillation J_n(2 s_max z), so
the table is accurate (better than 1e-6 of I_0(0); checked against adaptive quadrature in the tests)
for every s up to s_max. J_2 is ``scipy.special.jv(2, x)``: about 5x slower than the recurrence
2 J_1 / x - J_0 (0.6 s instead of 0.1 s for the table at s_max = 60, once per process), equal to it
within 1e-10, and with no power series needed where that difference cancels (tested).

The table is built on a grid that is fine near s = 0 (step 0.025 up to 4) and geometric beyond
(ratio 1.02; C decays slowly, like s^(-1/3)), then interpolated with a cubic spline.

Sampling by circulant embedding
-------------------------------
For an H x W image the correlation is laid out on a periodic 2H x 2W grid (distance to the origin
measured the short way round the torus), so the covariance matrix is block-circulant and diagonalised
by the 2-D FFT: eigenvalues Lambda = FFT2(c) (real, as c is even). The few slightly negative Lambda that
come from the periodic wrap (their total is below 0.2% of the variance for 64 x 64 and 1e-4 for
512 x 512 images) are set to zero; the amplitude sqrt(Lambda+ / sum(Lambda+)) then gives unit point
variance exactly. With Z = X + iY complex white noise (X, Y independent N(0, 1)),

    FFT2(amplitude * Z)

has real and imaginary parts that are independent, stationary Gaussian fields with covariance c, so
one FFT yields both shift components; the top-left H x W corner is kept.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from scipy.interpolate import CubicSpline
from scipy.special import j0, jv

# Per-axis angle-of-arrival variance in units of (lambda/D)^2 (D/r0)^(5/3) (Z-tilt).
TILT_VARIANCE_COEFFICIENT = 0.182

_Z_SPLIT = 1.0
_Z_MAX = 16.0
_PANEL_RADIANS = 8.0
_GAUSS_POINTS = 16


def _gauss_legendre(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(_GAUSS_POINTS)
    lo, hi = edges[:-1, None], edges[1:, None]
    return ((hi - lo) / 2 * x + (hi + lo) / 2).ravel(), ((hi - lo) / 2 * w).ravel()


def _quadrature(s_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and weights w (weight function z^(-14/3) J_2(z)^2 folded in) for I_n(s <= s_max)."""
    fastest = 2.0 * max(s_max, 1.0)  # angular frequency of J_n(2 s z) in z
    # [0, 1] in t = z^(1/3): the phase 2 s t^3 changes at most 6 s per unit t.
    n_t = math.ceil(3.0 * fastest / _PANEL_RADIANS) + 2
    t, w_t = _gauss_legendre(np.linspace(0.0, 1.0, n_t + 1))
    z_near, w_near = t**3, w_t * 3.0 * t**2
    n_z = math.ceil((_Z_MAX - _Z_SPLIT) * fastest / _PANEL_RADIANS) + 4
    z_far, w_far = _gauss_legendre(np.linspace(_Z_SPLIT, _Z_MAX, n_z + 1))
    z = np.concatenate([z_near, z_far])
    w = np.concatenate([w_near, w_far])
    return z, w * z ** (-14.0 / 3.0) * jv(2, z) ** 2


def tilt_correlation_integrals(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """I_0(s) and I_2(s) (module docstring) for separations s = d / D >= 0, by direct quadrature."""
    s = np.asarray(s, dtype=np.float64)
    if s.size and s.min() < 0:
        raise ValueError(f"separations must be >= 0, got min {s.min()}")
    flat = s.ravel()
    z, weights = _quadrature(float(flat.max(initial=0.0)))
    i0 = np.empty_like(flat)
    i2 = np.empty_like(flat)
    chunk = max(1, 2_000_000 // z.size)  # bounds the temporary (chunk, len(z)) arrays
    for start in range(0, flat.size, chunk):
        x = 2.0 * np.outer(flat[start : start + chunk], z)
        b0, b2 = j0(x), jv(2, x)
        i0[start : start + chunk] = b0 @ weights
        i2[start : start + chunk] = b2 @ weights
    return i0.reshape(s.shape), i2.reshape(s.shape)


@lru_cache(maxsize=4)
def _correlation_spline(s_max: float) -> CubicSpline:
    fine = np.arange(0.0, 4.0, 0.025)
    n_geometric = max(1, math.ceil(math.log(max(s_max, 4.0) / 4.0) / math.log(1.02)) + 1)
    grid = np.concatenate([fine, 4.0 * 1.02 ** np.arange(n_geometric + 1)])
    i0, i2 = tilt_correlation_integrals(grid)
    return CubicSpline(grid, (i0 + i2) / i0[0])


def clear_cache() -> None:
    _correlation_spline.cache_clear()


def tilt_correlation(s: np.ndarray) -> np.ndarray:
    """C(s) = [I_0(s) + I_2(s)] / I_0(0), interpolated from a cached table."""
    s = np.asarray(s, dtype=np.float64)
    # Round the table's reach up to a power of two so that nearby image sizes share one table.
    reach = 2.0 ** math.ceil(math.log2(max(float(s.max(initial=0.0)), 8.0)))
    return _correlation_spline(reach)(s)


def circulant_amplitude(height: int, width: int, pitch_over_d: float) -> tuple[np.ndarray, float]:
    """Spectral amplitude on the (2H, 2W) torus, and the clipped negative eigenvalue mass.

    ``pitch_over_d`` is the object-plane pixel pitch divided by the aperture diameter. The amplitude
    is normalised so that the sampled fields have unit point variance (module docstring).
    """
    rows = np.arange(2 * height)
    cols = np.arange(2 * width)
    dy = np.minimum(rows, 2 * height - rows) * pitch_over_d
    dx = np.minimum(cols, 2 * width - cols) * pitch_over_d
    separation = np.hypot(dy[:, None], dx[None, :])
    eigenvalues = np.fft.fft2(tilt_correlation(separation)).real
    negative_mass = float(-eigenvalues[eigenvalues < 0].sum() / eigenvalues.size)
    positive = np.maximum(eigenvalues, 0.0)
    return np.sqrt(positive / positive.sum()), negative_mass


def sample_unit_tilt(
    amplitude: torch.Tensor, height: int, width: int, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent unit-variance correlated fields, (..., H, W) each, from white noise.

    ``amplitude``: (2H, 2W) real; ``noise``: (..., 2, 2H, 2W) standard normal (real, imaginary parts).
    """
    spectrum = amplitude * torch.complex(noise[..., 0, :, :], noise[..., 1, :, :])
    field = torch.fft.fft2(spectrum)[..., :height, :width]
    return field.real, field.imag
