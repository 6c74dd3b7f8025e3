"""The flicker figure: change inside the faces between frames, output against input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from osdface.video.flicker import FlickerMeter


def frames(count: int, shift: int = 2) -> list[np.ndarray]:
    """A gradient that slides ``shift`` pixels a frame: (48, 64, 3) uint8."""
    base = np.tile(np.arange(96, dtype=np.uint8)[None, :, None] * 2, (48, 1, 3))
    return [np.ascontiguousarray(base[:, shift * i : shift * i + 64]) for i in range(count)]


def test_an_output_equal_to_the_input_has_ratio_one_and_noise_raises_it():
    meter, noisy = FlickerMeter(), FlickerMeter()
    rng = np.random.default_rng(0)
    box = (8.0, 8.0, 40.0, 40.0)
    for image in frames(6):
        meter.add(image, image, [(0, box)])
        grain = rng.integers(-6, 7, image.shape)
        noisy.add(image, np.clip(image + grain, 0, 255).astype(np.uint8), [(0, box)])
    same, grainy = meter.report(), noisy.report()
    assert same.pairs == 5 and same.ratio == pytest.approx(1.0) and same.added == 0.0
    assert same.input == pytest.approx(4.0)  # 2 pixels of a 2-levels-per-pixel ramp
    assert grainy.ratio > 1.3
    assert grainy.added > 3.0  # two independent draws of +-6 levels: mean |difference| about 4
    assert "added" in grainy.line()


def test_only_faces_seen_in_both_frames_count_and_upscaled_outputs_are_compared_at_input_size():
    meter = FlickerMeter()
    images = frames(3)
    meter.add(images[0], np.repeat(np.repeat(images[0], 2, 0), 2, 1), [(0, (0, 0, 30, 30))])
    meter.add(images[1], np.repeat(np.repeat(images[1], 2, 0), 2, 1), [(1, (0, 0, 30, 30))])
    assert meter.report().pairs == 0
    assert math.isnan(meter.report().ratio)
    assert "no face" in meter.report().line()
    meter.add(images[2], np.repeat(np.repeat(images[2], 2, 0), 2, 1), [(1, (0, 0, 30, 30))])
    assert meter.report().pairs == 1
    assert meter.report().ratio == pytest.approx(1.0, abs=0.05)
