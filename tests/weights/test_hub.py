"""Where weights come from, and what the user is told when they cannot be loaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from osdface import OSDFacePipeline
from osdface.pipeline.pickles import load_pickled_state_dict
from osdface.testing import random_weights
from osdface.weights import hub


def snapshot(tiny_hub, repo_id: str) -> Path:
    return (
        Path(tiny_hub.cache_dir)
        / f"models--{repo_id.replace('/', '--')}"
        / "snapshots"
        / tiny_hub.commits[repo_id]
    )


def load(weights, base, **kwargs):
    return OSDFacePipeline.from_pretrained(weights, base_model=base, **kwargs)


def test_defaults_and_environment_overrides(monkeypatch):
    assert hub.ModelSources.resolve() == hub.ModelSources(
        "alecccdd/OSDFace", None, "Manojb/stable-diffusion-2-1-base", None
    )
    monkeypatch.setenv("OSDFACE_WEIGHTS", "me/osdface")
    monkeypatch.setenv("OSDFACE_BASE_MODEL", "/models/sd21")
    monkeypatch.setenv("OSDFACE_BASE_REVISION", "v2")
    resolved = hub.ModelSources.resolve()
    assert (resolved.weights, resolved.base_model, resolved.base_revision) == (
        "me/osdface",
        "/models/sd21",
        "v2",
    )
    assert hub.ModelSources.resolve("arg/weights").weights == "arg/weights"  # arguments win


def holds(module, state: dict) -> bool:
    """Whether ``module``'s weights are exactly ``state``'s (same names, same values)."""
    own = module.state_dict()
    return set(own) == set(state) and all(torch.equal(own[name], state[name]) for name in state)


def test_the_environment_and_the_arguments_choose_where_the_weights_come_from(
    tiny_hub, tmp_path, monkeypatch
):
    """Two copies of each repo whose random weights differ: the Hub cache's (seed 0) and local
    folders (seed 1). Whichever source is chosen, the loaded weights are that copy's."""
    unet = random_weights.write_base_repo(tmp_path / "base", "tiny", seed=1)
    random_weights.write_weights_repo(tmp_path / "weights", unet, seed=1)
    local_vre = random_weights.build_vre(random_weights.TINY_VRE_CONFIG, seed=1).state_dict()
    cached_vre = random_weights.build_vre(random_weights.TINY_VRE_CONFIG, seed=0).state_dict()
    vae_file = Path("vae") / "diffusion_pytorch_model.safetensors"
    local_vae = load_file(tmp_path / "base" / vae_file)
    cached_vae = load_file(snapshot(tiny_hub, tiny_hub.base_repo) / vae_file)

    monkeypatch.setenv("OSDFACE_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("OSDFACE_BASE_MODEL", str(tmp_path / "base"))
    local = OSDFacePipeline.from_pretrained()
    assert local.load_report["files"] == {
        "vre": tmp_path / "weights" / hub.VRE_CHECKPOINT,
        "projection": tmp_path / "weights" / hub.PROJECTION_WEIGHTS,
        "lora": tmp_path / "weights" / hub.LORA_WEIGHTS,
    }
    assert holds(local.embedder, local_vre) and not holds(local.embedder, cached_vre)
    assert holds(local.vae, local_vae) and not holds(local.vae, cached_vae)
    # The text encoder, loaded on first use, comes from the folder the pipeline was loaded
    # from, not from whatever the environment says by then.
    monkeypatch.setenv("OSDFACE_BASE_MODEL", tiny_hub.base_repo)
    local.load_text_encoder()
    encoder_file = Path("text_encoder") / "model.safetensors"
    assert holds(local.text_encoder, load_file(tmp_path / "base" / encoder_file))
    assert not holds(local.text_encoder, load_file(snapshot(tiny_hub, tiny_hub.base_repo) / encoder_file))

    # Arguments win over the environment: the Hub cache's copies, at the cached commits.
    monkeypatch.setenv("OSDFACE_BASE_MODEL", str(tmp_path / "base"))
    cached = load(tiny_hub.weights_repo, tiny_hub.base_repo)
    files = cached.load_report["files"]
    assert files["lora"] == snapshot(tiny_hub, tiny_hub.weights_repo) / hub.LORA_WEIGHTS
    assert hub.resolved_revision(files["vre"]) == tiny_hub.commits[tiny_hub.weights_repo]
    assert holds(cached.embedder, cached_vre) and not holds(cached.embedder, local_vre)
    assert holds(cached.vae, cached_vae) and not holds(cached.vae, local_vae)


def test_offline_with_empty_cache(tiny_hub):
    with pytest.raises(hub.WeightsUnavailableError) as info:
        load("nobody/not-cached", tiny_hub.base_repo)
    message = str(info.value)
    assert "'associate_2.ckpt' from Hub repo 'nobody/not-cached'" in message
    assert "offline" in message and "nothing of Hub repo 'nobody/not-cached' is in the local cache" in message
    assert "OSDFACE_WEIGHTS" in message and "Fix:" in message


def test_base_model_errors_name_the_base_variable(tiny_hub):
    with pytest.raises(hub.WeightsUnavailableError) as info:
        load(tiny_hub.weights_repo, "nobody/sd21")
    assert "'vae/config.json' from Hub repo 'nobody/sd21'" in str(info.value)
    assert "OSDFACE_BASE_MODEL" in str(info.value)


def test_revision_not_in_cache(tiny_hub):
    with pytest.raises(hub.WeightsUnavailableError) as info:
        load(tiny_hub.weights_repo, tiny_hub.base_repo, revision="v9")
    assert "revision 'v9' of 'osdface-test/osdface' is not in the local cache" in str(info.value)


def test_file_missing_from_cached_repo_and_from_local_folder(tiny_hub, tmp_path):
    repo_id = "osdface-test/no-lora"
    partial = tmp_path / "partial"
    shutil.copytree(snapshot(tiny_hub, tiny_hub.weights_repo), partial)
    (partial / hub.LORA_WEIGHTS).unlink()
    from osdface.testing.hub_cache import add_to_hub_cache

    add_to_hub_cache(Path(tiny_hub.cache_dir), repo_id, partial)
    with pytest.raises(
        hub.WeightsUnavailableError, match="does not contain 'pytorch_lora_weights.safetensors'"
    ):
        load(repo_id, tiny_hub.base_repo)
    with pytest.raises(
        hub.WeightsUnavailableError,
        match="'pytorch_lora_weights.safetensors' is missing from the local folder",
    ):
        load(partial, tiny_hub.base_repo)


@pytest.mark.parametrize("name", [hub.LORA_WEIGHTS, hub.VRE_CHECKPOINT, hub.PROJECTION_WEIGHTS])
def test_corrupt_file(tiny_hub, tmp_path, name):
    """The file at fault is named (the VRE step reads two), with a fix that fits a local folder:
    its files are never downloaded again."""
    weights = shutil.copytree(snapshot(tiny_hub, tiny_hub.weights_repo), tmp_path / "weights")
    data = (weights / name).read_bytes()
    (weights / name).write_bytes(data[: len(data) // 3])
    with pytest.raises(hub.WeightsUnavailableError) as info:
        load(weights, tiny_hub.base_repo)
    error = info.value
    assert "corrupt" in error.reason and f"File '{name}' from" in error.reason
    assert f"({weights / name})" in error.reason
    assert f"replace '{weights / name}' with a good copy" in error.fix and "hf cache rm" not in error.fix


def test_a_corrupt_file_in_the_hub_cache_is_downloaded_again(tiny_hub, tmp_path):
    error = hub.corrupt_file_error(tmp_path / "x.pth", tiny_hub.weights_repo, "x.pth", ValueError("bad"))
    assert f"`hf cache rm model/{tiny_hub.weights_repo}`" in error.fix and "downloaded again" in error.fix


def test_a_bad_projection_names_the_projection_not_the_checkpoint(tiny_hub, tmp_path):
    weights = shutil.copytree(snapshot(tiny_hub, tiny_hub.weights_repo), tmp_path / "weights")
    projection = torch.load(weights / hub.PROJECTION_WEIGHTS, weights_only=True)
    (weights / hub.PROJECTION_WEIGHTS).unlink()
    torch.save({"module." + k: v for k, v in projection.items()}, weights / hub.PROJECTION_WEIGHTS)
    with pytest.raises(hub.WeightsUnavailableError) as info:
        load(weights, tiny_hub.base_repo)
    reason = info.value.reason
    assert f"File '{hub.PROJECTION_WEIGHTS}' from" in reason and hub.VRE_CHECKPOINT not in reason
    assert "unexpected keys (4): ['module.conv1.bias'" in reason


@pytest.mark.parametrize("name", [hub.VRE_CHECKPOINT, hub.PROJECTION_WEIGHTS])
def test_legacy_non_zip_pickles_load(tiny_hub, tmp_path, name):
    """torch's format before 1.6, still written with ``_use_new_zipfile_serialization=False``:
    ``weights_only`` reads it; it must not be called corrupt."""
    weights = shutil.copytree(snapshot(tiny_hub, tiny_hub.weights_repo), tmp_path / "weights")
    content = load_pickled_state_dict(weights / name)
    if name == hub.VRE_CHECKPOINT:  # a legacy file cannot list its classes: tensors only
        content = {"state_dict": content["state_dict"]}
    (weights / name).unlink()
    torch.save(content, weights / name, _use_new_zipfile_serialization=False)
    pipe = load(weights, tiny_hub.base_repo)
    reference = load(tiny_hub.weights_repo, tiny_hub.base_repo)
    assert all(
        torch.equal(a, b)
        for a, b in zip(pipe.embedder.state_dict().values(), reference.embedder.state_dict().values())
    )


def test_corrupt_base_component(tiny_hub, tmp_path):
    base = shutil.copytree(snapshot(tiny_hub, tiny_hub.base_repo), tmp_path / "base")
    (base / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(hub.WeightsUnavailableError, match="'unet/' .* is corrupt"):
        load(tiny_hub.weights_repo, base)


@pytest.mark.parametrize("source", ["./no/such/folder", "my weights/osdface", "osdface-test/osdface!"])
def test_not_a_repo_id_nor_a_folder(tiny_hub, source):
    """A missing relative folder or a name the Hub would refuse: said plainly, never
    huggingface_hub's HFValidationError from inside the download."""
    with pytest.raises(hub.WeightsUnavailableError) as info:
        load(source, tiny_hub.base_repo)
    assert f"'{source}' is neither an existing folder nor a valid Hub repo id" in info.value.reason
    assert "OSDFACE_WEIGHTS" in info.value.fix and f"looked up from {Path.cwd()}" in info.value.fix
    assert hub.fetch_optional(source, hub.VRE_SAFETENSORS) is None
    with pytest.raises(hub.WeightsUnavailableError, match="OSDFACE_BASE_MODEL"):
        load(tiny_hub.weights_repo, source)


class FakeHub(BaseHTTPRequestHandler):
    """Answers like the Hub does for a missing repo, revision or file (status + X-Error-Code)."""

    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self._answer()

    def do_GET(self):  # noqa: N802
        self._answer()

    def _answer(self):
        # Path: /{owner}/{name}/resolve/{revision}/{filename}
        parts = self.path.split("?")[0].strip("/").split("/")
        repo, revision = parts[1], parts[3]
        if repo == "missing-repo":
            code, error = 401, "RepoNotFound"
        elif revision == "bad-revision":
            code, error = 404, "RevisionNotFound"
        else:
            code, error = 404, "EntryNotFound"
        self.send_response(code)
        self.send_header("X-Error-Code", error)
        self.send_header("X-Error-Message", f"{error} (fake hub)")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_online_errors_through_huggingface_hub(tmp_path):
    """A local server speaking the Hub's error protocol: repo missing, bad revision, file
    missing; then an unreachable Hub. Run in a subprocess, since the test session is offline."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    closed = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    closed_port = closed.server_address[1]
    closed.server_close()
    script = """
import json, os, sys
from osdface.testing import random_weights
from osdface.weights import hub
cases = [("owner/missing-repo", "associate_2.ckpt", None), ("owner/repo", "associate_2.ckpt", "bad-revision"),
         ("owner/repo", "associate_2.ckpt", None)]
out = []
for repo, name, revision in cases:
    try:
        hub.fetch(repo, name, revision)
        out.append("no error")
    except hub.WeightsUnavailableError as exc:
        out.append(str(exc))
print(json.dumps(out))
"""
    try:
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "0",
            "HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
            "HF_HUB_CACHE": str(tmp_path / "cache"),
            "HF_HUB_ETAG_TIMEOUT": "5",
            "HF_HUB_DOWNLOAD_TIMEOUT": "5",
        }
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        missing_repo, bad_revision, missing_file = json.loads(result.stdout.strip().splitlines()[-1])
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port}"
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        unreachable = json.loads(result.stdout.strip().splitlines()[-1])[0]
    finally:
        server.shutdown()
    assert "Hub repo 'owner/missing-repo' was not found" in missing_repo
    assert "Revision 'bad-revision' does not exist in Hub repo 'owner/repo'" in bad_revision
    assert "File 'associate_2.ckpt' is missing from Hub repo 'owner/repo'" in missing_file
    assert "the Hub could not be reached" in unreachable and "owner/missing-repo" in unreachable


class FakeHubWithUploads(FakeHub):
    """The same fake Hub, also accepting what ``HfApi.create_repo`` and ``upload_folder`` send
    (repo creation, pre-upload, an NDJSON commit of base64 files); received files are kept in
    ``server.received``."""

    def do_POST(self):  # noqa: N802
        import base64

        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        path = self.path.split("?")[0]
        endpoint = f"http://{self.headers['Host']}"
        if path == "/api/repos/create":
            request = json.loads(body)
            answer = {"url": f"{endpoint}/{request.get('organization') or 'me'}/{request['name']}"}
        elif "/preupload/" in path:
            files = json.loads(body)["files"]
            answer = {
                "files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
            }
        elif "/commit/" in path:
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    self.server.received[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            answer = {
                "commitUrl": f"{endpoint}/me/osdface-safetensors/commit/" + "a" * 40,
                "commitOid": "a" * 40,
            }
        else:
            answer = {}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.mark.slow
def test_export_push_to_hub_against_a_loopback_hub(tiny_hub, tmp_path):
    """``osdface export OUT --push-to-hub`` uploads every exported file, byte for byte."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHubWithUploads)
    server.received = {}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = tmp_path / "export"
    env = {
        **os.environ,
        **tiny_hub.env,
        "HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        "HF_TOKEN": "hf_fake_token_for_a_loopback_server",
    }
    try:
        # Offline for the weights (read from the cache), online for the upload: HF_HUB_OFFLINE
        # is read at import, so the subprocess flips it only after the export.
        script = (
            "import sys; from osdface.commands.export import export_release, push_to_hub; "
            f"export_release({str(out)!r}); "
            "import huggingface_hub.constants as c; c.HF_HUB_OFFLINE = False; "
            f"print(push_to_hub({str(out)!r}, 'me/osdface-safetensors'))"
        )
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
        )
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr[-2000:]
    assert "commit/" + "a" * 40 in result.stdout
    assert sorted(server.received) == ["README.md", hub.LORA_WEIGHTS, hub.VRE_SAFETENSORS]
    for name, data in server.received.items():
        assert data == (out / name).read_bytes()
