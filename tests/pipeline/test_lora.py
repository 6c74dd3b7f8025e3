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


def test_a_lora_file_without_tensors_is_refused_naming_the_file(tiny_hub, tmp_path):
    """An empty save would otherwise give plain SD 2.1 at t=399, silently."""
    folder = weights_folder(tiny_hub, tmp_path)
    save_file({}, str(folder / hub.LORA_WEIGHTS))
    with pytest.raises(lora.LoraError) as info:
        OSDFacePipeline.from_pretrained(folder, base_model=tiny_hub.base_repo)
    assert info.value.source == str(folder / hub.LORA_WEIGHTS)
    assert "holds no UNet LoRA tensors" in info.value.reason
    assert hub.LORA_WEIGHTS in info.value.fix and hub.DEFAULT_WEIGHTS_REPO in info.value.fix


def peft_model(rank: int, alpha: int, **config):
    """The tiny base UNet wrapped by peft's own ``get_peft_model``, B drawn at random (seed 0)."""
    import copy

    from peft import LoraConfig, get_peft_model

    unet = copy.deepcopy(build_base_components("tiny", seed=0)[1])
    wrapped = get_peft_model(
        unet,
        LoraConfig(r=rank, lora_alpha=alpha, target_modules=["to_q", "to_k", "to_v", "to_out.0"], **config),
    )
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in wrapped.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.02)
    return wrapped


def peft_merged(wrapped) -> dict[str, torch.Tensor]:
    """peft's own merge of its model: the reference for what loading must give."""
    import copy

    return copy.deepcopy(wrapped).merge_and_unload().state_dict()


def assert_fused_equals(pipe, expected: dict[str, torch.Tensor]) -> None:
    fused = pipe.unet.state_dict()
    assert set(fused) == set(expected)
    assert max((fused[k] - expected[k]).abs().max().item() for k in expected) < 1e-6


@pytest.mark.parametrize("writer", ["diffusers save_lora_weights", "peft save_pretrained"])
def test_rslora_is_scaled_by_alpha_over_sqrt_rank_as_peft_does(tiny_hub, tmp_path, writer):
    """``use_rslora=True``: peft scales by alpha / sqrt(r) (here 8 / sqrt(4) = 4), not alpha / r.
    The file comes from diffusers' ``save_lora_weights`` with the config as metadata, or from
    peft's own ``save_pretrained`` (config in adapter_config.json beside it)."""
    from diffusers import StableDiffusionPipeline
    from peft.utils import get_peft_model_state_dict

    wrapped = peft_model(rank=4, alpha=8, use_rslora=True)
    folder = weights_folder(tiny_hub, tmp_path)
    (folder / hub.LORA_WEIGHTS).unlink()
    if writer == "peft save_pretrained":
        wrapped.save_pretrained(str(tmp_path / "peft"))
        shutil.copyfile(tmp_path / "peft" / "adapter_model.safetensors", folder / hub.LORA_WEIGHTS)
        shutil.copyfile(tmp_path / "peft" / lora.PEFT_ADAPTER_CONFIG, folder / lora.PEFT_ADAPTER_CONFIG)
    else:
        StableDiffusionPipeline.save_lora_weights(
            folder,
            unet_lora_layers=get_peft_model_state_dict(wrapped),
            weight_name=hub.LORA_WEIGHTS,
            unet_lora_adapter_metadata=wrapped.peft_config["default"].to_dict(),
        )
    pipe = OSDFacePipeline.from_pretrained(folder, base_model=tiny_hub.base_repo)
    report = pipe.load_report["lora"]
    assert report.scales == [4.0] and "use_rslora" in report.alpha_source
    assert_fused_equals(pipe, peft_merged(wrapped))


def test_peft_save_pretrained_layout_is_accepted_with_its_alpha(tiny_hub, tmp_path, caplog):
    """Keys ``base_model.model.<module>.lora_A.weight``, as peft's ``save_pretrained`` writes them;
    alpha 4 at rank 8 from its adapter_config.json. Without that file: scale 1, and a warning."""
    wrapped = peft_model(rank=8, alpha=4)
    wrapped.save_pretrained(str(tmp_path / "peft"))
    folder = weights_folder(tiny_hub, tmp_path)
    shutil.copyfile(tmp_path / "peft" / "adapter_model.safetensors", folder / hub.LORA_WEIGHTS)
    assert all(k.startswith(lora.PEFT_PREFIX) for k in load_file(str(folder / hub.LORA_WEIGHTS)))

    shutil.copyfile(tmp_path / "peft" / lora.PEFT_ADAPTER_CONFIG, folder / lora.PEFT_ADAPTER_CONFIG)
    pipe = OSDFacePipeline.from_pretrained(folder, base_model=tiny_hub.base_repo)
    report = pipe.load_report["lora"]
    assert (report.pairs_in_file, report.pairs_applied, report.scales) == (32, 32, [0.5])
    assert report.alpha_source == lora.PEFT_ADAPTER_CONFIG
    assert_fused_equals(pipe, peft_merged(wrapped))

    (folder / lora.PEFT_ADAPTER_CONFIG).unlink()
    with caplog.at_level("WARNING", logger="osdface.pipeline.lora"):
        pipe = OSDFacePipeline.from_pretrained(folder, base_model=tiny_hub.base_repo)
    assert pipe.load_report["lora"].scales == [1.0]
    assert "adapter_config.json not found" in pipe.load_report["lora"].alpha_source
    assert "adapter_config.json is not beside it" in caplog.text


def sd1_unet():
    """The tiny UNet with SD 1.x's cross-attention width (768) and the same block names."""
    from diffusers import UNet2DConditionModel

    from osdface.testing.random_weights import TINY_UNET_CONFIG

    torch.manual_seed(0)
    return UNet2DConditionModel(**{**TINY_UNET_CONFIG, "cross_attention_dim": 768})


def test_a_lora_for_another_base_model_names_the_file_the_model_and_the_fix(tmp_path):
    from osdface.testing.random_weights import random_pipeline

    path = tmp_path / hub.LORA_WEIGHTS
    write_lora_file(lora_unet(sd1_unet(), rank=4), path, "diffusers_mixed")
    with pytest.raises(lora.LoraError) as info:
        lora.load_lora(random_pipeline("tiny"), path)
    error = info.value
    assert error.source == str(path)
    assert "this LoRA is for another base model: cross-attention 768 = SD 1.x" in error.reason
    assert "OSDFACE_WEIGHTS" in error.fix and hub.DEFAULT_WEIGHTS_REPO in error.fix


def test_the_osdface_lora_on_another_base_model_says_to_change_the_base(tmp_path, source_unet):
    path = tmp_path / hub.LORA_WEIGHTS
    write_lora_file(source_unet, path, "diffusers_mixed")
    with pytest.raises(lora.LoraError) as info:
        lora.read_lora_file(path, sd1_unet())
    assert "the base model's UNet has cross-attention 768, SD 1.x: it is not SD 2.1 base" in info.value.reason
    assert "OSDFACE_BASE_MODEL" in info.value.fix and hub.DEFAULT_BASE_MODEL in info.value.fix
