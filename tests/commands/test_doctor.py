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
    assert "[FAIL] weights load" in out and "nobody/not-cached" in out and "Fix:" in out
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
