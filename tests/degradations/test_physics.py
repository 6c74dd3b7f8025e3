"""Physics of the turbulence simulator: Zernike statistics, tilt fields and short-exposure PSFs.

Statistical checks use fixed seeds and enough draws that the sampling error is a small fraction of
the tolerance (noted next to each).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.special import j0, j1, jv

from osdface.degradations import tilt
from osdface.degradations.blur import build_psf_model
from osdface.degradations.tilt import (
    circulant_amplitude,
    tilt_correlation,
    tilt_correlation_integrals,
)
from osdface.degradations.turbulence import TurbulenceParams, _cpu_plan, sample_tilt_fields
from osdface.degradations.zernike import (
    KOLMOGOROV_PSD_CONSTANT,
    noll_covariance,
    noll_covariance_entry,
    noll_to_nm,
    zernike,
)

# --- Zernike polynomials and the Noll covariance -------------------------------------------------


def test_noll_ordering_matches_nolls_table():
    expected = [(0, 0), (1, 1), (1, -1), (2, 0), (2, -2), (2, 2), (3, -1), (3, 1), (3, -3), (3, 3), (4, 0)]
    assert [noll_to_nm(j) for j in range(1, 12)] == expected
    assert (
        noll_to_nm(22) == (6, 0)
        and noll_to_nm(35) == (7, -7)
        and noll_to_nm(36) == (7, 7)
        and noll_to_nm(37) == (8, 0)
    )


def test_zernike_polynomials_are_orthonormal_over_the_pupil():
    # Gauss-Legendre in rho (exact for these polynomials) and a uniform grid in theta.
    nodes, weights = np.polynomial.legendre.leggauss(24)
    rho, w_rho = (nodes + 1) / 2, weights / 2
    theta = np.arange(64) * 2 * np.pi / 64
    r, t = np.meshgrid(rho, theta, indexing="ij")
    area = (w_rho * rho)[:, None] * (2 * np.pi / 64) * np.ones_like(t)  # rho drho dtheta
    z = np.stack([zernike(j, r, t) for j in range(1, 37)])
    gram = np.einsum("iab,jab,ab->ij", z, z, area) / np.pi
    np.testing.assert_allclose(gram, np.eye(36), atol=1e-10)
    # Z_2 is 2 rho cos(theta): the x tilt.
    np.testing.assert_allclose(zernike(2, np.array([0.5]), np.array([0.0])), [1.0])


def _numerical_noll_variance(n: int) -> float:
    """<a_j^2> for radial order n by integrating Phi(kappa) |Q_j(kappa)|^2 (D = 1, r0 = 1)."""
    radius = 0.5

    def integrand(k: float) -> float:
        q = (n + 1) * (jv(n + 1, 2 * np.pi * k * radius) / (np.pi * k * radius)) ** 2
        return KOLMOGOROV_PSD_CONSTANT * k ** (-11 / 3) * q * 2 * np.pi * k

    edges = [0.0, 0.5, 2.0, 8.0, 32.0, np.inf]
    return sum(quad(integrand, a, b, limit=400)[0] for a, b in zip(edges[:-1], edges[1:]))


def test_noll_covariance_closed_form_matches_tilt_law_and_numerical_integral():
    # Z-tilt: <a_2^2> (2/pi)^2 is the angle-of-arrival coefficient 0.182 of the tilt field.
    a2 = noll_covariance_entry(2, 2)
    assert a2 == pytest.approx(0.4489, rel=2e-4)
    assert a2 * 4 / np.pi**2 == pytest.approx(0.182, rel=3e-3)
    for j, n in ((2, 1), (4, 2), (11, 4)):
        assert noll_covariance_entry(j, j) == pytest.approx(_numerical_noll_variance(n), rel=1e-4)
    # Selection rules: same |m| and, for m != 0, the same cos/sin parity; tilt and coma anticorrelate.
    assert noll_covariance_entry(2, 3) == 0.0 and noll_covariance_entry(2, 7) == 0.0
    assert noll_covariance_entry(4, 6) == 0.0
    assert noll_covariance_entry(2, 8) < 0 and noll_covariance_entry(4, 11) < 0
    cov = noll_covariance(2, 36)
    np.testing.assert_allclose(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() > 0
    # Noll's residual after removing piston and tilt: Delta_3 = 0.134 (D/r0)^(5/3), of which modes
    # 4..36 carry all but the ~0.011 left beyond mode 36 (Noll's Delta_36 ~ 0.0111, here 0.0121).
    higher = np.trace(noll_covariance(4, 36))
    assert 0.134 - 0.013 < higher < 0.134 - 0.010


# --- Tilt correlation and tilt fields ------------------------------------------------------------


def _adaptive_integral(n: int, s: float) -> float:
    def integrand(z: float) -> float:
        return z ** (-14 / 3) * jv(n, 2 * s * z) * jv(2, z) ** 2

    # Pieces a few oscillations long, up to z = 40 (the tail beyond is below 1e-9).
    edges = np.concatenate([[0.0, 1e-3], np.linspace(0.05, 40.0, 40 + int(40 * s))])
    return sum(quad(integrand, a, b, limit=200)[0] for a, b in zip(edges[:-1], edges[1:]))


def test_tilt_correlation_integrals_match_adaptive_quadrature():
    s = np.array([0.0, 0.3, 2.0, 12.0, 60.0])
    i0, i2 = tilt_correlation_integrals(s)
    scale = _adaptive_integral(0, 0.0)
    assert scale == pytest.approx(0.05788, rel=1e-3)
    for k, value in enumerate(s):
        assert i0[k] == pytest.approx(_adaptive_integral(0, value), abs=1e-5 * scale)
        assert i2[k] == pytest.approx(_adaptive_integral(2, value), abs=1e-5 * scale)
    # The cached spline reproduces the direct quadrature between its nodes.
    rng = np.random.default_rng(0)
    probe = np.concatenate([rng.uniform(0, 4, 20), rng.uniform(4, 90, 20)])
    direct_i0, direct_i2 = tilt_correlation_integrals(probe)
    np.testing.assert_allclose(tilt_correlation(probe), (direct_i0 + direct_i2) / i0[0], atol=2e-6)
    correlation = tilt_correlation(np.linspace(0, 90, 500))
    assert correlation[0] == pytest.approx(1.0) and np.all(np.diff(correlation) < 0) and correlation[-1] > 0


def _j2_by_recurrence(order, x):
    """J_2 as the module computed it by hand before it used scipy's jv: 2 J_1(x) / x - J_0(x),
    and its power series below x = 0.5, where that difference cancels."""
    assert order == 2
    x = np.asarray(x, dtype=np.float64)
    small = x < 0.5
    x2 = np.where(small, x, 0.0) ** 2
    series = x2 / 8.0 * (1.0 - x2 / 12.0 * (1.0 - x2 / 32.0 * (1.0 - x2 / 60.0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        recurrence = 2.0 * j1(x) / x - j0(x)
    return np.where(small, series, recurrence)


def test_scipy_j2_gives_the_integrals_of_the_hand_written_one(monkeypatch):
    x = np.concatenate([np.linspace(0.0, 0.5, 5001), np.linspace(0.5, 200.0, 200_001)])
    np.testing.assert_allclose(jv(2, x), _j2_by_recurrence(2, x), rtol=0, atol=1e-9)
    s = np.array([0.0, 0.01, 0.3, 2.0, 12.0, 60.0])
    i0, i2 = tilt_correlation_integrals(s)
    monkeypatch.setattr(tilt, "jv", _j2_by_recurrence)
    old_i0, old_i2 = tilt_correlation_integrals(s)
    np.testing.assert_allclose(i0, old_i0, rtol=0, atol=1e-9)
    np.testing.assert_allclose(i2, old_i2, rtol=0, atol=1e-9)
    assert np.abs(i2).max() > 1e-3  # not both zero


def test_circulant_embedding_is_nearly_exact():
    amplitude, negative = circulant_amplitude(64, 64, 0.0258 / 0.2034)
    assert amplitude.shape == (128, 128)
    assert np.sum(amplitude**2) == pytest.approx(1.0)
    assert 0.0 <= negative < 2e-3  # clipped eigenvalue mass, relative to the point variance


def _tilt_draws(params: TurbulenceParams, size: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` (shift_x, shift_y) draws, float64 (count, size, size) each, in chunks of 500."""
    xs, ys = zip(*(sample_tilt_fields(params, size, size, 500, seed=chunk) for chunk in range(count // 500)))
    return torch.cat(xs).double(), torch.cat(ys).double()


@pytest.mark.slow
def test_tilt_fields_have_zero_mean_theoretical_std_and_correlation():
    params = TurbulenceParams(propagation_length=30_000.0)
    size, count = 64, 4000
    shift_x, shift_y = _tilt_draws(params, size, count)
    sigma = params.tilt_std_pixels(size)
    # sigma_px = sqrt(0.182) (lambda/D) (D/r0)^(5/6) L / pitch, computed by hand here.
    d_over_r0 = 0.2034 / (0.1586 * (2 * np.pi / 0.525e-6) ** 2 * 1e-16 * 30_000.0) ** (-0.6)
    by_hand = math.sqrt(0.182) * (0.525e-6 / 0.2034) * d_over_r0 ** (5 / 6) * 30_000.0 / 0.0258
    assert sigma == pytest.approx(by_hand, rel=1e-3) and sigma == pytest.approx(2.804, rel=1e-3)
    report = {}
    for name, field in (("x", shift_x), ("y", shift_y)):
        mean = field.mean(dim=0) / sigma
        std = field.std(dim=0) / sigma
        # Zero mean: standard error 1 / sqrt(4000) = 0.016 sigma per pixel.
        assert float(mean.abs().max()) < 0.08
        # Per-pixel ensemble std within 5% of theory everywhere (standard error ~1.1%).
        assert float((std - 1).abs().max()) < 0.05
        assert float(std.mean()) == pytest.approx(1.0, abs=0.03)
        report[name] = {
            "max |mean|/sigma": round(float(mean.abs().max()), 4),
            "std/sigma mean": round(float(std.mean()), 4),
            "std/sigma range": (round(float(std.min()), 4), round(float(std.max()), 4)),
        }
    # Spatial correlation coefficients follow C(d / D) along both axes (whole-image draws are highly
    # correlated, so normalise by the sampled variance rather than the theoretical one).
    for lag in (1, 4, 16):
        expected = float(tilt_correlation(np.array(lag * 0.0258 / 0.2034)))
        measured = []
        for field in (shift_x, shift_y):
            power = float(torch.mean(field**2))
            measured.append(float(torch.mean(field[:, :, :-lag] * field[:, :, lag:])) / power)
            measured.append(float(torch.mean(field[:, :-lag, :] * field[:, lag:, :])) / power)
        assert np.allclose(measured, expected, atol=0.02)
        report[f"corr at {lag} px (theory {expected:.3f})"] = [round(m, 3) for m in measured]
    cross = float(torch.mean(shift_x * shift_y)) / sigma**2
    assert abs(cross) < 0.05
    print(f"tilt sigma {sigma:.3f} px, x-y correlation {cross:.4f}:", report)


def test_tilt_variance_grows_as_d_over_r0_to_the_five_thirds():
    # Vary Cn2 at fixed range so that pixels convert to angles with one constant.
    d_over_r0, variance = [], []
    for cn2 in (2e-17, 1e-16, 5e-16, 2.5e-15):
        params = TurbulenceParams(propagation_length=30_000.0, cn2=cn2)
        shift_x, shift_y = _tilt_draws(params, 32, 1000)
        angle = torch.cat([shift_x, shift_y]) * params.pixel_pitch(32) / params.propagation_length
        d_over_r0.append(params.d_over_r0)
        variance.append(float(torch.mean(angle**2)))
        theory = 0.182 * (params.wavelength / params.aperture_diameter) ** 2 * params.d_over_r0 ** (5 / 3)
        assert variance[-1] == pytest.approx(theory, rel=0.1)
    slope = np.polyfit(np.log(d_over_r0), np.log(variance), 1)[0]
    print(f"tilt variance vs D/r0 {np.round(d_over_r0, 2)}: log-log slope {slope:.4f}")
    assert d_over_r0[-1] / d_over_r0[0] > 10
    assert slope == pytest.approx(5 / 3, abs=0.1)


# --- Short-exposure PSFs -------------------------------------------------------------------------


def _half_energy_radii(d_over_r0: float, draws: int, seed: int = 0) -> np.ndarray:
    """Per-draw 50%-energy radius about the PSF centroid, in lambda/D (tilt removed)."""
    q = 8.0  # samples per lambda/D
    model = build_psf_model(d_over_r0, q, 64)  # +-8 lambda/D window; total energy from Parseval
    white = torch.randn(draws, model.modes, generator=torch.Generator().manual_seed(seed))
    psfs = model.intensities(white).double().numpy() / model.total_energy
    offsets = np.arange(-64, 65, dtype=np.float64)
    radii = []
    for psf in psfs:
        weight = psf / psf.sum()
        cy = np.sum(weight.sum(axis=1) * offsets)
        cx = np.sum(weight.sum(axis=0) * offsets)
        r = np.hypot(offsets[:, None] - cy, offsets[None, :] - cx).ravel()
        order = np.argsort(r)
        energy = np.cumsum(psf.ravel()[order])
        radii.append(np.interp(0.5, energy, r[order]) / q)
    return np.array(radii)


def test_psf_model_equals_zero_padded_fft():
    # 32 pupil samples, q = 4 pixels per lambda/D: the FFT of the pupil zero-padded to 128 samples.
    model = build_psf_model(3.0, 4.0, 31, samples_across=32)
    white = torch.randn(3, model.modes, generator=torch.Generator().manual_seed(0))
    phase = (white @ model.mixing.T) @ model.basis
    field = (model.amplitude * torch.exp(1j * phase)).reshape(3, 32, 32)
    padded = torch.zeros(3, 128, 128, dtype=torch.complex64)
    padded[:, :32, :32] = field
    reference = torch.fft.fftshift(torch.fft.fft2(padded).abs() ** 2, dim=(-2, -1))[:, 33:96, 33:96]
    ours = model.intensities(white)
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=2e-4, atol=2e-4 * float(ours.max()))
    full = (torch.fft.fft2(padded).abs() ** 2).sum(dim=(-2, -1))
    np.testing.assert_allclose(full.numpy(), model.total_energy, rtol=1e-4)  # Parseval


def test_diffraction_limited_psf_is_the_airy_pattern():
    radius = _half_energy_radii(1e-6, draws=1)
    assert radius[0] == pytest.approx(0.514, rel=0.02)  # Airy: 50% of the light within 0.514 lambda/D
    for q in (0.7, 1.0, 1.5):  # undersampled detectors: computed finer, integrated over pixels
        model = build_psf_model(1e-6, q, 6)
        assert model.oversample % 2 == 1 and model.oversample * q >= 2
        psf = model.psfs(torch.zeros(1, model.modes))[0].numpy()
        np.testing.assert_allclose(psf, psf[::-1, ::-1], atol=1e-6)  # centred on the optical axis
        assert psf[6, 6] == psf.max()


@pytest.mark.slow
def test_short_exposure_half_energy_radii_match_published_values():
    measured = {}
    for d_over_r0, expected in ((2.0, 0.79), (4.0, 1.36), (8.0, 2.60)):
        radii = _half_energy_radii(d_over_r0, draws=300)
        measured[d_over_r0] = radii.mean()
        # Standard error of the mean under 2% of it (the radius varies a lot between draws); tolerance 10%.
        assert radii.std() / np.sqrt(radii.size) < 0.02 * radii.mean()
        assert radii.mean() == pytest.approx(expected, rel=0.10)
    print("mean 50%-energy radii (lambda/D):", {k: round(v, 3) for k, v in measured.items()})
    assert measured[2.0] < measured[4.0] < measured[8.0]


def test_default_psf_window_keeps_most_of_the_light():
    captured = {}
    for length in (20_000.0, 30_000.0, 40_000.0):
        params = TurbulenceParams(propagation_length=length)
        plan = _cpu_plan(params, 64, 64)
        white = torch.randn(128, plan.psf.modes, generator=torch.Generator().manual_seed(1))
        kept = plan.psf.intensities(white).sum(dim=(-2, -1)) / plan.psf.total_energy
        captured[length] = float(kept.mean())
        assert captured[length] > 0.97
        assert plan.psf.half_width >= 6 * params.pixels_per_lambda_over_d(64) - 0.5  # >= 6 lambda/D
    print("mean fraction of PSF energy inside the window:", captured)
