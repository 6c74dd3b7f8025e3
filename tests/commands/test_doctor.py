"""``osdface doctor`` on the tiny release: what it prints and its exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from osdface.cli import main as cli_main
from osdface.runtime import devices


@pytest.mark.slow
def test_doctor_json_on_the_tiny_release(tiny_hub):
    """``python -m osdface.commands.doctor --json``: everything resolved, hashed, loaded and checked."""
    env = {**os.environ, **tiny_hub.env}
    result = subprocess.run(
        [sys.executable, "-m", "osdface.commands.doctor", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    report = json.loads(result.stdout)
    weights = report["sources"]["weights"]
    assert weights["source"] == tiny_hub.weights_repo and weights["kind"] == "hub"
    assert weights["resolved_revision"] == tiny_hub.commits[tiny_hub.weights_repo]  # the full commit SHA
    files = {f["file"]: f for f in report["files"]}
    assert {"associate_2.ckpt", "embedding_change_weights.pth", "pytorch_lora_weights.safetensors"} <= set(
        files
    )
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in files.values())
    assert report["vre"]["ignored"]["vqvae_LQ.post_quant_conv"] == 2
    assert report["lora"]["pairs_in_file"] == report["lora"]["pairs_applied"] == 69
    assert report["runtime"]["vre_dtype"] == "torch.float32"
    assert {"vre", "vae_encode", "unet", "vae_decode", "total", "load"} <= set(report["timings"])
    checks = {c["name"]: c for c in report["checks"]}
    assert all(c["ok"] for c in checks.values())
    assert {"distinct tokens", "output not constant", "sharper than input", "ArcFace similarity"} <= set(
        checks
    )


def test_doctor_exit_2_when_weights_are_missing(tiny_hub, capsys):
    status = cli_main(["doctor", "--weights", "nobody/not-cached", "--base-model", tiny_hub.base_repo])
    out = capsys.readouterr().out
    assert status == 2
    assert "[FAIL] weights load" in out and "nobody/not-cached" in out
    assert "fix: connect to the internet once" in out  # the error's own fix, on the fix line
    assert "result: FAILED (exit 2)" in out
    # Which dtype would run, and why, is said even though nothing loaded.
    assert "runtime: device cpu, dtype " in out and "dtype_reason " in out


def test_doctor_exit_1_when_a_check_fails(tiny_hub, tmp_path, capsys):
    status = cli_main(
        [
            "doctor",
            "--weights",
            tiny_hub.weights_repo,
            "--base-model",
            tiny_hub.base_repo,
            "--image",
            str(tmp_path / "x.png"),
        ]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert "[ok] LoRA applied: 69/69 pairs" in out
    assert "[FAIL] example image" in out and "fix: pass --image PATH" in out
    assert f"resolved {tiny_hub.commits[tiny_hub.weights_repo]}" in out


@pytest.mark.parametrize(
    ("native", "asked", "expected"),
    [(True, None, "bfloat16"), (False, None, "float32"), (True, "float32", "float32")],
)
def test_doctor_says_which_dtype_runs_and_why(
    tiny_hub, tmp_path, capsys, monkeypatch, native, asked, expected
):
    """Issue 23: the CPU's default follows the processor, and the doctor says so (the image is
    missing, so nothing is restored: the runtime line is what is checked)."""
    monkeypatch.setattr(devices, "native_bfloat16", lambda: native)
    dtype = ["--dtype", asked] if asked else []
    argv = [
        "doctor",
        "--weights",
        tiny_hub.weights_repo,
        "--base-model",
        tiny_hub.base_repo,
        "--device",
        "cpu",
    ]
    cli_main([*argv, *dtype, "--image", str(tmp_path / "x.png")])
    (runtime,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  runtime: ")]
    assert f"dtype {expected}, dtype_reason " in runtime
    assert f"unet_dtype torch.{expected}" in runtime and "vre_dtype torch.float32" in runtime
    if asked:
        assert "float32: asked for (--dtype)" in runtime
    elif native:
        assert "bfloat16 on the CPU: it computes bfloat16 natively" in runtime
    else:
        assert "float32 on the CPU: it has no native bfloat16" in runtime


def test_an_unknown_device_name_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit) as info:
        cli_main(["doctor", "--device", "gpu"])
    assert info.value.code == 2
    assert "unknown device 'gpu': use cpu, cuda, cuda:N" in capsys.readouterr().err


def doctor_json(tiny_hub, tmp_path, capsys, *extra) -> tuple[int, dict]:
    argv = ["doctor", "--json", "--weights", tiny_hub.weights_repo, "--base-model", tiny_hub.base_repo]
    status = cli_main([*argv, *extra])
    return status, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("device", "check", "reason", "fix"),
    [
        ("cuda", "CUDA", "this machine has no NVIDIA GPU", "use --device cpu"),
        ("cuda:1", "CUDA", "this machine has no NVIDIA GPU", "use --device cpu"),
        ("mps", "device", "--device mps: ", "use --device cpu, cuda"),
    ],
)
def test_an_unusable_device_is_a_failed_check_and_the_rest_runs_on_the_cpu(
    tiny_hub, tmp_path, capsys, monkeypatch, device, check, reason, fix
):
    """No NVIDIA GPU or driver at all (so nothing for the CUDA diagnosis to explain), and no
    Apple GPU: the JSON report still comes, the weights are still checked."""
    import torch

    from osdface.commands import doctor

    monkeypatch.setattr(doctor, "diagnose_cuda", lambda: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    status, report = doctor_json(
        tiny_hub, tmp_path, capsys, "--device", device, "--image", str(tmp_path / "x.png")
    )
    assert status == 1
    checks = {c["name"]: c for c in report["checks"]}
    assert not checks[check]["ok"] and reason in checks[check]["detail"] and fix in checks[check]["fix"]
    assert checks["LoRA applied"]["ok"] and report["runtime"]["device"] == "cpu"


def test_a_device_name_torch_does_not_know_is_a_failed_check_through_the_api(tiny_hub, tmp_path):
    from osdface.commands.doctor import DoctorSettings, run_doctor

    settings = DoctorSettings(
        tiny_hub.weights_repo, tiny_hub.base_repo, device="gpu", image=tmp_path / "x.png"
    )
    report = run_doctor(settings)
    (check,) = [c for c in report.checks if c.name == "device"]
    assert not check.ok and "'gpu' is not a device name" in check.detail and "cpu, cuda" in check.fix
    assert report.exit_code == 1 and report.runtime["device"] == "cpu"


def test_an_unreadable_image_is_a_failed_check(tiny_hub, tmp_path, capsys):
    not_an_image = tmp_path / "notimg.jpg"
    not_an_image.write_text("this is not a JPEG")
    status, report = doctor_json(tiny_hub, tmp_path, capsys, "--device", "cpu", "--image", str(not_an_image))
    assert status == 1
    (check,) = [c for c in report["checks"] if c["name"] == "example image"]
    assert not check["ok"] and "cannot read it" in check["detail"] and "notimg.jpg" in check["detail"]
    assert check["fix"].startswith("pass --image PATH")


def test_a_lora_for_another_base_model_shows_its_fix(tiny_hub, tmp_path, capsys):
    import shutil
    from pathlib import Path

    from diffusers import UNet2DConditionModel

    from osdface.testing.random_weights import TINY_UNET_CONFIG, lora_unet, write_lora_file
    from osdface.weights import hub

    cache = Path(tiny_hub.cache_dir) / f"models--{tiny_hub.weights_repo.replace('/', '--')}"
    weights = shutil.copytree(cache / "snapshots" / tiny_hub.commits[tiny_hub.weights_repo], tmp_path / "w")
    (weights / hub.LORA_WEIGHTS).unlink()
    sd1 = UNet2DConditionModel(**{**TINY_UNET_CONFIG, "cross_attention_dim": 768})
    write_lora_file(lora_unet(sd1, rank=4), weights / hub.LORA_WEIGHTS, "diffusers_mixed")
    status = cli_main(
        ["doctor", "--weights", str(weights), "--base-model", tiny_hub.base_repo, "--device", "cpu"]
    )
    out = capsys.readouterr().out
    assert status == 2
    assert (
        f"[FAIL] weights load: {weights / hub.LORA_WEIGHTS}: " in out
        and "cross-attention 768 = SD 1.x" in out
    )
    assert "fix: use the OSDFace LoRA, made for SD 2.1 base" in out


def test_a_gpu_index_the_machine_lacks_is_a_failed_check(tiny_hub, tmp_path, capsys, monkeypatch):
    import torch

    from osdface.commands import doctor

    monkeypatch.setattr(doctor, "diagnose_cuda", lambda: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    status, report = doctor_json(
        tiny_hub, tmp_path, capsys, "--device", "cuda:3", "--image", str(tmp_path / "x")
    )
    (check,) = [c for c in report["checks"] if c["name"] == "CUDA"]
    assert status == 1 and not check["ok"]
    assert (
        check["detail"] == "--device cuda:3: this machine has 2 GPU(s)"
        and check["fix"] == "use cuda:0, cuda:1"
    )
    assert report["runtime"]["device"] == "cpu"
