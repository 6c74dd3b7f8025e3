"""The study's embedding cache: ``<output>/cache/<condition>/<settings hash>/part-*.npz``.

The hash covers everything that changes an embedding (the images: their folder, sizes and
modification times; ArcFace weights, alignment, turbulence parameters and seed, pipeline weights,
dtype, colour fix, prompt, the restorer's weight file: its path and size), so a rerun
with other settings never reads stale embeddings, and a rerun with the same ones computes only
what is missing.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from osdface.degradations import TurbulenceParams
from osdface.evaluation.conditions import RESTORE_PROMPTS, Condition, EvalFRConfig
from osdface.evaluation.pairs import resolve
from osdface.files import write_bytes_atomic
from osdface.restorers.specs import RESTORERS
from osdface.restorers.weight_files import RestorerWeights
from osdface.runtime.devices import dtype_name, resolve_dtype
from osdface.weights.hub import ModelSources

CACHE_FORMAT = 2  # 2: the images and the restorer's weight file are in the hash


def settings_hash(settings: dict[str, Any]) -> str:
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def faces_fingerprint(faces_dir: Path, keys: Sequence[str]) -> str:
    """The images ``keys`` name under ``faces_dir``: the folder (resolved) and each file's size
    and modification time, hashed (another folder or a replaced image is another cache)."""
    digest = hashlib.sha256(str(Path(faces_dir).expanduser().resolve()).encode())
    for key in keys:
        stat = resolve(faces_dir, key).stat()
        digest.update(f"\n{key}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def cache_settings(
    config: EvalFRConfig,
    condition: Condition,
    arcface: str,
    device: torch.device,
    faces: str = "",
    *,
    given_restorers: Collection[str] = (),
) -> dict[str, Any]:
    """Everything that changes the embeddings of ``condition`` (hashed by ``settings_hash``);
    ``faces``: the images' ``faces_fingerprint``; ``given_restorers``: the methods whose model
    the caller passed in (no weight file is read for them)."""
    settings: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "faces": faces,
        "arcface": arcface,
        "alignment": "given" if config.aligned else "retinaface_resnet50_center_face_ffhq512",
    }
    if condition.length is not None:
        settings["turbulence"] = asdict(TurbulenceParams(propagation_length=condition.length))
        settings["seed"] = config.seed
    if condition.method in RESTORE_PROMPTS:
        sources = ModelSources.resolve(
            config.weights, config.base_model, config.revision, config.base_revision
        )
        settings["pipeline"] = asdict(sources)
        settings["dtype"] = dtype_name(resolve_dtype(config.dtype, device))
        settings["color_fix"] = config.color_fix
        settings["prompt"] = RESTORE_PROMPTS[condition.method]
    if condition.method in RESTORERS:
        settings["peer"] = RESTORERS[condition.method].weights.filename
        if condition.method in given_restorers:
            settings["restorer_weights"] = "given by the caller"
        else:
            # the file load_restorer will read (a local folder, a Hub repo...): another file, another cache
            path = RestorerWeights.from_env().path(RESTORERS[condition.method].weights).resolve()
            settings["restorer_weights"] = {"path": str(path), "size": path.stat().st_size}
        if condition.method == "codeformer":
            settings["codeformer_w"] = config.codeformer_w
    return settings


class EmbeddingCache:
    """Embeddings on disk: ``<root>/<condition>/<hash>/part-*.npz`` (arrays ``keys``, ``embeddings``).

    Each process appends its own part files (unique names, written atomically: a crash never
    leaves a half-written part), so several processes and interrupted runs share one cache
    safely.
    """

    def __init__(self, root: Path, hashes: dict[str, str], flush_every: int = 64):
        self.root = root
        self.hashes = hashes
        self.flush_every = flush_every
        self._pending: dict[str, list[tuple[str, np.ndarray]]] = {}
        self._count = 0

    def folder(self, condition: str) -> Path:
        return self.root / condition / self.hashes[condition]

    def cached_keys(self) -> set[tuple[str, str]]:
        """(condition name, image key) of every cached entry, without reading the embeddings."""
        found: set[tuple[str, str]] = set()
        for condition in self.hashes:
            for part in self.folder(condition).glob("part-*.npz"):
                with np.load(part, allow_pickle=False) as data:
                    found.update((condition, key) for key in data["keys"].tolist())
        return found

    def load(self) -> dict[tuple[str, str], np.ndarray]:
        """(condition name, image key) -> (512,) float32 embedding, for every cached entry."""
        found: dict[tuple[str, str], np.ndarray] = {}
        for condition in self.hashes:
            for part in sorted(self.folder(condition).glob("part-*.npz")):
                with np.load(part, allow_pickle=False) as data:
                    for key, vector in zip(data["keys"].tolist(), data["embeddings"]):
                        found[(condition, key)] = vector
        return found

    def add(self, condition: str, key: str, embedding: np.ndarray) -> None:
        self._pending.setdefault(condition, []).append((key, np.asarray(embedding, dtype=np.float32)))
        self._count += 1
        if self._count >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        for condition, entries in self._pending.items():
            if entries:
                self._write(condition, [k for k, _ in entries], np.stack([v for _, v in entries]))
        self._pending = {}
        self._count = 0

    def compact(self) -> None:
        """Merge each condition's parts into one (main process only, when no one else writes)."""
        for condition in self.hashes:
            parts = sorted(self.folder(condition).glob("part-*.npz"))
            if len(parts) < 2:
                continue
            merged: dict[str, np.ndarray] = {}
            for part in parts:
                with np.load(part, allow_pickle=False) as data:
                    merged.update(zip(data["keys"].tolist(), data["embeddings"]))
            self._write(condition, list(merged), np.stack(list(merged.values())))
            for part in parts:
                part.unlink()

    def _write(self, condition: str, keys: list[str], embeddings: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.array(keys, dtype=str), embeddings=embeddings.astype(np.float32))
        write_bytes_atomic(self.folder(condition) / f"part-{uuid.uuid4().hex}.npz", buffer.getvalue())
