"""Where facexlib's weights come from (local folder, our cache, Hub repo, facexlib's URL) and
how they load (no pickled code), offline: the network is replaced by a local stand-in."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest
import torch

from osdface.weights.facexlib_files import (
    FACEXLIB_URLS,
    FacexlibWeights,
    FacexlibWeightsError,
    load_facexlib_state_dict,
)
from osdface.weights.hub import WeightsUnavailableError

NAME = "detection_mobilenet0.25_Final.pth"


def save_state(path: Path, prefix: str = "", seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = {"conv.weight": torch.randn(4, 3, 3, 3), "conv.bias": torch.randn(4)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({prefix + k: v for k, v in state.items()}, path)
    return state


def test_urls_are_the_ones_facexlib_uses():
    import facexlib.detection
    import facexlib.parsing
    import facexlib.recognition

    source = "".join(
        inspect.getsource(module) for module in (facexlib.detection, facexlib.parsing, facexlib.recognition)
    )
    for name, url in FACEXLIB_URLS.items():
        assert f"'{url}'" in source, name
        assert url.endswith("/" + name)


def test_from_env_and_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("OSDFACE_FACEXLIB_DIR", str(tmp_path / "local"))
    monkeypatch.setenv("OSDFACE_FACEXLIB_REPO", "someone/facexlib")
    monkeypatch.setenv("OSDFACE_FACEXLIB_REVISION", "v1")
    monkeypatch.setenv("OSDFACE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OSDFACE_OFFLINE", "1")
    settings = FacexlibWeights.from_env()
    assert settings == FacexlibWeights(
        local_dir=tmp_path / "local",
        hub_repo="someone/facexlib",
        hub_revision="v1",
        cache_dir=tmp_path / "cache" / "facexlib",
        offline=True,
    )
    other = FacexlibWeights.from_env(local_dir=str(tmp_path / "cli"), hub_repo=None, offline=False)
    assert other.local_dir == tmp_path / "cli" and other.hub_repo == "someone/facexlib" and not other.offline
    with pytest.raises(TypeError, match="bogus"):
        FacexlibWeights.from_env(bogus=1)
    monkeypatch.delenv("OSDFACE_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert not FacexlibWeights.from_env().offline
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert FacexlibWeights.from_env().offline


def test_local_folder_wins_then_cache(tmp_path):
    local, cache = tmp_path / "local", tmp_path / "cache"
    save_state(cache / NAME)
    settings = FacexlibWeights(local_dir=local, cache_dir=cache, offline=True)
    assert settings.path(NAME) == cache / NAME  # not in the local folder: the cache
    save_state(local / NAME)
    assert settings.path(NAME) == local / NAME
    with pytest.raises(ValueError, match="unknown facexlib weight file 'x.pth'"):
        settings.path("x.pth")


def test_missing_offline_says_which_file_where_and_how_to_fix(tmp_path):
    settings = FacexlibWeights(local_dir=tmp_path / "mine", cache_dir=tmp_path / "cache", offline=True)
    with pytest.raises(FacexlibWeightsError) as info:
        settings.path("parsing_parsenet.pth")
    message = str(info.value)
    assert isinstance(info.value, WeightsUnavailableError) and isinstance(info.value, RuntimeError)
    for part in (
        "'parsing_parsenet.pth'",
        str(tmp_path / "mine"),
        str(tmp_path / "cache"),
        FACEXLIB_URLS["parsing_parsenet.pth"],
        "offline",
        "OSDFACE_FACEXLIB_DIR",
        "--facexlib-dir",
    ):
        assert part in message, part


def test_url_download_goes_to_our_cache_atomically_once(monkeypatch, tmp_path):
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append(url)
        assert Path(dst).parent == tmp_path / "cache" and Path(dst).name.endswith(".part")
        save_state(Path(dst), prefix="module.")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    settings = FacexlibWeights(cache_dir=tmp_path / "cache", offline=False)
    path = settings.path(NAME)
    assert path == tmp_path / "cache" / NAME and calls == [FACEXLIB_URLS[NAME]]
    assert settings.path(NAME) == path and len(calls) == 1  # cached now
    assert sorted(p.name for p in path.parent.iterdir()) == [NAME]
    assert set(load_facexlib_state_dict(path)) == {"conv.weight", "conv.bias"}


def test_failed_download_leaves_nothing_and_reports_the_reason(monkeypatch, tmp_path):
    def failing_download(url, dst, hash_prefix=None, progress=True):
        Path(dst).write_bytes(b"half a file")
        raise OSError("connection reset")

    monkeypatch.setattr(torch.hub, "download_url_to_file", failing_download)
    settings = FacexlibWeights(cache_dir=tmp_path / "cache", offline=False)
    with pytest.raises(FacexlibWeightsError, match="connection reset") as info:
        settings.path(NAME)
    assert FACEXLIB_URLS[NAME] in str(info.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_hub_repo_is_used_when_configured(tmp_path):
    from osdface.testing.hub_cache import add_to_hub_cache

    source = tmp_path / "repo"
    expected = save_state(source / NAME, seed=3)
    add_to_hub_cache(Path(os.environ["HF_HUB_CACHE"]), "osdface-test/facexlib-weights", source)
    settings = FacexlibWeights(
        hub_repo="osdface-test/facexlib-weights", cache_dir=tmp_path / "cache", offline=True
    )
    path = settings.path(NAME)
    assert "models--osdface-test--facexlib-weights" in str(path)
    torch.testing.assert_close(load_facexlib_state_dict(path), expected)
    # A repo without the file: the Hub's reason is in the message.
    missing = FacexlibWeights(hub_repo="osdface-test/absent", cache_dir=tmp_path / "cache", offline=True)
    with pytest.raises(FacexlibWeightsError, match="Hub repo osdface-test/absent"):
        missing.path(NAME)


def test_state_dict_loading_strips_module_prefix(tmp_path):
    expected = save_state(tmp_path / "a.pth", prefix="module.")
    torch.testing.assert_close(load_facexlib_state_dict(tmp_path / "a.pth"), expected)


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["OSDFACE_CACHE"]) / "pwned",))


def test_pickled_code_is_never_run(tmp_path):
    marker = Path(os.environ["OSDFACE_CACHE"]) / "pwned"
    marker.parent.mkdir(parents=True, exist_ok=True)
    evil = tmp_path / NAME
    torch.save({"conv.weight": _Payload()}, evil)  # torch's own format, as a real attack would use
    with pytest.raises(FacexlibWeightsError, match=str(evil)):
        load_facexlib_state_dict(evil)
    assert not marker.exists()


def test_truncated_or_wrong_files_are_reported(tmp_path):
    save_state(tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(FacexlibWeightsError, match="cut.pth.*delete it"):
        load_facexlib_state_dict(tmp_path / "cut.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(FacexlibWeightsError, match="state dict"):
        load_facexlib_state_dict(tmp_path / "list.pth")


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")
@pytest.mark.slow
def test_detector_and_parser_load_through_our_loader(tmp_path):
    """Random facexlib models saved as facexlib does (DataParallel prefixes included) load
    into fresh models through FacexlibWeights, from a local folder, offline."""
    from facexlib.detection.retinaface import RetinaFace
    from facexlib.parsing.parsenet import ParseNet

    from osdface.faces import RetinaFaceDetector, load_parsenet

    torch.manual_seed(1)
    detector = RetinaFace(network_name="mobile0.25", half=False, device=torch.device("cpu"))
    torch.save({"module." + k: v for k, v in detector.state_dict().items()}, tmp_path / NAME)
    parser = ParseNet(in_size=512, out_size=512, parsing_ch=19)
    torch.save(parser.state_dict(), tmp_path / "parsing_parsenet.pth")
    settings = FacexlibWeights(local_dir=tmp_path, cache_dir=tmp_path / "cache", offline=True)

    loaded = RetinaFaceDetector.load("mobile0.25", weights=settings, threshold=0.9)
    torch.testing.assert_close(loaded.model.state_dict(), detector.state_dict())
    assert loaded.threshold == 0.9
    torch.testing.assert_close(load_parsenet(settings).state_dict(), parser.state_dict())
    with pytest.raises(FacexlibWeightsError, match="detection_Resnet50_Final.pth"):
        RetinaFaceDetector.load("resnet50", weights=settings)
    # A file of the wrong model is named, not a bare key mismatch.
    (tmp_path / "other").mkdir()
    torch.save(parser.state_dict(), tmp_path / "other" / NAME)
    wrong = FacexlibWeights(local_dir=tmp_path / "other", cache_dir=tmp_path / "cache", offline=True)
    with pytest.raises(FacexlibWeightsError, match="does not match facexlib's RetinaFace"):
        RetinaFaceDetector.load("mobile0.25", weights=wrong)
