"""Turbulence simulator: API, image formats, validation, the blended blur and image-level behaviour."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
import torch
from scipy import ndimage

from osdface.degradations import TurbulenceParams, TurbulenceResult, simulate_turbulence
from osdface.degradations.blur import (
    _convolve_tiles_scipy,
    _convolve_tiles_torch,
    _fast_fft_length,
    build_blur_grid,
    spatially_varying_blur,
)
from osdface.degradations.turbulence import check_set_up, clear_caches, describe, warp


def _scene(size: int, seed: int = 0) -> np.ndarray:
    """(size, size, 3) uint8 RGB: a bright disc, stripes, a checkerboard and mild texture."""
    y, x = np.mgrid[0:size, 0:size] / size
    disc = (np.hypot(x - 0.35, y - 0.4) < 0.2).astype(np.float64)
    stripes = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * 6 * (x + 0.3 * y)))
    checks = ((np.floor(x * 8) + np.floor(y * 8)) % 2).astype(np.float64)
    texture = np.random.default_rng(seed).random((size, size))
    rgb = np.stack(
        [0.15 + 0.7 * disc, 0.2 + 0.5 * stripes * (y > 0.5) + 0.1 * texture, 0.1 + 0.6 * checks * (x > 0.6)],
        axis=-1,
    )
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def _sharpness(image: np.ndarray) -> float:
    """Mean gradient magnitude of the grey image (0..255 scale)."""
    grey = image.astype(np.float64).mean(axis=-1)
    gy, gx = np.gradient(grey)
    return float(np.mean(np.hypot(gx, gy)))


# --- API and parameters ---------------------------------------------------------------------------


@pytest.mark.slow  # a fresh interpreter importing torch and scipy
def test_package_import_is_light():
    code = "import sys, osdface.degradations; print(sorted(m for m in ('diffusers', 'gradio', 'transformers') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_parameters_give_the_documented_optics():
    near, far = TurbulenceParams(propagation_length=20_000.0), TurbulenceParams(propagation_length=40_000)
    assert near.d_over_r0 == pytest.approx(2.008, abs=2e-3)
    assert far.d_over_r0 == pytest.approx(3.044, abs=2e-3)
    assert far.d_over_r0 / near.d_over_r0 == pytest.approx(2 ** (3 / 5))
    k = 2 * math.pi / 0.525e-6
    assert near.fried_parameter == pytest.approx((0.1586 * k**2 * 1e-16 * 20_000) ** (-3 / 5), rel=1e-3)
    # Pixel pitch 0.0258 m: Nyquist (2 px per lambda/D) at 20 km, 13.2 m across 512 pixels.
    assert near.pixel_pitch(512) * 512 == pytest.approx(13.21, abs=0.01)
    assert near.pixels_per_lambda_over_d(512) == pytest.approx(2.0, abs=2e-3)
    assert far.pixels_per_lambda_over_d(512) == pytest.approx(4.0, abs=3e-3)
    assert near.tilt_std_pixels(512) == pytest.approx(1.526, abs=2e-3)
    assert far.tilt_std_pixels(512) == pytest.approx(4.317, abs=2e-3)
    wide = TurbulenceParams(object_width=512 * 0.0516)
    assert wide.pixel_pitch(512) == pytest.approx(0.0516) and wide.pixels_per_lambda_over_d(512) < 2
    info = describe(TurbulenceParams(propagation_length=20_000.0), 512, 512)
    assert info["node_spacing_px"] == 16 and info["nodes"] == 33 * 33  # nodes about 2 D apart
    # Frozen and hashable (it keys the caches); 30000 and 30000.0 are the same parameters.
    assert TurbulenceParams(propagation_length=30_000) == TurbulenceParams(propagation_length=30_000.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        near.propagation_length = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("propagation_length", -5.0, "propagation_length must be > 0, got -5.0"),
        ("propagation_length", 0, "propagation_length must be > 0, got 0.0"),
        ("propagation_length", float("nan"), "propagation_length must be > 0, got nan"),
        ("propagation_length", "30 km", "propagation_length must be a number > 0, got '30 km'"),
        ("aperture_diameter", 0.0, "aperture_diameter must be > 0, got 0.0"),
        ("aperture_diameter", -0.2, "aperture_diameter must be > 0, got -0.2"),
        ("wavelength", 0.0, "wavelength must be > 0, got 0.0"),
        ("cn2", -1e-16, "cn2 must be > 0, got -1e-16"),
        ("object_width", 0.0, "object_width must be > 0, got 0.0"),
        ("psf_grid_spacing", float("inf"), "psf_grid_spacing must be > 0, got inf"),
        ("max_noll_index", 3, "max_noll_index must be an int in [4, 120], got 3"),
        ("max_noll_index", 36.0, "max_noll_index must be an int in [4, 120], got 36.0"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(field, value, message):
    with pytest.raises(ValueError) as excinfo:
        TurbulenceParams(**{field: value})
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("image", "match"),
    [
        ([[0, 1], [2, 3]], "image must be a numpy array or a torch tensor, got list"),
        (np.zeros((64, 64), np.uint8), r"shape \(H, W, 3\).*got \(64, 64\)"),
        (np.zeros((64, 64, 4), np.uint8), r"RGB with shape \(H, W, 3\), got \(64, 64, 4\)"),
        (np.zeros((3, 64, 64), np.float32), r"RGB with shape \(H, W, 3\), got \(3, 64, 64\)"),
        (np.zeros((64, 64, 3), np.int32), "uint8 or float in \\[0, 1\\], got dtype int32"),
        (np.zeros((64, 64, 3), bool), "uint8 or float in \\[0, 1\\], got dtype bool"),
        (
            np.full((64, 64, 3), 255.0, np.float32),
            r"float image must hold finite values in \[0, 1\], got range \[255.0, 255.0\]",
        ),
        (np.full((64, 64, 3), np.nan, np.float32), "finite values"),
        (np.zeros((16, 16, 3), np.uint8), "image is too small: 16x16 pixels, need at least 32x32"),
        (np.zeros((0, 64, 64, 3), np.uint8), "batch is empty"),
        (torch.zeros(2, 5, 64, 64), r"RGB with shape .*got \(2, 5, 64, 64\)"),
    ],
)
def test_bad_images_raise_value_error(image, match):
    with pytest.raises(ValueError, match=match):
        simulate_turbulence(image, TurbulenceParams())


def test_turbulence_too_strong_for_the_pixel_pitch_raises_value_error():
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(
        ValueError, match=r"propagation_length 300000.0 m .* PSFs \d+ pixels wide .* object_width"
    ):
        simulate_turbulence(image, TurbulenceParams(propagation_length=300_000.0))
    # The same range with pixels 8x coarser is fine.
    out = simulate_turbulence(
        image, TurbulenceParams(propagation_length=300_000.0, object_width=32 * 8 * 0.0258)
    )
    assert out.shape == image.shape


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # "30" typed for 30 km: used to ask for tens of GiB (the pupil sampled ever more finely)
        (
            {"propagation_length": 30.0},
            r"^propagation_length 30.0 m gives 0.003 pixels per lambda/D .* needs at least 0.25: "
            r"propagation_length must be at least 2499 m here",
        ),
        (
            {"aperture_diameter": 1e-6},
            r"^the default pixel pitch 0.0258 m .* aperture_diameter 1e-06 m makes the diagonal of a 64x64 scene "
            r".* supports up to 1024: object_width must be at most 0.0007241 m here \(or aperture_diameter at "
            r"least 0.00228 m\)",
        ),
        ({"object_width": 1000.0}, r"^object_width 1000.0 m .* object_width must be at most 147.3 m here"),
        # a search counting up to 1e14 for minutes
        (
            {"psf_grid_spacing": 1e13},
            r"^psf_grid_spacing 10000000000000.0 aperture diameters puts the PSF nodes 7.884e\+13 pixels apart "
            r".* up to 512 pixels: psf_grid_spacing must be in \(0, 64.94\] here",
        ),
        ({"object_width": 1e-9}, r"^psf_grid_spacing 2.0 aperture diameters .* larger object_width"),
        (
            {"propagation_length": 200_000.0},
            r"^propagation_length 200000.0 m .* PSFs 641 pixels wide .* up to 257: propagation_length must be "
            r"in \[2499, 1.131e\+05\] m here",
        ),
        ({"cn2": 1e-12}, r"no propagation_length fits with this cn2 and pixel pitch"),
    ],
)
def test_set_ups_too_large_to_build_are_refused_before_anything_is_allocated(kwargs, message):
    # Each used to raise MemoryError (several GiB), or search for minutes, before any check.
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=message):
            simulate_turbulence(np.zeros((64, 64, 3), np.uint8), TurbulenceParams(**kwargs))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000 and time.perf_counter() - started < 1.0


def test_the_limits_leave_the_papers_range_and_the_documented_set_ups_alone():
    for length in (2_500.0, 20_000.0, 40_000.0, 110_000.0):
        check_set_up(TurbulenceParams(propagation_length=length), 512, 512)
    check_set_up(TurbulenceParams(object_width=512 * 0.0516), 512, 512)
    check_set_up(TurbulenceParams(psf_grid_spacing=64.0), 512, 512)
    # The FFT length search is bounded too, whatever calls it.
    assert _fast_fft_length(82) == 96
    with pytest.raises(ValueError, match="patch of 100000000000000 pixels"):
        _fast_fft_length(10**14)


def test_bad_call_arguments_raise_value_error():
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="params must be a TurbulenceParams, got dict"):
        simulate_turbulence(image, {"propagation_length": 30_000.0})  # type: ignore[arg-type]
    for seed in (-1, 1.5, True):
        with pytest.raises(ValueError, match="seed must be an int"):
            simulate_turbulence(image, TurbulenceParams(), seed=seed)  # type: ignore[arg-type]


# --- Formats, determinism, fields -----------------------------------------------------------------


def test_formats_round_trip_with_same_shape_dtype_and_container():
    params = TurbulenceParams(propagation_length=30_000.0)
    base = _scene(48)
    float_image = base.astype(np.float32) / 255
    cases = [
        base,
        float_image,
        float_image.astype(np.float64),
        np.stack([base, base[::-1]]),
        torch.from_numpy(base),
        torch.from_numpy(float_image).permute(2, 0, 1),  # (3, H, W)
        torch.from_numpy(float_image).permute(2, 0, 1)[None].half(),  # (1, 3, H, W) float16
    ]
    for image in cases:
        out = simulate_turbulence(image, params, seed=3)
        assert type(out) is type(image) and out.shape == image.shape and out.dtype == image.dtype
        values = np.asarray(out.float() if isinstance(out, torch.Tensor) else out, dtype=np.float64)
        scale = 255.0 if values.max() > 1.0 else 1.0
        assert 0.0 <= values.min() and values.max() <= scale
        original = np.asarray(image.float() if isinstance(image, torch.Tensor) else image, dtype=np.float64)
        assert np.abs(values - original).mean() > 0.01 * scale  # it did something
    # Float in, float out: the uint8 path is the float path rounded.
    as_uint8 = simulate_turbulence(base, params, seed=3).astype(np.float64)
    as_float = simulate_turbulence(float_image, params, seed=3).astype(np.float64) * 255
    assert np.abs(as_uint8 - as_float).max() <= 0.5 + 1e-3


def test_same_seed_same_output_and_different_seeds_differ():
    params = TurbulenceParams(propagation_length=35_000.0)
    image = _scene(64)
    first = simulate_turbulence(image, params, seed=7)
    np.testing.assert_array_equal(first, simulate_turbulence(image, params, seed=7))
    other = simulate_turbulence(image, params, seed=8)
    assert np.abs(first.astype(np.int16) - other.astype(np.int16)).mean() > 1.0


def test_batch_frames_get_their_own_atmosphere_in_seed_order():
    params = TurbulenceParams(propagation_length=30_000.0)
    image = _scene(64)
    batch = simulate_turbulence(np.stack([image, image]), params, seed=5, return_fields=True)
    single = simulate_turbulence(image, params, seed=5, return_fields=True)
    np.testing.assert_array_equal(batch.image[0], single.image)
    np.testing.assert_array_equal(batch.shift_x[0], single.shift_x)
    assert not np.array_equal(batch.image[0], batch.image[1])
    assert not np.allclose(batch.shift_y[0], batch.shift_y[1])


def test_return_fields_gives_tilt_shifts_in_pixels():
    params = TurbulenceParams(propagation_length=40_000.0)
    image = _scene(64)
    result = simulate_turbulence(image, params, seed=0, return_fields=True)
    assert isinstance(result, TurbulenceResult)
    assert result.image.shape == image.shape and result.image.dtype == np.uint8
    assert result.shift_x.shape == (64, 64) and result.shift_y.shape == (64, 64)
    assert result.shift_x.dtype == np.float32
    np.testing.assert_array_equal(result.image, simulate_turbulence(image, params, seed=0))
    # Over 24 frames the RMS shift is near the theoretical 4.32 px (whole-image draws are strongly
    # correlated, so only a loose check here; the statistics tests are in test_degradations_physics).
    shifts = [simulate_turbulence(image, params, seed=s, return_fields=True) for s in range(24)]
    rms = np.sqrt(np.mean([np.mean(r.shift_x**2 + r.shift_y**2) / 2 for r in shifts]))
    assert rms == pytest.approx(params.tilt_std_pixels(64), rel=0.3)
    tensor = simulate_turbulence(torch.from_numpy(image).permute(2, 0, 1), params, seed=0, return_fields=True)
    assert isinstance(tensor.shift_x, torch.Tensor) and tensor.shift_x.shape == (64, 64)
    np.testing.assert_allclose(tensor.shift_x.numpy(), result.shift_x)


def test_warp_moves_the_image_by_the_shift_field():
    frame = torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(0))
    shift_x = torch.full((40, 50), 2.0)
    shift_y = torch.full((40, 50), -3.0)
    moved = warp(frame, shift_x, shift_y)
    # warped(x, y) = frame(x - 2, y + 3): content moves right by 2 and up by 3.
    torch.testing.assert_close(moved[:, 5:30, 4:45], frame[:, 8:33, 2:43])
    half = warp(frame, torch.full((40, 50), 0.5), torch.zeros(40, 50))
    torch.testing.assert_close(half[:, :, 1:], (frame[:, :, :-1] + frame[:, :, 1:]) / 2)


def test_cached_set_up_gives_the_frames_a_fresh_one_gives():
    """The set-up is cached per parameters and image size: with other set-ups in the cache,
    each call still gets its own (a key missing the size or a parameter would mix them up)."""
    near, far = TurbulenceParams(propagation_length=25_000.0), TurbulenceParams(propagation_length=40_000.0)
    calls = [(near, 40), (far, 40), (near, 48)]
    fresh = []
    for params, size in calls:
        clear_caches()
        fresh.append(simulate_turbulence(_scene(size), params, seed=1))
    clear_caches()
    for _ in range(2):  # the second round runs entirely on cached set-ups
        for (params, size), expected in zip(calls, fresh):
            np.testing.assert_array_equal(simulate_turbulence(_scene(size), params, seed=1), expected)
    same_as_near = TurbulenceParams(propagation_length=25_000)  # an int: equal parameters, same set-up
    np.testing.assert_array_equal(simulate_turbulence(_scene(40), same_as_near, seed=1), fresh[0])
    assert np.abs(fresh[0].astype(int) - fresh[1].astype(int)).max() > 10  # the set-ups do differ


# --- The blended, spatially varying blur ----------------------------------------------------------


def test_constant_image_stays_constant():
    for params in (
        TurbulenceParams(propagation_length=40_000.0),
        TurbulenceParams(
            propagation_length=30_000.0, object_width=48 * 0.0774
        ),  # q = 1: pixel-integrated PSF
    ):
        flat = np.full((37, 48, 3), 0.37, np.float32)
        out = simulate_turbulence(flat, params, seed=2)
        assert out.shape == flat.shape
        assert np.abs(out - 0.37).max() < 1e-3
    grey = np.full((64, 64, 3), 200, np.uint8)
    np.testing.assert_array_equal(
        simulate_turbulence(grey, TurbulenceParams(propagation_length=40_000.0)), grey
    )


def test_blend_of_identical_psfs_is_a_plain_convolution():
    rng = np.random.default_rng(0)
    kernel = rng.random((11, 11)) * np.linspace(0.2, 1.0, 11)[None, :]  # asymmetric: checks orientation
    kernel /= kernel.sum()
    image = rng.random((3, 50, 70)).astype(np.float32)
    grid = build_blur_grid(50, 70, 8, 5)
    psfs = torch.from_numpy(np.broadcast_to(kernel, (grid.nodes_y, grid.nodes_x, 11, 11)).copy()).float()
    out = spatially_varying_blur(torch.from_numpy(image), psfs, grid).numpy()
    # 'mirror' is reflect-101, the simulator's border rule; ndimage.convolve flips the kernel.
    expected = np.stack([ndimage.convolve(c, kernel, mode="mirror") for c in image])
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_blend_uses_each_node_psf_with_bilinear_weights():
    rng = np.random.default_rng(1)
    image = rng.random((1, 40, 40)).astype(np.float32)
    grid = build_blur_grid(40, 40, 8, 3)
    kernels = rng.random((grid.nodes_y, grid.nodes_x, 7, 7))
    kernels /= kernels.sum(axis=(-2, -1), keepdims=True)
    out = spatially_varying_blur(torch.from_numpy(image), torch.from_numpy(kernels).float(), grid).numpy()[0]

    def node_conv(a: int, b: int) -> np.ndarray:
        return ndimage.convolve(image[0], kernels[a, b], mode="mirror")

    assert out[16, 24] == pytest.approx(node_conv(2, 3)[16, 24], abs=1e-5)  # on node (2, 3): its PSF only
    midway = 0.5 * node_conv(2, 3)[16, 28] + 0.5 * node_conv(2, 4)[16, 28]
    assert out[16, 28] == pytest.approx(midway, abs=1e-5)
    quarter = (
        0.75 * 0.25 * node_conv(1, 1)[10, 14]
        + 0.75 * 0.75 * node_conv(1, 2)[10, 14]
        + 0.25 * 0.25 * node_conv(2, 1)[10, 14]
        + 0.25 * 0.75 * node_conv(2, 2)[10, 14]
    )
    assert out[10, 14] == pytest.approx(quarter, abs=1e-5)


def test_cpu_and_cuda_convolution_backends_agree():
    # The CUDA path uses torch.fft; check that code on CPU against the scipy path used there.
    generator = torch.Generator().manual_seed(0)
    patches = torch.rand(3, 2, 4, 40, 40, generator=generator)
    kernels = torch.rand(2, 4, 9, 9, generator=generator)
    scipy_tiles = _convolve_tiles_scipy(patches, kernels, 8, 24)
    torch_tiles = _convolve_tiles_torch(patches, kernels, 8, 24)
    assert scipy_tiles.shape == (3, 2, 4, 24, 24)
    torch.testing.assert_close(torch_tiles, scipy_tiles, atol=1e-4, rtol=1e-5)
    direct = sum(
        kernels[1, 2, i, j] * patches[0, 1, 2, 8 - i : 32 - i, 8 - j : 32 - j]
        for i in range(9)
        for j in range(9)
    )
    torch.testing.assert_close(scipy_tiles[0, 1, 2], direct, atol=1e-4, rtol=1e-5)


@pytest.mark.slow
def test_mean_is_kept_and_sharpness_falls_with_propagation_length():
    image = _scene(192)
    reference_mean = image.astype(np.float64).mean()
    sharpness = {}
    for length in (20_000.0, 25_000.0, 30_000.0, 35_000.0, 40_000.0):
        params = TurbulenceParams(propagation_length=length)
        values = []
        for seed in range(5):
            out = simulate_turbulence(image, params, seed=seed)
            assert out.astype(np.float64).mean() == pytest.approx(reference_mean, rel=0.01)
            values.append(_sharpness(out))
        sharpness[length] = float(np.mean(values))
    ordered = [sharpness[length] for length in sorted(sharpness)]
    print(
        "mean gradient magnitude vs L:",
        {k: round(v, 3) for k, v in sharpness.items()},
        "clean:",
        _sharpness(image),
    )
    assert all(a > b for a, b in zip(ordered, ordered[1:]))
    assert _sharpness(image) > ordered[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    params = TurbulenceParams(propagation_length=30_000.0)
    image = torch.from_numpy(_scene(96)).float() / 255
    cpu = simulate_turbulence(image, params, seed=4, return_fields=True)
    gpu = simulate_turbulence(image.cuda(), params, seed=4, return_fields=True)
    assert gpu.image.device.type == "cuda" and gpu.shift_x.device.type == "cuda"
    torch.testing.assert_close(gpu.shift_x.cpu(), cpu.shift_x, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gpu.image.cpu(), cpu.image, atol=2e-3, rtol=0)
