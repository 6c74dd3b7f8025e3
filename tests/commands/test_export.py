"""``osdface export``: the release as safetensors, loaded back offline with identical outputs."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from osdface import OSDFacePipeline
from osdface.cli import main as cli_main
from osdface.weights import hub


@pytest.mark.slow
def test_export_then_load_gives_identical_outputs(tiny_hub, tiny_pipeline, tmp_path, capsys):
    out = tmp_path / "export"
    status = cli_main(
        ["export", str(out), "--weights", tiny_hub.weights_repo, "--base-model", tiny_hub.base_repo]
    )
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", hub.LORA_WEIGHTS, hub.VRE_SAFETENSORS]
    card = (out / "README.md").read_text()
    assert "arxiv.org/abs/2411.17163" in card and "github.com/jkwang28/OSDFace" in card and "license:" in card
    for name in (hub.VRE_SAFETENSORS, hub.LORA_WEIGHTS):
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() in card
    source = hub.fetch(tiny_hub.weights_repo, hub.VRE_CHECKPOINT)
    assert hashlib.sha256(source.read_bytes()).hexdigest() in card

    exported = OSDFacePipeline.from_pretrained(out, base_model=tiny_hub.base_repo)
    assert exported.load_report["vre"].source_format == "safetensors"
    assert exported.load_report["files"]["projection"] is None  # no pickle read
    assert exported.load_report["lora"].layouts == {"peft lora_A/lora_B": 69}
    image = (np.random.default_rng(0).random((512, 512, 3)) * 255).astype(np.uint8)
    a = exported(image, generator=torch.Generator().manual_seed(0), output_type="pt").images
    b = tiny_pipeline(image, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert torch.equal(a, b)


def test_a_folder_with_both_prefers_vre_safetensors(tiny_hub, tmp_path):
    """vre.safetensors next to the two pickles: the pickles are not read."""
    import shutil

    from osdface.commands.export import export_release

    out = tmp_path / "both"
    export_release(out, tiny_hub.weights_repo, base_model=tiny_hub.base_repo)
    for name in (hub.VRE_CHECKPOINT, hub.PROJECTION_WEIGHTS):
        shutil.copyfile(hub.fetch(tiny_hub.weights_repo, name), out / name)
    (out / hub.VRE_CHECKPOINT).write_bytes(b"corrupt: must not be read")
    pipe = OSDFacePipeline.from_pretrained(out, base_model=tiny_hub.base_repo)
    assert pipe.load_report["files"]["vre"].name == hub.VRE_SAFETENSORS
