"""eval-fr's embedding cache key (``osdface.evaluation.cache``): another images folder, a replaced
image or another restorer weight file is another cache; the same inputs named another way are not."""

from __future__ import annotations

import os

import numpy as np
import torch
from helpers.restorer_files import write_face_release
from PIL import Image

from osdface.evaluation.cache import cache_settings, faces_fingerprint, settings_hash
from osdface.evaluation.conditions import Condition, EvalFRConfig

KEYS = ["p1.png", "p2.png"]


def _faces(folder, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for key in KEYS:
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / key)
    return folder


def _hash(config, condition, faces=""):
    return settings_hash(cache_settings(config, condition, "arcface", torch.device("cpu"), faces))


def test_the_images_folder_and_each_image_are_in_the_key(tmp_path):
    a, b = _faces(tmp_path / "a", 0), _faces(tmp_path / "b", 0)  # identical files, other folder
    first = faces_fingerprint(a, KEYS)
    assert faces_fingerprint(tmp_path / "b" / ".." / "a", KEYS) == first
    assert faces_fingerprint(b, KEYS) != first
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(a / "p2.png")  # replaced in place
    os.utime(a / "p2.png", ns=(1, 1))
    assert faces_fingerprint(a, KEYS) != first
    config = EvalFRConfig(faces_dir=a, pairs_file=a / "pairs.csv", output_dir=tmp_path / "out")
    turbulent = Condition("turbulent", 20000.0)
    assert _hash(config, turbulent, first) != _hash(config, turbulent, faces_fingerprint(a, KEYS))


def test_another_restorer_weight_file_is_another_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OSDFACE_OFFLINE", "1")
    for folder in ("one", "two"):  # the same file in two places: OSDFACE_RESTORERS_DIR picks one
        write_face_release("restoreformer", tmp_path / folder)
    config = EvalFRConfig(
        faces_dir=tmp_path,
        pairs_file=tmp_path / "pairs.csv",
        output_dir=tmp_path / "out",
        methods=("restoreformer",),
    )
    restoreformer = Condition("restoreformer", 20000.0)
    monkeypatch.setenv("OSDFACE_RESTORERS_DIR", str(tmp_path / "one"))
    one = _hash(config, restoreformer)
    assert _hash(config, restoreformer) == one
    monkeypatch.setenv("OSDFACE_RESTORERS_DIR", str(tmp_path / "two"))
    assert _hash(config, restoreformer) != one
