"""The GPU check's CPU rehearsal: the same script, tiny architecture, in a Python where facexlib,
gradio and spaces cannot be imported (the GPU machine has none of them)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
POISON = """
import sys
for name in ("facexlib", "gradio", "spaces"):
    sys.modules[name] = None  # importing them now raises ImportError
"""


def _load_module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cpu_rehearsal_passes_without_facexlib_gradio_spaces(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(POISON)
    env = dict(os.environ, PYTHON=sys.executable, OSDFACE_NO_WHEELS="1", OUT=str(tmp_path / "out"))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--tiny"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "all paths passed" in done.stdout
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    assert table.startswith("### CPU") and "| path | dtype | batch |" in table
    assert (
        "(the Space's build: torch 2.8.0, a CUDA 12.8 build)" in table
    )  # this suite runs on the pinned torch
    rows = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["rows"]
    assert not [row for row in rows if row["error"]]
    accuracy = {row["dtype"]: row for row in rows if row["path"] == "accuracy"}
    assert accuracy["float32"]["max_diff"] < 1e-4 and accuracy["float32"]["tokens_equal"] == "77/77"
    assert "bfloat16" in accuracy
    throughput = [row for row in rows if row["path"] == "throughput"]
    assert {(row["dtype"], row["batch"]) for row in throughput} >= {
        ("float32", 1),
        ("float32", 2),
        ("bfloat16", 1),
    }
    assert all(row["ms_per_face"] > 0 and row["faces_per_s"] > 0 for row in throughput)
    assert any("contiguous" in row["note"] for row in throughput)
    assert any(row["path"] == "stages" and "unet" in row["note"] for row in rows)


def test_poisoned_import_really_fails(tmp_path):
    """The rehearsal's guard works: with the sitecustomize on the path, importing facexlib fails."""
    (tmp_path / "sitecustomize.py").write_text(POISON)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", "import facexlib"], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "import of facexlib halted" in done.stderr


def test_a_failing_path_is_listed_and_exits_non_zero(monkeypatch, tmp_path, capsys):
    gpu_check = _load_module()
    report = gpu_check.Report("CPU: test", "env")

    class Broken:
        device = gpu_check.torch.device("cpu")

        def __call__(self, *args, **kwargs):
            raise RuntimeError("kernel exploded")

    settings = gpu_check.CheckSettings(device="cpu", tiny=True, out=tmp_path, repeats=1, warmup=0)
    gpu_check._timed_row(report, Broken(), settings, gpu_check.Row("throughput", "float16", 1, "two"), [None])
    assert report.failed and "kernel exploded" in report.failed[0].error
    assert "FAILED (1 path(s))" in gpu_check.markdown(report, settings)
    monkeypatch.setattr(gpu_check, "run", lambda settings: report)
    assert gpu_check.main(["--device", "cpu", "--tiny", "--out", str(tmp_path)]) == 1
    assert "FAILED: 1 path(s)" in capsys.readouterr().out


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_request_without_cuda_is_refused(monkeypatch, capsys, tmp_path, device):
    gpu_check = _load_module()
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    runs = []

    def run(settings):
        runs.append(settings.device)
        return SimpleNamespace(failed=[])

    monkeypatch.setattr(gpu_check, "run", run)
    with pytest.raises(SystemExit) as refused:
        gpu_check.main(["--device", device, "--out", str(tmp_path)])
    assert refused.value.code == 2 and runs == []
    # argparse's usage, then this check's own refusal: any other argument error reads otherwise
    err = capsys.readouterr().err
    assert err.startswith("usage: ")
    last_line = err.strip().splitlines()[-1]
    assert last_line.endswith(": error: no CUDA device here; for the rehearsal pass --device cpu --tiny")
    # The rehearsal the message points to goes ahead on the same machine.
    assert gpu_check.main(["--device", "cpu", "--tiny", "--out", str(tmp_path)]) == 0
    assert runs == ["cpu"]


def test_the_table_says_whether_the_space_torch_build_ran():
    gpu_check = _load_module()
    assert gpu_check.space_build_note("2.8.0+cu128").startswith("the Space's build: torch 2.8.0")
    note = gpu_check.space_build_note("2.11.0+cu130")
    assert note.startswith("NOT the Space's build (torch 2.8.0, a CUDA 12.8 build)")
