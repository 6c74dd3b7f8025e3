"""Shared builders for the identity, eval-fr and distributed tests (this file holds no tests).

- ``write_random_arcface(folder)``: a randomly initialised ArcFace saved as facexlib's
  ``recognition_arcface_ir_se50.pth``, so tests load it through the real weight path;
- ``portraits()``: the two public-domain portraits (scikit-image's astronaut, Eileen
  Collins; matplotlib's Grace Hopper) with their measured landmarks;
- ``write_face_set(folder)``: an LFW-style folder of aligned faces, two per person (the
  portrait and a degraded copy aligned from slightly moved landmarks), and its pairs file;
- ``launch_env``, ``accelerate_command``, ``run``: CLI subprocesses, plain or under
  ``accelerate launch`` with several CPU processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parents[1] / "fixtures"
PEOPLE = {"astronaut": "Eileen_Collins", "grace_hopper": "Grace_Hopper"}
# 2 same-person pairs then 2 different-person pairs, LFW format, one set
PAIRS_TXT = "1\t2\nEileen_Collins\t1\t2\nGrace_Hopper\t1\t2\nEileen_Collins\t1\tGrace_Hopper\t1\nEileen_Collins\t2\tGrace_Hopper\t2\n"


def write_random_arcface(folder: Path, seed: int = 0) -> Path:
    """Save a random ArcFace in facexlib's format (a plain state dict) into ``folder``."""
    import torch

    from osdface.evaluation.identity import ARCFACE_WEIGHTS, ArcFaceEmbedder

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ARCFACE_WEIGHTS
    torch.save(ArcFaceEmbedder.random(seed).model.state_dict(), path)
    return path


def portraits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> ((H, W, 3) RGB uint8 photo, (5, 2) landmarks)."""
    from matplotlib import cbook
    from skimage import data

    landmarks = json.loads((FIXTURES / "faces" / "landmarks.json").read_text())
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        grace = np.asarray(Image.open(handle).convert("RGB"))
    photos = {"astronaut": data.astronaut(), "grace_hopper": grace}
    return {name: (photos[name], np.array(landmarks[name]["landmarks5_xy"])) for name in PEOPLE}


def degraded_copy(face: np.ndarray, seed: int) -> np.ndarray:
    """A blurred, noisy copy: a second, worse picture of the same person."""
    rng = np.random.default_rng(seed)
    blurred = np.asarray(Image.fromarray(face).filter(ImageFilter.GaussianBlur(2.0)), dtype=np.float64)
    noisy = blurred + rng.normal(0.0, 6.0, blurred.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def write_face_set(folder: Path) -> tuple[Path, Path]:
    """LFW-style ``folder/faces/<Name>/<Name>_000n.png`` (aligned 512x512) and ``pairs.txt``."""
    from osdface.faces import align_face

    faces_dir = folder / "faces"
    for i, (name, (photo, landmarks)) in enumerate(portraits().items()):
        person = PEOPLE[name]
        (faces_dir / person).mkdir(parents=True, exist_ok=True)
        first, _ = align_face(photo, landmarks)
        # the second picture: aligned from landmarks moved by a few pixels, then degraded
        moved = landmarks + np.random.default_rng(i).normal(0.0, 2.0, landmarks.shape)
        second = degraded_copy(align_face(photo, moved)[0], seed=i)
        Image.fromarray(first).save(faces_dir / person / f"{person}_0001.png")
        Image.fromarray(second).save(faces_dir / person / f"{person}_0002.png")
    pairs_file = folder / "pairs.txt"
    pairs_file.write_text(PAIRS_TXT)
    return faces_dir, pairs_file


def launch_env(tiny_hub) -> dict[str, str]:
    """Environment for a CLI subprocess: offline, tiny weights, CPU only, one thread."""
    env = {**os.environ, **tiny_hub.env}
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "ACCELERATE_USE_CPU": "1",
            "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": str(ROOT),
        }
    )
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(name, None)
    return env


def accelerate_command(processes: int) -> list[str]:
    """``accelerate launch`` with every setting explicit, so it needs no config file.

    ``--cpu`` alone would start a single process unless MPI is installed; ``--multi_gpu``
    starts ``processes`` torchrun workers, which use CPU and gloo with ACCELERATE_USE_CPU=1.
    """
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        "-m", "osdface.cli",
    ]  # fmt: skip


# Only there to stop a hung command: on a shared 2-core machine under load a single-process
# eval-fr took over 5 minutes, so a tighter limit fails healthy runs.
COMMAND_TIMEOUT_S = 900


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return result
