"""CLIP-IQA on OpenAI's ``RN50.pt`` layout with random weights (a traced TorchScript archive):
found in a local metrics folder, read without running it, handed to pyiqa by path, scored
through ``QualityMeter``; and what is reported when the file cannot be had."""

from __future__ import annotations

import math

import huggingface_hub
import numpy as np
import pytest
import torch

from osdface.quality.catalog import METRICS
from osdface.quality.meter import QualityMeter, load_pyiqa_metric
from osdface.quality.weights import CLIP_RN50, CLIP_RN50_URL, TIMM_VIT_B8, MetricWeights, MetricWeightsError


def faces(size=512):
    """Two different 512x512 faces' worth of pixels: noise and a smooth gradient."""
    noise = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    smooth = np.stack([xx // 2, yy // 2, (xx + yy) // 4], -1).astype(np.uint8)
    return noise, smooth


@pytest.mark.slow  # a 256 MB archive written and read; seconds per score on a CPU
def test_clipiqa_scores_are_finite_repeatable_and_tell_images_apart(clip_weights):
    meter = QualityMeter(["clipiqa"], weights=clip_weights)
    noise, smooth = faces()
    first = meter.score(noise)["clipiqa"]
    assert meter.unavailable == {}
    assert math.isfinite(first) and 0.0 <= first <= 1.0
    assert meter.score(noise)["clipiqa"] == first
    assert meter.score(smooth)["clipiqa"] != first


@pytest.mark.slow
def test_the_backbone_holds_the_archives_weights_and_the_rewrite_is_kept(clip_weights):
    archive = clip_weights.clip_archive()
    assert archive.parent == clip_weights.cache_dir / "clip" and archive.name.startswith("RN50-")
    written = archive.stat().st_mtime_ns
    metric = load_pyiqa_metric(METRICS["clipiqa"], clip_weights)
    assert clip_weights.clip_archive() == archive and archive.stat().st_mtime_ns == written
    # the archive written here by write_clip_rn50: safe to torch.jit.load as the reference
    expected = torch.jit.load(str(clip_weights.local_dir / CLIP_RN50)).state_dict()
    built = metric.net.clip_model[0].state_dict()
    assert set(built) == set(expected) - {"input_resolution", "context_length", "vocab_size"}
    assert all(torch.equal(built[name], expected[name].to(built[name].dtype)) for name in built)


def test_missing_clip_and_maniqa_files_are_reported_with_the_fix_and_the_rest_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    weights = MetricWeights(local_dir=None, cache_dir=tmp_path / "cache", offline=True)
    meter = QualityMeter(["psnr", "clipiqa", "maniqa"], weights=weights)
    noise, smooth = faces(64)
    assert set(meter.score(noise, smooth)) == {"psnr"}
    clip, maniqa = meter.unavailable["clipiqa"], meter.unavailable["maniqa"]
    assert "'RN50.pt' is not available" in clip and CLIP_RN50_URL in clip and "--metrics-dir" in clip
    assert "'ckpt_koniq10k.pt' is not available" in maniqa and "--metrics-dir" in maniqa
    with pytest.raises(MetricWeightsError, match="timm/vit_base_patch8_224.augreg2_in21k_ft_in1k") as missing:
        weights.path(TIMM_VIT_B8)
    message = str(missing.value)
    assert f"(saved as {TIMM_VIT_B8})" in message and "OSDFACE_METRICS_REPO" not in message
