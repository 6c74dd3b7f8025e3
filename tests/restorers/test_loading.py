"""Other restorers through spandrel: release files (random weights, the projects' layouts)
found through the lookup code, detected as the right architecture, run batched."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.restorer_files import write_face_release
from PIL import Image

from osdface.restorers.loading import (
    RESTORERS,
    FaceModelPipeline,
    RestorerSet,
    SpandrelFaceModel,
    load_restorer,
    parse_restorers,
)
from osdface.restorers.weight_files import RestorerWeights
from osdface.weights.hub import WeightsUnavailableError


def _faces(count: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(count, 3, 512, 512, generator=generator)


def _check_restorer(key: str, folder, state, atol: float) -> SpandrelFaceModel:
    model = load_restorer(key, RestorerWeights(local_dir=folder, offline=True))
    assert model.descriptor.architecture.id == RESTORERS[key].architecture
    loaded = model.descriptor.model.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[name], value) for name, value in state.items())
    faces = _faces(2)
    batched = model.restore_tensor(faces)
    singles = torch.cat([model.restore_tensor(faces[i : i + 1]) for i in range(2)])
    assert batched.shape == (2, 3, 512, 512)
    assert 0.0 <= float(batched.min()) and float(batched.max()) <= 1.0
    assert float(batched.std()) > 1e-3  # not a constant image
    torch.testing.assert_close(batched, singles, atol=atol, rtol=0)
    return model


@pytest.mark.slow
def test_restoreformer_release_file_is_found_detected_and_batched(tmp_path):
    state = write_face_release("restoreformer", tmp_path)
    model = _check_restorer("restoreformer", tmp_path, state, atol=1e-4)
    images = model.restore([Image.new("RGB", (512, 512), (90, 60, 40))])
    assert len(images) == 1 and images[0].size == (512, 512) and images[0].mode == "RGB"


@pytest.mark.slow
def test_gfpgan_v14_release_file_is_found_detected_batched_and_repeatable(tmp_path):
    state = write_face_release("gfpgan", tmp_path)
    model = _check_restorer("gfpgan", tmp_path, state, atol=1e-4)
    face = _faces(1)
    assert torch.equal(model.restore_tensor(face), model.restore_tensor(face))  # fixed noise


@pytest.mark.slow
def test_codeformer_release_file_is_found_detected_batched_and_w_matters(tmp_path):
    state = write_face_release("codeformer", tmp_path)
    model = _check_restorer("codeformer", tmp_path, state, atol=1e-4)
    face = _faces(1)
    quality = model.restore_tensor(face)
    model.fidelity = 1.0
    assert (model.restore_tensor(face) - quality).abs().mean() > 1e-4
    assert not RESTORERS["codeformer"].commercial_use
    assert "non-commercial" in RESTORERS["codeformer"].choice_label


def test_lookup_order_cache_then_hub_repo_from_the_environment(tmp_path, monkeypatch):
    spec = RESTORERS["restoreformer"].weights
    settings = RestorerWeights(cache_dir=tmp_path / "cache", offline=True)
    repo = tmp_path / "repo"  # osdface.weights.hub.fetch takes a folder laid out like the Hub repo
    repo.mkdir()
    (repo / spec.filename).write_bytes(b"x")
    monkeypatch.setenv("OSDFACE_RESTOREFORMER_REPO", str(repo))
    assert settings.path(spec) == repo / spec.filename
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / spec.filename).write_bytes(b"y")
    assert settings.path(spec) == tmp_path / "cache" / spec.filename


def test_release_url_download_goes_to_our_cache_atomically_once(tmp_path, monkeypatch):
    spec = RESTORERS["gfpgan"].weights
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append(url)
        assert Path(dst).parent == tmp_path / "cache" and Path(dst).name.endswith(".part")
        Path(dst).write_bytes(b"weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    monkeypatch.delenv("OSDFACE_GFPGAN_REPO", raising=False)
    settings = RestorerWeights(cache_dir=tmp_path / "cache", offline=False)
    assert settings.path(spec) == tmp_path / "cache" / spec.filename and calls == [spec.url]
    assert settings.path(spec).read_bytes() == b"weights" and len(calls) == 1  # cached now
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [spec.filename]


def test_failed_release_download_leaves_nothing_and_says_why(tmp_path, monkeypatch):
    def failing_download(url, dst, hash_prefix=None, progress=True):
        Path(dst).write_bytes(b"half a file")
        raise OSError("connection reset")

    monkeypatch.setattr(torch.hub, "download_url_to_file", failing_download)
    monkeypatch.delenv("OSDFACE_GFPGAN_REPO", raising=False)
    settings = RestorerWeights(cache_dir=tmp_path / "cache", offline=False)
    with pytest.raises(WeightsUnavailableError, match="OSError: connection reset"):
        settings.path(RESTORERS["gfpgan"].weights)
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_weights_name_every_source_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("OSDFACE_GFPGAN_REPO", "osdface-test/not-cached")
    settings = RestorerWeights(local_dir=tmp_path, cache_dir=tmp_path / "cache", offline=True)
    with pytest.raises(WeightsUnavailableError) as info:
        load_restorer("gfpgan", settings)
    message = str(info.value)
    for part in (
        "GFPGANv1.4.pth",
        "osdface-test/not-cached",
        "releases/download/v1.3.0",
        "OSDFACE_RESTORERS_DIR",
    ):
        assert part in message


@pytest.mark.slow
def test_a_restorer_without_weights_gives_its_reason_and_the_others_load(tmp_path):
    write_face_release("restoreformer", tmp_path)
    restorers = RestorerSet(RestorerWeights(local_dir=tmp_path, cache_dir=tmp_path / "cache", offline=True))
    models, errors = restorers.get(["gfpgan", "restoreformer"])
    assert list(models) == ["restoreformer"] and list(errors) == ["gfpgan"]
    assert "GFPGANv1.4.pth" in errors["gfpgan"]
    again, _ = restorers.get(["restoreformer"])
    assert again["restoreformer"] is models["restoreformer"]  # loaded once


def _damage(key: str, folder: Path, state: dict[str, torch.Tensor], how: str) -> str:
    """Rewrites ``key``'s release file with one conv weight dropped or of a wrong shape."""
    name = sorted(k for k in state if "conv" in k and k.endswith("weight") and state[k].ndim == 4)[0]
    if how == "drop":
        state.pop(name)
    else:
        state[name] = torch.zeros(state[name].shape[0] + 1, *state[name].shape[1:])
    torch.save({"params_ema": state}, folder / RESTORERS[key].weights.filename)
    return name


@pytest.mark.slow
@pytest.mark.parametrize("how", ["drop", "shape"])
def test_a_damaged_release_file_is_reported_with_the_fix_and_the_others_load(tmp_path, how):
    damaged = write_face_release("gfpgan", tmp_path)
    _damage("gfpgan", tmp_path, damaged, how)
    write_face_release("restoreformer", tmp_path)
    weights = RestorerWeights(local_dir=tmp_path, cache_dir=tmp_path / "cache", offline=True)
    models, errors = RestorerSet(weights).get(["gfpgan", "restoreformer"])
    assert list(models) == ["restoreformer"] and list(errors) == ["gfpgan"]
    reason = errors["gfpgan"]
    assert str(tmp_path / "GFPGANv1.4.pth") in reason and "damaged" in reason
    assert "delete it so it is fetched again" in reason and "\n" not in reason
    with pytest.raises(WeightsUnavailableError, match="is damaged or is not the release file"):
        load_restorer("gfpgan", weights)


@pytest.mark.slow
def test_a_file_of_another_architecture_is_refused(tmp_path):
    write_face_release("restoreformer", tmp_path)
    (tmp_path / "RestoreFormer.pth").rename(tmp_path / "GFPGANv1.4.pth")
    with pytest.raises(WeightsUnavailableError, match="holds a RestoreFormer model, expected GFPGAN"):
        load_restorer("gfpgan", RestorerWeights(local_dir=tmp_path, offline=True))


class _Exploit:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_code_is_not_run(tmp_path):
    with open(tmp_path / "GFPGANv1.4.pth", "wb") as file:
        pickle.dump({"params_ema": _Exploit()}, file)
    with pytest.raises(WeightsUnavailableError, match="cannot read"):
        load_restorer("gfpgan", RestorerWeights(local_dir=tmp_path, offline=True))


def test_parse_methods():
    assert parse_restorers("GFPGAN, codeformer,gfpgan") == ("gfpgan", "codeformer")
    with pytest.raises(ValueError, match="unknown method"):
        parse_restorers("gfpgan,foo")


class _Halve:
    key, label = "halve", "Halve"

    def restore(self, faces, *, seed=None):
        return [Image.fromarray(np.asarray(face) // 2) for face in faces]


def test_face_model_pipeline_adapts_a_model_for_the_face_restorer():
    pipeline = FaceModelPipeline(_Halve())
    face = Image.new("RGB", (512, 512), (200, 100, 50))
    output = pipeline([face], color_fix=None, generator=None)
    assert np.asarray(output.images[0])[0, 0].tolist() == [100, 50, 25]
    fixed = pipeline([face], color_fix="adain").images[0]
    assert np.abs(np.asarray(fixed).astype(int) - np.asarray(face)).max() <= 1
    with pytest.raises(ValueError, match="takes no text prompt"):
        pipeline([face], prompt="a face")
