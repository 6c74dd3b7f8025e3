"""Classic synthetic degradation: blur, downsample, noise, JPEG, upsample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from osdface.degradations import classic_degradation
from osdface.degradations.classic import MAX_SIGMA

NONE = {"sigma": 0.0, "scale": 1.0, "noise": 0.0, "jpeg_quality": None}


def _scene(size: int = 64) -> np.ndarray:
    """(size, size, 3) uint8: smooth gradients plus a few sharp edges."""
    y, x = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * ((x > 0.5) ^ (y > 0.3))], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


def test_every_step_off_is_the_identity():
    image = _scene().astype(np.float32) / 255
    np.testing.assert_allclose(classic_degradation(image, **NONE), image, atol=1e-6)
    np.testing.assert_array_equal(classic_degradation(_scene(), **NONE), _scene())


def test_blur_spreads_an_impulse_with_the_requested_sigma():
    image = np.zeros((65, 65, 3), np.float32)
    image[32, 32] = 1.0
    out = classic_degradation(image, **{**NONE, "sigma": 2.0})[..., 0].astype(np.float64)
    assert out.sum() == pytest.approx(1.0, rel=1e-3)
    y, x = np.mgrid[0:65, 0:65] - 32
    assert np.sqrt(np.sum(out * x**2) / out.sum()) == pytest.approx(2.0, rel=0.03)
    np.testing.assert_allclose(out, out.T, atol=1e-6)


def test_down_and_up_sampling_removes_fine_detail_but_keeps_smooth_content():
    size = 64
    y, x = np.mgrid[0:size, 0:size]
    fine = np.repeat(((x + y) % 2)[..., None], 3, axis=-1).astype(np.float32)  # one-pixel checkerboard
    smooth = np.repeat((0.2 + 0.6 * x / size)[..., None], 3, axis=-1).astype(np.float32)
    settings = {**NONE, "sigma": 1.5, "scale": 4.0}
    assert classic_degradation(fine, **settings).std() < 0.05 * fine.std()
    out = classic_degradation(smooth, **settings)
    assert np.abs(out - smooth)[4:-4, 4:-4].max() < 0.01


def test_noise_has_the_requested_standard_deviation():
    grey = np.full((128, 128, 3), 0.5, np.float32)
    out = classic_degradation(grey, **{**NONE, "noise": 12.0})
    assert (out - 0.5).std() == pytest.approx(12.0 / 255, rel=0.03)
    assert abs((out - 0.5).mean()) < 0.002


def test_stronger_jpeg_compression_loses_more():
    image = _scene(96)
    errors = []
    for quality in (95, 50, 10):
        out = classic_degradation(image, **{**NONE, "jpeg_quality": quality})
        errors.append(np.abs(out.astype(np.int16) - image).mean())
    assert errors[0] < errors[1] < errors[2] and errors[0] > 0


def test_seeded_shape_dtype_and_containers_are_kept():
    image = _scene()
    first = classic_degradation(image, sigma=2.0, scale=2.0, noise=10.0, jpeg_quality=70, seed=0)
    assert first.shape == image.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(
        first, classic_degradation(image, sigma=2.0, scale=2.0, noise=10.0, jpeg_quality=70, seed=0)
    )
    assert not np.array_equal(
        first, classic_degradation(image, sigma=2.0, scale=2.0, noise=10.0, jpeg_quality=70, seed=1)
    )
    batch = classic_degradation(np.stack([image, image]), seed=0)
    assert batch.shape == (2, 64, 64, 3) and not np.array_equal(batch[0], batch[1])
    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    out = classic_degradation(tensor, seed=0)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 64, 64) and out.dtype == torch.float32
    odd = classic_degradation(np.zeros((37, 50, 3), np.float64), scale=3.0)
    assert odd.shape == (37, 50, 3) and odd.dtype == np.float64


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigma": -1.0}, "sigma must be >= 0.0, got -1.0"),
        ({"sigma": float("nan")}, "sigma must be >= 0.0, got nan"),
        ({"scale": 0.5}, "scale must be >= 1.0, got 0.5"),
        ({"noise": -3}, "noise must be >= 0.0, got -3.0"),
        ({"noise": "high"}, "noise must be a number >= 0.0, got 'high'"),
        ({"jpeg_quality": 0}, r"jpeg_quality must be an int in \[1, 100\] or None, got 0"),
        ({"jpeg_quality": 101}, r"jpeg_quality must be an int in \[1, 100\] or None, got 101"),
        ({"jpeg_quality": 50.5}, r"jpeg_quality must be an int in \[1, 100\] or None, got 50.5"),
        ({"seed": -1}, "seed must be a non-negative int, got -1"),
        ({"scale": 100.0}, "scale 100.0 is too large for a 64x64 image"),
        # OpenCV's std::bad_alloc and a failed kernel-size assertion, before the limit
        ({"sigma": 1e6}, "sigma must be at most 50.0, got 1000000.0"),
        ({"sigma": 1e300}, r"sigma must be at most 50.0, got 1e\+300"),
        ({"sigma": 50.01}, "sigma must be at most 50.0, got 50.01"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        classic_degradation(_scene(), **kwargs)


def test_bad_images_raise_value_error():
    with pytest.raises(ValueError, match="image must be a numpy array or a torch tensor"):
        classic_degradation("face.png")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too small"):
        classic_degradation(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        classic_degradation(np.full((16, 16, 3), 2.0, np.float32))


def test_the_largest_sigma_blurs_an_image_into_its_mean():
    image = _scene()
    out = classic_degradation(image, **{**NONE, "sigma": MAX_SIGMA}).astype(np.float64)
    assert out.shape == image.shape and out.std(axis=(0, 1)).max() < 0.1 * image.std(axis=(0, 1)).max()
