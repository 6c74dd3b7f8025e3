"""FID's statistics, distance and reference cache (``osdface.quality.fid``) on small features: no network."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from osdface.quality.fid import FIDScorer, Statistics, frechet_distance


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


class MeanColourFID(FIDScorer):
    """Each image's mean colour as its features: no network."""

    def __init__(self):
        super().__init__(weights=object())

    def file_features(self, files):
        return np.array([np.asarray(Image.open(f), float).reshape(-1, 3).mean(0) for f in files])


def _write_set(folder, value):
    folder.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), value + i, np.uint8)).save(folder / f"{i}.png")


def test_a_reference_folder_cache_follows_the_folder_and_its_files(tmp_path):
    fid, cache = MeanColourFID(), tmp_path / "cache"
    a, b = tmp_path / "setA" / "hq", tmp_path / "setB" / "hq"  # same name, same file names
    _write_set(a, 10)
    _write_set(b, 200)
    assert fid.reference(a, cache).mu == pytest.approx([11, 11, 11])
    assert fid.reference(b, cache).mu == pytest.approx([201, 201, 201])
    for i in range(3):  # replaced in place, same names
        Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(a / f"{i}.png")
        os.utime(a / f"{i}.png", ns=(i + 1, i + 1))
    assert fid.reference(a, cache).mu == pytest.approx([100, 100, 100])
    assert len(list(cache.glob("fid-reference-hq-*.npz"))) == 3
