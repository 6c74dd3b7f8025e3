"""``osdface evaluate`` on 2 CPU processes under ``accelerate launch`` writes the table that 1
process writes (one thread per process in both runs, see ``test_distributed``)."""

from __future__ import annotations

import json
import sys

import pytest
from helpers.evaluation import accelerate_command, launch_env, run, write_face_set


@pytest.mark.slow
def test_evaluate_on_two_cpu_processes_equals_one(tmp_path, tiny_hub, metric_files):
    faces_dir, _ = write_face_set(tmp_path)  # 4 aligned faces in 2 folders: the keys have folders
    args = [
        "evaluate", "--hq", str(faces_dir), "--lengths", "30000", "--restorers", "input,osdface",
        "--metrics", "psnr,ssim,niqe,fid", "--metrics-dir", str(metric_files / "all"), "--no-progress",
    ]  # fmt: skip
    env = launch_env(tiny_hub)
    single, multi = tmp_path / "single", tmp_path / "multi"
    alone = run([sys.executable, "-m", "osdface.cli", *args, "-o", str(single)], env)
    launched = run([*accelerate_command(2), *args, "-o", str(multi)], env)

    assert launched.stdout.count("| Restorer |") == 1  # the main process reports, once
    assert (multi / "table.md").read_text() == (single / "table.md").read_text()
    assert "| input@30000m | 4 |" in alone.stdout and "| osdface@30000m | 4 |" in alone.stdout
    assert sorted(p.name for p in (multi / "scores").iterdir()) == ["scores-0.jsonl", "scores-1.jsonl"]
    a = json.loads((single / "metrics.json").read_text())
    b = json.loads((multi / "metrics.json").read_text())
    assert a == b
    images = sorted(p.relative_to(single).as_posix() for p in (single / "images").rglob("*.png"))
    assert len(images) == 8 and images == sorted(
        p.relative_to(multi).as_posix() for p in (multi / "images").rglob("*.png")
    )
