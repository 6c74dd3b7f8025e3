"""The CPU tilt warp (cv2.remap) against the torch one (grid_sample), which CUDA keeps using."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from osdface.degradations import simulate_turbulence
from osdface.degradations.turbulence import TurbulenceParams, sample_tilt_fields
from osdface.degradations.warp import warp, warp_grid_sample, warp_remap


def _frame(channels: int = 3, height: int = 96, width: int = 80) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(channels, height, width, generator=generator)


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_remap_matches_grid_sample_on_a_tilt_field(channels):
    frame = _frame(channels)
    shift_x, shift_y = sample_tilt_fields(TurbulenceParams(propagation_length=40_000.0), 96, 80, 1, seed=0)
    fast = warp_remap(frame, shift_x[0], shift_y[0])
    reference = warp_grid_sample(frame, shift_x[0], shift_y[0])
    assert fast.shape == reference.shape == frame.shape and fast.dtype == frame.dtype
    # OpenCV's interpolation weights round differently: 0.004/255 measured on sharp random pixels.
    assert (fast - reference).abs().max().item() < 0.01 / 255
    assert (fast - frame).abs().max().item() > 0.1  # it did move the pixels


def test_remap_is_as_close_to_the_exact_warp_as_grid_sample_is():
    # Below about 0.01/255 the two float32 warps differ only by float32 rounding of the sample
    # coordinates (an ulp at x = 80 is 8e-6 pixel, times an edge of height 1); against the
    # float64 warp, cv2.remap must stay within 1.5x of the torch path it replaces on the CPU (it
    # measured 0.6x: 0.0012/255 vs 0.0020/255; the margin is for other OpenCV builds).
    frame = _frame(3)
    shift_x, shift_y = sample_tilt_fields(TurbulenceParams(propagation_length=40_000.0), 96, 80, 1, seed=0)
    exact = warp_grid_sample(frame.double(), shift_x[0].double(), shift_y[0].double())
    remap_error = (warp_remap(frame, shift_x[0], shift_y[0]).double() - exact).abs().max().item()
    torch_error = (warp_grid_sample(frame, shift_x[0], shift_y[0]).double() - exact).abs().max().item()
    assert 0 < remap_error <= 1.5 * torch_error, (remap_error * 255, torch_error * 255)


def test_remap_reflects_like_grid_sample_far_outside_the_frame():
    frame = _frame(3, 30, 40)
    shift_x = torch.linspace(-95.0, 95.0, 30 * 40).reshape(30, 40)
    shift_y = torch.full((30, 40), -70.3)
    torch.testing.assert_close(
        warp_remap(frame, shift_x, shift_y), warp_grid_sample(frame, shift_x, shift_y), atol=1e-5, rtol=0
    )


def test_warp_dispatches_on_the_device(monkeypatch):
    calls = []
    import osdface.degradations.warp as module

    monkeypatch.setattr(module, "warp_remap", lambda *a: calls.append("remap") or a[0])
    warp(_frame(), torch.zeros(96, 80), torch.zeros(96, 80))
    assert calls == ["remap"]


def test_float64_frames_keep_their_dtype():
    frame = _frame().double()
    out = warp(
        frame, torch.full((96, 80), 0.5, dtype=torch.float64), torch.zeros(96, 80, dtype=torch.float64)
    )
    assert out.dtype == torch.float64
    np.testing.assert_allclose(
        out[:, :, 1:].numpy(), ((frame[:, :, :-1] + frame[:, :, 1:]) / 2).numpy(), atol=1e-6
    )


def test_simulated_frame_is_unchanged_by_the_cpu_warp(monkeypatch):
    """End to end: the turbulence output with the CPU remap equals the grid_sample one."""
    import osdface.degradations.turbulence as turbulence

    image = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    params = TurbulenceParams(propagation_length=30_000.0)
    fast = simulate_turbulence(image, params, seed=3)
    monkeypatch.setattr(turbulence, "warp", warp_grid_sample)
    reference = simulate_turbulence(image, params, seed=3)
    assert np.abs(fast.astype(int) - reference.astype(int)).max() <= 1
    assert (fast != reference).mean() < 0.01
