"""The One Euro filter steadies a noisy landmark track without lagging a moving face."""

from __future__ import annotations

import numpy as np
import pytest

from osdface.faces.template import FFHQ_TEMPLATE_512
from osdface.video.smoothing import OneEuroFilter, OneEuroSettings, face_size

# A face about 130 pixels wide in the frame (eye-to-mouth distance about 33 pixels).
FACE = FFHQ_TEMPLATE_512 / 4


def jitter(
    settings: OneEuroSettings, speed: float, *, noise: float = 1.5, fps: float = 30.0
) -> tuple[float, float]:
    """(frame-to-frame jitter, mean position error) in pixels of a face moving at ``speed``
    pixels per second, observed with Gaussian noise of ``noise`` pixels: jitter is the mean
    absolute difference between the filtered and the true move from one frame to the next."""
    rng = np.random.default_rng(0)
    track = OneEuroFilter(settings)
    moves, errors = [], []
    previous = previous_true = None
    for index in range(150):
        t = index / fps
        true = FACE + np.array([speed * t, 0.3 * speed * t])
        output = track(true + rng.normal(0.0, noise, true.shape), t)
        if index > 10:  # past the filter's start
            moves.append(np.abs((output - previous) - (true - previous_true)).mean())
            errors.append(np.abs(output - true).mean())
        previous, previous_true = output, true
    return float(np.mean(moves)), float(np.mean(errors))


@pytest.mark.parametrize(("speed", "factor"), [(0.0, 5.0), (20.0, 3.0), (60.0, 2.0)])
def test_the_filter_cuts_the_jitter_of_a_noisy_track(speed, factor):
    raw, _ = jitter(OneEuroSettings(enabled=False), speed)
    steady, _ = jitter(OneEuroSettings(), speed)
    assert raw == pytest.approx(1.66, abs=0.1)  # 1.5 px noise: mean |n1 - n2| = 2 * 1.5 / sqrt(pi)
    assert raw / steady >= factor, (raw, steady)


def test_a_fast_face_is_followed_closely():
    _, error = jitter(OneEuroSettings(), speed=200.0, noise=0.0)
    assert error < 3.0  # pixels behind a face crossing a 720p frame in about 6 s
    _, lazy_error = jitter(OneEuroSettings(beta=0.0), speed=200.0, noise=0.0)
    assert lazy_error > 2 * error  # the speed term is what keeps up


def test_the_settings_scale_with_the_face():
    small = OneEuroFilter()
    large = OneEuroFilter()
    rng = np.random.default_rng(0)
    noise = [rng.normal(0.0, 1.0, (5, 2)) for _ in range(30)]
    outputs_small = [small(FACE + n, i / 30) for i, n in enumerate(noise)]
    outputs_large = [large(4 * FACE + 4 * n, i / 30) for i, n in enumerate(noise)]
    np.testing.assert_allclose(4 * np.array(outputs_small), np.array(outputs_large), atol=1e-9)
    assert face_size(4 * FACE) == pytest.approx(4 * face_size(FACE))


def test_disabled_passes_landmarks_through_and_predicts_from_the_last_move():
    track = OneEuroFilter(OneEuroSettings(enabled=False))
    first = track(FACE, 0.0)
    second = track(FACE + 3.0, 0.1)
    np.testing.assert_array_equal(first, FACE)
    np.testing.assert_array_equal(second, FACE + 3.0)
    np.testing.assert_allclose(track.predict(0.2), FACE + 6.0)


def test_time_that_does_not_advance_returns_the_last_value_and_bad_settings_are_refused():
    track = OneEuroFilter()
    track(FACE, 1.0)
    np.testing.assert_array_equal(track(FACE + 5.0, 1.0), FACE)
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroSettings(min_cutoff=0.0)
    with pytest.raises(ValueError, match="beta"):
        OneEuroSettings(beta=-1.0)
    with pytest.raises(ValueError, match="predict"):
        OneEuroFilter().predict(0.0)
