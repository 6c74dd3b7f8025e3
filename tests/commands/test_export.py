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


def _release_folder(tiny_hub, folder):
    import shutil

    folder.mkdir()
    for name in (hub.VRE_CHECKPOINT, hub.PROJECTION_WEIGHTS, hub.LORA_WEIGHTS):
        shutil.copyfile(hub.fetch(tiny_hub.weights_repo, name), folder / name)
    return folder


def test_export_into_the_folder_it_reads_is_refused_and_the_lora_is_kept(tiny_hub, tmp_path, capsys):
    folder = _release_folder(tiny_hub, tmp_path / "release")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for out in (folder, tmp_path / "release" / ".." / "release"):
        status = cli_main(["export", str(out), "--weights", str(folder), "--base-model", tiny_hub.base_repo])
        assert status == 2
        message = capsys.readouterr().out
        assert "refusing to export into" in message and "choose another OUT_DIR" in message
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing written or overwritten


def test_an_interrupted_export_leaves_no_vre_without_its_lora(tiny_hub, tmp_path, monkeypatch):
    import safetensors.torch

    from osdface.commands.export import export_release

    real_save = safetensors.torch.save_file
    saved: list[str] = []

    def failing_save(tensors, filename, metadata=None):
        # The temporary file's name does not carry the target's (osdface.files.atomic_path), so
        # the LoRA is told by its place: export writes it first, and its VRE after it.
        saved.append(str(filename))
        if len(saved) == 1:
            with open(filename, "wb") as handle:
                handle.write(b"half a file")
            raise OSError("disk full")
        real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", failing_save)
    out = tmp_path / "export"
    with pytest.raises(OSError, match="disk full"):
        export_release(out, tiny_hub.weights_repo, base_model=tiny_hub.base_repo)
    assert sorted(p.name for p in out.iterdir()) == []  # no VRE alone, no partial LoRA


def test_the_exported_lora_loads_with_diffusers_own_loader(tiny_hub, tmp_path):
    """A source LoRA with an alpha (rank 8, alpha 4, in diffusers' metadata): the export folds the
    scale into lora_B, so diffusers' ``load_lora_weights`` (which refuses ``.alpha`` keys beside
    lora_A/lora_B) loads it and gives the trained UNet's output."""
    import shutil
    from pathlib import Path

    from osdface.commands.export import export_release
    from osdface.testing.random_weights import (
        build_base_components,
        lora_unet,
        random_pipeline,
        write_lora_file,
    )

    cache = Path(tiny_hub.cache_dir) / f"models--{tiny_hub.weights_repo.replace('/', '--')}"
    source = shutil.copytree(
        cache / "snapshots" / tiny_hub.commits[tiny_hub.weights_repo], tmp_path / "source"
    )
    trained = lora_unet(build_base_components("tiny", seed=0)[1], rank=8, alpha=4, seed=3)
    (source / hub.LORA_WEIGHTS).unlink()
    write_lora_file(trained, source / hub.LORA_WEIGHTS, "peft_metadata_alpha")
    out = tmp_path / "export"
    export_release(out, weights=str(source), base_model=tiny_hub.base_repo)

    pipe = random_pipeline("tiny")
    pipe.load_lora_weights(str(out), weight_name=hub.LORA_WEIGHTS, adapter_name="osdface")
    latents, condition = (
        torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(0)),
        torch.randn(1, 77, 1024, generator=torch.Generator().manual_seed(1)),
    )
    with torch.no_grad():
        expected = trained(latents, 399, encoder_hidden_states=condition).sample
        got = pipe.unet(latents, 399, encoder_hidden_states=condition).sample
    assert (got - expected).abs().max().item() < 1e-5
    assert OSDFacePipeline.from_pretrained(out, base_model=tiny_hub.base_repo).load_report["lora"].scales == [
        1.0
    ]


@pytest.mark.parametrize("failure", ["network", "not logged in"])
def test_a_failed_push_says_the_export_is_complete_and_how_to_upload_it(
    tiny_hub, tmp_path, capsys, monkeypatch, failure
):
    """No traceback: what failed, that the folder on disk is whole, and the command to retry."""
    import huggingface_hub
    from huggingface_hub import errors

    def refuse(self, *args, **kwargs):
        if failure == "network":  # httpx's (or requests') own error, as huggingface_hub lets it through
            raise errors.HTTPError("[Errno 111] Connection refused")
        raise errors.LocalTokenNotFoundError("Token is required (`token=True`), but no token found.")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", refuse)
    out = tmp_path / "export"
    argv = ["export", str(out), "--weights", tiny_hub.weights_repo, "--base-model", tiny_hub.base_repo]
    status = cli_main([*argv, "--push-to-hub", "me/osdface-safetensors", "--private"])
    err = capsys.readouterr().err
    assert status == 3
    assert f"export written to {out} (complete); upload to Hub repo 'me/osdface-safetensors' failed: " in err
    assert "hf auth login" in err
    assert f"`hf upload me/osdface-safetensors {out} --private --commit-message 'osdface export'`" in err
    assert sorted(p.name for p in out.iterdir()) == ["README.md", hub.LORA_WEIGHTS, hub.VRE_SAFETENSORS]
