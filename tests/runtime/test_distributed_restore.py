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


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")
def test_clips_on_two_cpu_processes_equal_one(tmp_path, tiny_hub):
    """A folder of clips shared out between 2 processes: each clip is restored by one of them,
    and the clips equal those of a single process. RetinaFace has random weights: what it finds
    is arbitrary but the same in every process, and the largest of it is tracked and restored."""
    import av
    import torch
    from facexlib.detection.retinaface import RetinaFace
    from helpers.clips import MovingPortrait

    from osdface.testing.clips import make_clip
    from osdface.video import read_frames

    clips, facexlib_dir = tmp_path / "clips", tmp_path / "facexlib"
    clips.mkdir()
    facexlib_dir.mkdir()
    torch.manual_seed(0)
    detector = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))
    torch.save(detector.state_dict(), facexlib_dir / "detection_Resnet50_Final.pth")
    for name, step in (("a.mp4", 4), ("b.mov", 2)):
        make_clip(clips / name, frames=3, fps=25, size=(320, 240), draw=MovingPortrait(step).draw)
    args = ["restore", str(clips), "--seed", "0", "--max-faces", "1", "--facexlib-dir", str(facexlib_dir)]
    env = launch_env(tiny_hub)
    single, multi = tmp_path / "single", tmp_path / "multi"
    alone = run([sys.executable, "-m", "osdface.cli", *args, "-o", str(single)], env)
    launched = run([*accelerate_command(2), *args, "-o", str(multi)], env)
    assert "2 clip(s) processed" in alone.stdout and "2 clip(s) processed" in launched.stdout
    assert "image(s)" not in alone.stdout
    for name in ("a.mp4", "b.mp4"):
        a = [frame.image for frame in read_frames(single / name)]
        b = [frame.image for frame in read_frames(multi / name)]
        assert len(a) == len(b) == 3
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        with av.open(str(multi / name)) as container:
            assert container.streams.audio
