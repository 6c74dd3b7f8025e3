"""MANIQA on pyiqa's ``ckpt_koniq10k.pt`` and timm's ViT-B/8 file in their published layouts with
random weights, both found in the Hub cache through the same lookup as real use: timm reads our
file and fetches nothing, the checkpoint ends up in the network, scores through ``QualityMeter``.

A MANIQA score runs ViT-B/8 on 20 crops of 224x224: about a minute and a half per face on a
2-core CPU. The meter scores one face with those defaults; the checks that need several
scores use 2 crops (``test_sample``: pyiqa's averaging loop, not the loading under test)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from osdface.quality.catalog import METRICS
from osdface.quality.meter import QualityMeter, as_batch, load_pyiqa_metric
from osdface.quality.weights import IQA_WEIGHTS_REPO, TIMM_VIT_B8_REPO, MetricWeights

pytestmark = pytest.mark.slow  # a 241 MB checkpoint; minutes of CPU


@pytest.fixture(scope="module")
def maniqa_weights(maniqa_files, tmp_path_factory):
    return MetricWeights.from_env(
        local_dir=None,
        hub_repo=IQA_WEIGHTS_REPO,  # the tests' environment names no repo of metric weights
        cache_dir=tmp_path_factory.mktemp("maniqa-cache"),
        offline=True,
    )


def faces(size=512):
    noise = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    smooth = np.stack([xx // 2, yy // 2, (xx + yy) // 4], -1).astype(np.uint8)
    return noise, smooth


def test_maniqa_scores_a_face_through_the_meter(maniqa_weights):
    meter = QualityMeter(["maniqa", "psnr"], weights=maniqa_weights)
    noise, _ = faces()
    scores = meter.score(noise)  # no reference: PSNR is left out
    assert meter.unavailable == {} and set(scores) == {"maniqa"}
    assert math.isfinite(scores["maniqa"]) and scores["maniqa"] >= 0.0  # a ReLU ends its score head


def test_timm_reads_our_file_and_the_checkpoint_fills_the_network(maniqa_weights, maniqa_files, caplog):
    with caplog.at_level(logging.INFO, logger="timm"):
        metric = load_pyiqa_metric(METRICS["maniqa"], maniqa_weights)
    loaded_from = [
        r.getMessage() for r in caplog.records if "Loading pretrained weights from" in r.getMessage()
    ]
    assert len(loaded_from) == 1 and "from file (" in loaded_from[0]
    assert "models--" + TIMM_VIT_B8_REPO.replace("/", "--") in loaded_from[0]  # the Hub cache, via our lookup
    checkpoint = torch.load(maniqa_files / "iqa" / "ckpt_koniq10k.pt", weights_only=True)
    network = metric.net.state_dict()
    assert set(network) == set(checkpoint)
    assert all(torch.equal(network[k], checkpoint[k].to(network[k].dtype)) for k in checkpoint)

    metric.net.test_sample = 2
    noise, smooth = faces()
    with torch.inference_mode():
        first = float(metric(as_batch(noise, torch.device("cpu"))))
        again = float(metric(as_batch(noise, torch.device("cpu"))))
        other = float(metric(as_batch(smooth, torch.device("cpu"))))
    assert math.isfinite(first) and first == again and other != first
