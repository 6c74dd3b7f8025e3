"""The UNet LoRA in every layout the real tools write: loaded through ``from_pretrained``,
every pair applied, the fused UNet equal to an independent merge."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from osdface import OSDFacePipeline
from osdface.pipeline import lora
from osdface.testing.random_weights import LORA_LAYOUTS, build_base_components, lora_unet, write_lora_file
from osdface.weights import hub

RANK, ALPHA = 8, 4
# Layouts that store an alpha give alpha / rank; the others say nothing, so the scale is 1.
EXPECTED_SCALE = {"peft_metadata_alpha": ALPHA / RANK, "lora_linear_layer_alpha": ALPHA / RANK}


@pytest.fixture(scope="module")
def source_unet():
    """The tiny release's base UNet (same seed) with a random peft LoRA on attention,
    proj_in/proj_out, feed-forward and conv layers."""
    return lora_unet(build_base_components("tiny", seed=0)[1], rank=RANK, alpha=ALPHA, seed=3)


def weights_folder(tiny_hub, tmp_path: Path) -> Path:
    snapshot = (
        Path(tiny_hub.cache_dir)
        / f"models--{tiny_hub.weights_repo.replace('/', '--')}"
        / "snapshots"
        / tiny_hub.commits[tiny_hub.weights_repo]
    )
    return shutil.copytree(snapshot, tmp_path / "weights")


def independent_merge(source_unet, scale: float) -> dict[str, torch.Tensor]:
    """W + scale * B @ A for every LoRA module (conv kernels: per tap), from the peft model."""
    base = build_base_components("tiny", seed=0)[1].state_dict()
    for name, module in source_unet.named_modules():
        if "default" not in getattr(module, "lora_A", {}):
            continue
        a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
        if a.ndim == 4:
            delta = torch.einsum("or,rikl->oikl", b[:, :, 0, 0], a)
        else:
            delta = b @ a
        base[name + ".weight"] = base[name + ".weight"] + scale * delta
    return base


@pytest.mark.parametrize("layout", LORA_LAYOUTS)
def test_every_layout_applies_every_pair_and_fuses_exactly(tiny_hub, tmp_path, source_unet, layout):
    folder = weights_folder(tiny_hub, tmp_path)
    write_lora_file(source_unet, folder / hub.LORA_WEIGHTS, layout)
    keys = list(load_file(str(folder / hub.LORA_WEIGHTS)))
    pairs_in_file = sum(k.endswith(("lora_A.weight", "down.weight", "lora_down.weight")) for k in keys)
    assert pairs_in_file == 69
    if layout.startswith(("diffusers_mixed", "peft")):
        assert "lora_A" in keys[0]  # the order in which diffusers alone drops lora.down/up tensors

    pipe = OSDFacePipeline.from_pretrained(folder, base_model=tiny_hub.base_repo)
    report = pipe.load_report["lora"]
    assert (report.pairs_in_file, report.pairs_applied) == (69, 69)
    assert report.ranks == [RANK] and report.scales == [EXPECTED_SCALE.get(layout, 1.0)]
    assert {
        "to_q",
        "to_out.0",
        "proj_in",
        "proj_out",
        "ff.net.0.proj",
        "ff.net.2",
        "conv1",
        "conv_shortcut",
    } <= set(report.module_kinds)
    if layout.startswith("diffusers_mixed"):
        assert report.layouts == {"peft lora_A/lora_B": 37, "diffusers lora.down/up": 32}

    expected = independent_merge(source_unet, EXPECTED_SCALE.get(layout, 1.0))
    fused = pipe.unet.state_dict()
    assert set(fused) == set(expected)
    worst = max((fused[k] - expected[k]).abs().max().item() for k in expected)
    assert worst < 1e-6
    base = build_base_components("tiny", seed=0)[1].state_dict()
    changed = sum(not torch.equal(fused[k], base[k]) for k in base)
    assert changed == 69  # one weight per pair, conv kernels included


def write_state(tmp_path, source_unet, edit) -> Path:
    path = tmp_path / "lora.safetensors"
    write_lora_file(source_unet, path, "diffusers_mixed")
    state = load_file(str(path))
    edit(state)
    save_file(state, str(path))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.update({"unet.mid_block.lora_magic.weight": torch.zeros(1)}), "unknown LoRA key"),
        (lambda s: s.update({"text_encoder.x.lora_A.weight": torch.zeros(1)}), "unknown LoRA key"),
        (lambda s: s.pop("unet.mid_block.attentions.0.proj_in.lora_B.weight"), "incomplete pair"),
        (
            lambda s: s.update(
                {
                    "unet.mid_block.nowhere.lora_A.weight": torch.zeros(8, 64),
                    "unet.mid_block.nowhere.lora_B.weight": torch.zeros(64, 8),
                }
            ),
            "targets no Linear/Conv2d module of the UNet: 'mid_block.nowhere'",
        ),
        (
            lambda s: s.update({"unet.mid_block.attentions.0.proj_in.lora_A.weight": torch.zeros(8, 3)}),
            "do not fit 'mid_block.attentions.0.proj_in'",
        ),
    ],
)
def test_bad_files_fail_naming_the_keys(tmp_path, source_unet, edit, message):
    from osdface.testing.random_weights import random_pipeline

    path = write_state(tmp_path, source_unet, edit)
    with pytest.raises(lora.LoraError, match=None) as info:
        lora.load_lora(random_pipeline("tiny"), path)
    assert message in str(info.value)


def test_a_pair_left_out_by_the_loader_is_an_error(tmp_path, source_unet):
    """What the diffusers bug does (tensors dropped at load): verification names them."""
    from osdface.testing.random_weights import random_pipeline

    path = tmp_path / "lora.safetensors"
    write_lora_file(source_unet, path, "diffusers_mixed")
    pipe = random_pipeline("tiny")
    pairs, _ = lora.read_lora_file(path, pipe.unet)
    state = lora.normalised_state_dict(pairs)
    dropped = "mid_block.attentions.0.transformer_blocks.0.attn1.to_q"
    del state[f"unet.{dropped}.lora_A.weight"], state[f"unet.{dropped}.lora_B.weight"]
    pipe.load_lora_into_unet(
        state, network_alphas=None, unet=pipe.unet, adapter_name="osdface", _pipeline=pipe
    )
    with pytest.raises(lora.LoraError) as info:
        lora.verify_lora(pipe.unet, pairs, "osdface")
    assert "1 pair(s) not loaded" in str(info.value)
    assert f"unet.{dropped}.lora.down.weight" in str(info.value)
