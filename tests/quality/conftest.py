"""Fixtures of the quality tests: the metrics' files with random weights, placed where real use
finds them (pyiqa's files in the session's Hugging Face cache as chaofengc/IQA-PyTorch-Weights,
torchvision's backbones in a local metrics folder), and a meter reading them offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from osdface.quality.weights import IQA_WEIGHTS_REPO, MetricWeights


@pytest.fixture(scope="session")
def metric_files(tmp_path_factory) -> Path:
    from osdface.testing.random_metrics import write_metric_files
    from osdface.testing.random_weights import add_to_hub_cache

    folder = write_metric_files(tmp_path_factory.mktemp("metric-files"), seed=0, with_ffhq_stats=True)
    add_to_hub_cache(Path(os.environ["HF_HUB_CACHE"]), IQA_WEIGHTS_REPO, folder / "iqa")
    return folder


@pytest.fixture(scope="session")
def metric_weights(metric_files, tmp_path_factory) -> MetricWeights:
    return MetricWeights.from_env(
        local_dir=metric_files / "torchvision", cache_dir=tmp_path_factory.mktemp("metrics-cache"), offline=True
    )
