"""Zernike polynomials (Noll's ordering and normalisation) and their Kolmogorov covariance.

Noll (1976), "Zernike polynomials and atmospheric turbulence", JOSA 66(3).

Ordering and normalisation
--------------------------
Noll index j = 1, 2, 3, ... maps to a radial order n and an azimuthal frequency m; within an
order, j grows with |m|, even j carry cos(m theta) and odd j carry sin(m theta)::

    Z_j(rho, theta) = sqrt(n + 1) R_n^0(rho)                            (m = 0)
                    = sqrt(2 (n + 1)) R_n^|m|(rho) cos(|m| theta)        (m != 0, j even)
                    = sqrt(2 (n + 1)) R_n^|m|(rho) sin(|m| theta)        (m != 0, j odd)

    R_n^m(rho) = sum_{k=0}^{(n-m)/2} (-1)^k (n - k)! / (k! ((n+m)/2 - k)! ((n-m)/2 - k)!) rho^(n - 2k)

so that (1/pi) * integral over the unit disc of Z_i Z_j = delta_ij, and a phase written as
phi = sum_j a_j Z_j has sum_j a_j^2 as its mean-square over the pupil.

Covariance of the coefficients under Kolmogorov turbulence
----------------------------------------------------------
Phase power spectrum (spatial frequency kappa in cycles per metre)::

    Phi(kappa) = c r0^(-5/3) kappa^(-11/3)

with c fixed by the phase structure function D(r) = 2 [(24/5) Gamma(6/5)]^(5/6) (r / r0)^(5/3)
(the "6.88" law): D(r) = 4 pi c r0^(-5/3) integral_0^inf k^(-8/3) (1 - J0(2 pi k r)) dk, and
integral_0^inf u^(-8/3) (1 - J0(u)) du = 2^(-8/3) (6/5) Gamma(1/6) / Gamma(11/6), which gives
c = 0.022896 (the familiar "0.023").

The Fourier transform of Z_j over a pupil of radius R = D/2 has radial part
sqrt(n + 1) J_{n+1}(2 pi kappa R) / (pi kappa R), so

    <a_i a_j> = integral Phi(kappa) Q_i(kappa) Q_j*(kappa) d^2 kappa

is nonzero only for equal |m| (and, for m != 0, the same cos/sin parity, i.e. i - j even). The
angular integral gives 2 pi, the substitution x = 2 pi kappa R reduces the radial integral to a
Weber-Schafheitlin integral of x^(-14/3) J_{n+1}(x) J_{n'+1}(x), and the result is the closed form

    <a_i a_j> = K (-1)^((n + n' - 2m)/2) sqrt((n + 1)(n' + 1)) Gamma((n + n' - 5/3)/2) (D/r0)^(5/3)
                / [Gamma((n - n' + 17/3)/2) Gamma((n' - n + 17/3)/2) Gamma((n + n' + 23/3)/2)]

    K = 8 pi^(8/3) c Gamma(14/3) / 2^(14/3) = 2.2461

The value often quoted for K (2.2698, Roddier 1990) is 1.05% larger than what the 6.88 law gives;
with the K above, <a_2^2> = 0.4489 (D/r0)^(5/3), which is exactly Noll's Z-tilt variance and the
0.182 (lambda/D)^2 (D/r0)^(5/3) angle-of-arrival variance used for the tilt field
(angle = (2/pi) a_2 lambda/D for Z_2 = 2 rho cos theta). The tests check both.
"""

from __future__ import annotations

from functools import lru_cache
from math import factorial

import numpy as np
from scipy.special import gamma

# Kolmogorov phase-spectrum constant c (see the module docstring).
_STRUCTURE_CONSTANT = 2.0 * ((24.0 / 5.0) * gamma(6.0 / 5.0)) ** (5.0 / 6.0)  # 6.8839
_ONE_MINUS_J0_INTEGRAL = 2.0 ** (-8.0 / 3.0) * (6.0 / 5.0) * gamma(1.0 / 6.0) / gamma(11.0 / 6.0)
KOLMOGOROV_PSD_CONSTANT = _STRUCTURE_CONSTANT / (
    4.0 * np.pi * (2.0 * np.pi) ** (5.0 / 3.0) * _ONE_MINUS_J0_INTEGRAL
)
NOLL_COVARIANCE_CONSTANT = (
    8.0 * np.pi ** (8.0 / 3.0) * KOLMOGOROV_PSD_CONSTANT * gamma(14.0 / 3.0) / 2.0 ** (14.0 / 3.0)
)


def noll_to_nm(j: int) -> tuple[int, int]:
    """Radial order n and signed azimuthal frequency m of Noll index j (m < 0: sine term)."""
    if j < 1:
        raise ValueError(f"Noll index must be >= 1, got {j}")
    n, remaining = 0, j - 1
    while remaining > n:
        n += 1
        remaining -= n
    m_abs = (n % 2) + 2 * ((remaining + ((n + 1) % 2)) // 2)
    return n, (m_abs if j % 2 == 0 or m_abs == 0 else -m_abs)


def _radial(n: int, m: int, rho: np.ndarray) -> np.ndarray:
    out = np.zeros_like(rho)
    for k in range((n - m) // 2 + 1):
        coeff = (
            (-1) ** k
            * factorial(n - k)
            / (factorial(k) * factorial((n + m) // 2 - k) * factorial((n - m) // 2 - k))
        )
        out += coeff * rho ** (n - 2 * k)
    return out


def zernike(j: int, rho: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Noll-normalised Zernike polynomial Z_j at polar pupil coordinates (rho in units of the radius)."""
    n, m = noll_to_nm(j)
    radial = _radial(n, abs(m), np.asarray(rho, dtype=np.float64))
    if m == 0:
        return np.sqrt(n + 1.0) * radial
    trig = np.cos if m > 0 else np.sin
    return np.sqrt(2.0 * (n + 1.0)) * radial * trig(abs(m) * np.asarray(theta, dtype=np.float64))


def noll_covariance_entry(i: int, j: int) -> float:
    """<a_i a_j> in units of (D/r0)^(5/3), for Noll indices i, j >= 2 (piston has no finite variance)."""
    if i < 2 or j < 2:
        raise ValueError(f"Noll covariance is defined for indices >= 2, got {i} and {j}")
    n_i, m_i = noll_to_nm(i)
    n_j, m_j = noll_to_nm(j)
    if abs(m_i) != abs(m_j) or (m_i != 0 and (i - j) % 2 != 0):
        return 0.0
    m = abs(m_i)
    sign = (-1.0) ** ((n_i + n_j - 2 * m) // 2)
    numerator = gamma((n_i + n_j - 5.0 / 3.0) / 2.0)
    denominator = (
        gamma((n_i - n_j + 17.0 / 3.0) / 2.0)
        * gamma((n_j - n_i + 17.0 / 3.0) / 2.0)
        * gamma((n_i + n_j + 23.0 / 3.0) / 2.0)
    )
    return float(
        NOLL_COVARIANCE_CONSTANT * sign * np.sqrt((n_i + 1.0) * (n_j + 1.0)) * numerator / denominator
    )


@lru_cache(maxsize=16)
def noll_covariance(first: int, last: int) -> np.ndarray:
    """Covariance matrix of Noll coefficients first..last (inclusive), units of (D/r0)^(5/3).

    Cached and returned read-only: it depends only on the index range.
    """
    indices = range(first, last + 1)
    cov = np.array([[noll_covariance_entry(i, j) for j in indices] for i in indices])
    cov.setflags(write=False)
    return cov
