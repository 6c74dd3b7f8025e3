"""The metrics by name: the paper's column orders, and every file a metric needs has a source
that matches what pyiqa and timm would fetch themselves."""

from __future__ import annotations

import timm
from pyiqa.archs.clip_model import _MODELS as CLIP_URLS

from osdface.quality.catalog import METRICS, REAL_WORLD_COLUMNS, in_paper_order, parse_metrics
from osdface.quality.weights import (
    CLIP_RN50,
    CLIP_RN50_URL,
    SOURCES,
    TIMM_VIT_B8,
    TIMM_VIT_B8_ARCH,
    TIMM_VIT_B8_REPO,
)


def test_table_2_columns_are_the_papers():
    assert REAL_WORLD_COLUMNS == ("clipiqa", "maniqa", "musiq", "niqe", "fid")
    assert parse_metrics("real") == REAL_WORLD_COLUMNS
    assert [METRICS[name].header for name in REAL_WORLD_COLUMNS] == [
        "CLIP-IQA↑",
        "MANIQA↑",
        "MUSIQ↑",
        "NIQE↓",
        "FID↓",
    ]


def test_one_order_keeps_both_tables_orders():
    assert in_paper_order(["fid", "niqe", "musiq", "maniqa", "clipiqa"]) == list(REAL_WORLD_COLUMNS)
    assert in_paper_order(["lmd", "clipiqa", "psnr", "musiq"]) == ["psnr", "clipiqa", "musiq", "lmd"]
    assert parse_metrics("all")[:2] == ("psnr", "ssim") and {"clipiqa", "maniqa"} <= set(parse_metrics("all"))


def test_clip_and_timm_files_are_the_ones_pyiqa_and_timm_would_fetch():
    assert METRICS["clipiqa"].files == (CLIP_RN50,)
    assert METRICS["maniqa"].files == ("ckpt_koniq10k.pt", TIMM_VIT_B8)
    assert CLIP_RN50_URL == CLIP_URLS["RN50"]
    assert SOURCES[CLIP_RN50].sha256 == CLIP_RN50_URL.split("/")[-2]
    # what timm.create_model("vit_base_patch8_224", pretrained=True) resolves to
    config = timm.models.get_pretrained_cfg(TIMM_VIT_B8_ARCH)
    assert config.hf_hub_id == TIMM_VIT_B8_REPO and not (config.hf_hub_filename or config.file or config.url)
    assert TIMM_VIT_B8 == f"{TIMM_VIT_B8_REPO.split('/')[1]}.safetensors"
    source = SOURCES[TIMM_VIT_B8]
    assert (source.repo, source.filename) == (TIMM_VIT_B8_REPO, "model.safetensors")
