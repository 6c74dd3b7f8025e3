"""PSNR and SSIM on Y equal scikit-image's on the same luma, and pyiqa's Y-channel ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from osdface.quality.pixels import luma, psnr, ssim


def _pair(shape, noise, seed=0):
    rng = np.random.default_rng(seed)
    reference = rng.integers(0, 256, shape, dtype=np.uint8)
    image = np.clip(reference.astype(int) + rng.integers(-noise, noise + 1, shape), 0, 255).astype(np.uint8)
    return image, reference


@pytest.mark.parametrize("shape,noise", [((64, 48, 3), 20), ((37, 91, 3), 3), ((512, 512, 3), 60)])
def test_psnr_and_ssim_equal_scikit_image_on_the_luma(shape, noise):
    image, reference = _pair(shape, noise)
    y, y_ref = luma(image), luma(reference)
    assert psnr(image, reference) == pytest.approx(
        peak_signal_noise_ratio(y_ref, y, data_range=255), abs=1e-6
    )
    expected = structural_similarity(
        y_ref, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(image, reference) == pytest.approx(expected, abs=1e-6)


def test_luma_is_bt601_studio_range():
    assert luma(np.zeros((1, 1, 3), np.uint8))[0, 0] == pytest.approx(16.0)
    assert luma(np.full((1, 1, 3), 255, np.uint8))[0, 0] == pytest.approx(235.0)


def test_equal_images_and_bad_sizes():
    image, _ = _pair((32, 32, 3), 5)
    assert psnr(image, image) == math.inf
    assert ssim(image, image) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in size"):
        psnr(image, image[:16])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(image[:8, :8], image[:8, :8])


def test_the_convention_is_pyiqas_with_ycbcr_luma():
    # pyiqa's default Y for "psnry" and "ssim" is YIQ's full-range luma; with color_space="ycbcr"
    # it is BasicSR's studio-range one, ours.
    pyiqa = pytest.importorskip("pyiqa")
    image, reference = _pair((96, 80, 3), 25, seed=1)

    def tensor(a):
        return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255

    theirs_psnr = pyiqa.create_metric("psnry", device="cpu", color_space="ycbcr")(
        tensor(image), tensor(reference)
    ).item()
    theirs_ssim = pyiqa.create_metric("ssim", device="cpu", color_space="ycbcr")(
        tensor(image), tensor(reference)
    ).item()
    # pyiqa computes in float32: equal to a few parts in 10^5
    assert psnr(image, reference) == pytest.approx(theirs_psnr, abs=1e-3)
    assert ssim(image, reference) == pytest.approx(theirs_ssim, abs=1e-4)
