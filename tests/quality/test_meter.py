"""The per-image metrics, FID and the weight lookup, on random weights in their published layouts,
found offline through the same lookup as real use."""

from __future__ import annotations

import math
import os
import pickle

import numpy as np
import pytest
import torch

from osdface.evaluation.identity import ArcFaceEmbedder
from osdface.faces.detection import DetectedFace
from osdface.quality.fid import FIDScorer, Statistics, frechet_distance
from osdface.quality.meter import QualityMeter, degrees_between, landmark_distance
from osdface.quality.weights import (
    ENV_FORCE_WEIGHTS_ONLY,
    MetricWeights,
    MetricWeightsError,
    pyiqa_reading_from,
)

pytestmark = pytest.mark.slow  # writes about 260 MB of random weights once per session


def _faces(seed=0, size=128):
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    noisy = np.clip(clean.astype(int) + rng.integers(-40, 41, clean.shape), 0, 255).astype(np.uint8)
    return clean, noisy


def test_distances_of_an_image_to_itself_are_zero(metric_weights):
    meter = QualityMeter(
        ["lpips", "dists", "deg"], weights=metric_weights, embedder=ArcFaceEmbedder.random(0)
    )
    clean, noisy = _faces()
    same = meter.score(clean, clean)
    assert same["lpips"] == pytest.approx(0.0, abs=1e-7)
    assert same["dists"] == pytest.approx(0.0, abs=1e-6)
    assert same["deg"] == pytest.approx(0.0, abs=1e-3)
    different = meter.score(noisy, clean)
    assert different["lpips"] > 1e-4 and different["dists"] > 1e-5 and different["deg"] > 0.01
    assert meter.unavailable == {}


def test_no_reference_metrics_score_one_image(metric_weights):
    meter = QualityMeter(["musiq", "niqe", "psnr"], weights=metric_weights)
    clean, noisy = _faces(size=160)
    scores = meter.score(noisy)  # no reference: PSNR is left out
    assert set(scores) == {"musiq", "niqe"}
    assert all(math.isfinite(v) for v in scores.values())
    assert meter.score(noisy)["musiq"] == scores["musiq"]  # deterministic
    assert meter.score(clean)["niqe"] != scores["niqe"]


def test_niqe_reads_the_published_mat_layout(metric_files):
    import scipy.io

    params = scipy.io.loadmat(metric_files / "iqa" / "niqe_modelparameters.mat")
    assert params["mu_prisparam"].shape == (1, 36) and params["cov_prisparam"].shape == (36, 36)


def test_landmark_distance_of_a_shifted_face_is_the_shift():
    """LMD's arithmetic with a stand-in detector that finds the landmarks where it drew them."""
    rng = np.random.default_rng(0)
    points = rng.uniform(100, 400, (5, 2))

    def draw(offset):
        image = np.zeros((512, 512, 3), np.uint8)
        for x, y in np.round(points + offset).astype(int):
            image[y, x] = 255
        return image

    def detector(image):
        ys, xs = np.nonzero(image[..., 0])
        if len(xs) == 0:
            return []
        order = np.argsort([np.argmin(np.hypot(*(points - (x, y)).T)) for x, y in zip(xs, ys)])
        return [
            DetectedFace(
                box=(0, 0, 512, 512), landmarks=np.stack([xs, ys], 1)[order].astype(float), score=1.0
            )
        ]

    meter = QualityMeter(["lmd"], detector=detector)
    assert meter.score(draw((3, 4)), draw((0, 0)))["lmd"] == pytest.approx(5.0)
    assert landmark_distance(points, points) == 0
    empty = np.zeros((512, 512, 3), np.uint8)
    assert math.isnan(meter.score(empty, draw((0, 0)))["lmd"])


def test_degrees_between():
    assert degrees_between(np.array([1.0, 0]), np.array([0, 2.0])) == pytest.approx(90.0)
    assert degrees_between(np.array([1.0, 1e-9]), np.array([1.0, 0])) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_a_set_against_itself_is_zero(metric_weights, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for folder, offset in (("a", 0), ("b", 60)):
        (tmp_path / folder).mkdir()
        for i in range(6):
            face = np.clip(rng.integers(0, 196, (64, 64, 3)) + offset, 0, 255).astype(np.uint8)
            Image.fromarray(face).save(tmp_path / folder / f"{i}.png")
    scorer = FIDScorer(metric_weights)
    a, b = scorer.statistics(tmp_path / "a"), scorer.statistics(tmp_path / "b")
    assert a.mu.shape == (2048,) and a.count == 6
    # random Inception weights give tiny features: compare the two distances with each other
    apart = frechet_distance(a, b)
    assert apart > 0 and abs(frechet_distance(a, a)) < 1e-3 * apart
    # a folder reference is cached and read back; a .npz reference and FFHQ's statistics load without pickle
    cached = scorer.reference(tmp_path / "a", cache_dir=tmp_path / "cache")
    assert abs(frechet_distance(cached, a)) < 1e-3 * apart
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    a.write(tmp_path / "a.npz")
    assert Statistics.read(tmp_path / "a.npz").count == 6
    assert scorer.reference("ffhq").mu.shape == (2048,)


def test_a_missing_file_is_reported_and_the_other_metrics_run(metric_files, tmp_path):
    weights = MetricWeights(local_dir=None, cache_dir=tmp_path, offline=True)  # torchvision files unreachable
    meter = QualityMeter(["psnr", "lpips", "niqe"], weights=weights)
    clean, noisy = _faces()
    scores = meter.score(noisy, clean)
    assert set(scores) == {"psnr", "niqe"}
    assert "alexnet-owt-7be5be79.pth" in meter.unavailable["lpips"]
    assert "--metrics-dir" in meter.unavailable["lpips"]  # the fix


def test_a_file_that_runs_code_when_unpickled_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.getpid, ())

    bad = tmp_path / "LPIPS_v0.1_alex-df73285e.pth"
    bad.write_bytes(pickle.dumps({"lin0.model.1.weight": Payload()}))
    weights = MetricWeights(local_dir=tmp_path, cache_dir=tmp_path / "cache", offline=True)
    with pytest.raises(MetricWeightsError, match="cannot open .* safely"):
        weights.path(bad.name)


def test_building_restores_torch_hub_and_the_environment(metric_weights):
    before_dir, before_env = torch.hub.get_dir(), os.environ.get(ENV_FORCE_WEIGHTS_ONLY)
    with pyiqa_reading_from(metric_weights.hub_dir):
        assert torch.hub.get_dir() == str(metric_weights.hub_dir)
        assert os.environ[ENV_FORCE_WEIGHTS_ONLY] == "1"
    assert (torch.hub.get_dir(), os.environ.get(ENV_FORCE_WEIGHTS_ONLY)) == (before_dir, before_env)
