"""``osdface restore`` on 2 CPU processes under ``accelerate launch`` writes what 1 process writes
(one thread per process in both runs, see ``test_distributed``)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers.evaluation import accelerate_command, launch_env, run, write_face_set
from PIL import Image


@pytest.mark.slow
def test_restore_on_two_cpu_processes_equals_one(tmp_path, tiny_hub):
    faces_dir, _ = write_face_set(tmp_path)  # 4 aligned faces in 2 folders
    args = ["restore", str(faces_dir), "--aligned", "--seed", "0"]
    env = launch_env(tiny_hub)
    single, multi = tmp_path / "single", tmp_path / "multi"
    alone = run([sys.executable, "-m", "osdface.cli", *args, "-o", str(single)], env)
    launched = run([*accelerate_command(2), *args, "-o", str(multi)], env)

    # the main process reports on every input, once
    assert "4 image(s) processed, 4 face(s) restored" in alone.stdout
    assert launched.stdout.count("image(s) processed") == 1
    assert "4 image(s) processed, 4 face(s) restored" in launched.stdout

    outputs = sorted(p.relative_to(single).as_posix() for p in single.rglob("*.png"))
    assert outputs == [
        "Eileen_Collins/Eileen_Collins_0001.png",
        "Eileen_Collins/Eileen_Collins_0002.png",
        "Grace_Hopper/Grace_Hopper_0001.png",
        "Grace_Hopper/Grace_Hopper_0002.png",
    ]
    assert outputs == sorted(p.relative_to(multi).as_posix() for p in multi.rglob("*.png"))
    for name in outputs:
        a, b = np.asarray(Image.open(single / name)), np.asarray(Image.open(multi / name))
        assert a.shape == (512, 512, 3)
        np.testing.assert_array_equal(a, b)
