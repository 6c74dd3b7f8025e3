"""``osdface restore`` through its console script: the bar advances per face, not per file
(issue 13, item 6). Whole photos with a RetinaFace whose weights are random (written with
facexlib's own class and ``torch.save``), so it finds several "faces" in each photo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.faces import portrait
from PIL import Image

pytestmark = pytest.mark.timeout(600)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")
def test_the_bar_counts_faces(tiny_hub, tmp_path):
    from facexlib.detection.retinaface import RetinaFace

    facexlib_dir = tmp_path / "facexlib"
    facexlib_dir.mkdir()
    torch.manual_seed(0)
    detector = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))
    torch.save(detector.state_dict(), facexlib_dir / "detection_Resnet50_Final.pth")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(portrait("astronaut")).save(photos / "astronaut.png")
    Image.fromarray(portrait("grace_hopper")).save(photos / "grace_hopper.png")

    env = {**os.environ, **tiny_hub.env, "TQDM_MININTERVAL": "0", "PYTHONUNBUFFERED": "1"}
    command = [
        str(Path(sys.executable).parent / "osdface"),
        "restore",
        str(photos),
        "-o",
        str(tmp_path / "out"),
    ]
    command += [
        "--facexlib-dir",
        str(facexlib_dir),
        "--max-faces",
        "3",
        "--batch-size",
        "1",
        "--device",
        "cpu",
    ]
    command += ["--weights", tiny_hub.weights_repo, "--base-model", tiny_hub.base_repo]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=500)
    assert run.returncode == 0, run.stderr[-3000:]

    faces = int(re.search(r"(\d+) face\(s\) restored", run.stdout).group(1))
    assert faces > 2, run.stdout  # more faces than files, or the test tells nothing
    # Every state the bar printed: "restore: N face [...]" (tqdm without a total).
    counts = [int(n) for n in re.findall(r"restore: (\d+)face", run.stderr.replace(" face", "face"))]
    assert counts and counts[-1] == faces, run.stderr[-2000:]
    # One face a batch: the bar went through every count, not one step per file.
    assert set(range(1, faces + 1)) <= set(counts), counts
    assert "file 2/2" in run.stderr
