"""FID's statistics and distance (``osdface.quality.fid``) on small random features: no network."""

from __future__ import annotations

import numpy as np
import pytest

from osdface.quality.fid import Statistics, frechet_distance


def test_statistics_of_fewer_than_two_images_are_refused_with_the_reason():
    rng = np.random.default_rng(0)
    for count in (0, 1):
        with pytest.raises(ValueError, match=f"FID needs at least 2 images, got {count}"):
            Statistics.of(rng.random((count, 8)))
    assert Statistics.of(rng.random((2, 8))).count == 2


def test_statistics_that_are_not_finite_are_refused_before_the_distance():
    finite = Statistics(np.zeros(4), np.eye(4), 5)
    broken = Statistics(np.zeros(4), np.full((4, 4), np.nan), 1)
    with pytest.raises(ValueError, match="second set's statistics are not finite"):
        frechet_distance(finite, broken)
    with pytest.raises(ValueError, match="first set's statistics are not finite"):
        frechet_distance(Statistics(np.array([np.inf, 0, 0, 0]), np.eye(4), 5), finite)
    assert frechet_distance(finite, finite) == pytest.approx(0.0, abs=1e-6)
