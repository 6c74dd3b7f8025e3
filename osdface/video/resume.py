"""What an interrupted clip leaves for the next run: detections and restored faces on disk.

Restoring a face is the slow step (seconds on a CPU), detecting one the next. While a clip is
restored, ``WorkFolder`` keeps, next to the output (``clip.mp4.partial/``):

- ``source.json``: which input and settings the folder belongs to (another input, or other
  settings, and the folder is started afresh);
- ``detections.jsonl``: the detector's faces per frame, one line each, appended as they come;
- ``faces/<restorer>/<frame>_<track>.png``: every restored 512x512 face, written atomically.

A rerun decodes the clip again, replays the tracker over the saved detections (it is
deterministic, so the same tracks and landmarks come out) and takes the saved faces instead of
restoring them again; only pasting and encoding are redone. Faces are saved losslessly, so a
resumed clip equals one restored in one go. The folder is removed when the clip is written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from osdface.faces.detection import DetectedFace
from osdface.files import write_bytes_atomic

WORK_SUFFIX = ".partial"


class WorkFolder:
    """The resumable state of one output clip (see the module docstring). ``key`` describes the
    input and the settings; a folder made with another key is emptied."""

    def __init__(self, target: Path, key: dict[str, Any]):
        self.path = target.with_name(target.name + WORK_SUFFIX)
        self.key = key
        self._detections: dict[int, list[DetectedFace]] = {}
        self._log = None

    def open(self) -> WorkFolder:
        source = self.path / "source.json"
        if self.path.exists() and _saved_key(source) != self.key:
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(source, json.dumps(self.key, indent=1, sort_keys=True).encode("utf-8"))
        log = self.path / "detections.jsonl"
        self._detections = _read_detections(log)
        # Written again from what was read: a half line left by a killed run would spoil the next.
        log.write_text("".join(_line(frame, faces) for frame, faces in sorted(self._detections.items())))
        self._log = open(log, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        return self

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    @property
    def saved_detections(self) -> int:
        return len(self._detections)

    def detections(self, frame: int) -> list[DetectedFace] | None:
        """The faces saved for ``frame``, or None when it was not detected yet."""
        return self._detections.get(frame)

    def save_detections(self, frame: int, faces: list[DetectedFace]) -> None:
        self._log.write(_line(frame, faces))
        self._log.flush()
        self._detections[frame] = faces

    def _face_path(self, restorer: str, frame: int, track: int) -> Path:
        return self.path / "faces" / restorer / f"{frame:07d}_{track}.png"

    def face(self, restorer: str, frame: int, track: int) -> Image.Image | None:
        path = self._face_path(restorer, frame, track)
        if not path.exists():
            return None
        with Image.open(path) as image:
            return image.convert("RGB")

    def save_face(self, restorer: str, frame: int, track: int, face: Image.Image) -> None:
        path = self._face_path(restorer, frame, track)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".tmp")
        face.save(partial, format="PNG", compress_level=1)  # speed over size: the folder is temporary
        os.replace(partial, path)


def model_identity(model: Any, depth: int = 2) -> dict[str, Any]:
    """What restores the faces, for a ``WorkFolder``'s key: the class, dtype and the plain
    settings (strings, numbers, paths, dataclasses such as the weights' sources and revisions)
    of a pipeline, and of the model or pipeline it wraps; never object ids, so a rerun with the
    same model gives the same identity and one with other weights does not."""
    kind = type(model)
    identity: dict[str, Any] = {"class": f"{kind.__module__}.{kind.__qualname__}"}
    if getattr(model, "dtype", None) is not None:
        identity["dtype"] = str(model.dtype)
    for name, value in sorted(getattr(model, "__dict__", {}).items()):
        if isinstance(value, str | int | float | bool | Path | Enum) or value is None:
            identity[name] = str(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            identity[name] = repr(value)
        elif depth > 0 and name in ("model", "pipeline"):
            identity[name] = model_identity(value, depth - 1)
    return identity


def _saved_key(path: Path) -> dict[str, Any] | None:
    """The key a folder was made with; None when it has none that can be read (a folder of
    an older version, a run killed while writing it), so the folder is started afresh."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _line(frame: int, faces: list[DetectedFace]) -> str:
    saved = [[list(face.box), np.asarray(face.landmarks).tolist(), face.score] for face in faces]
    return json.dumps({"frame": frame, "faces": saved}) + "\n"


def _read_detections(path: Path) -> dict[int, list[DetectedFace]]:
    """Every complete line of the log (a run killed while writing leaves half a line)."""
    found: dict[int, list[DetectedFace]] = {}
    if not path.exists():
        return found
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        found[int(line["frame"])] = [
            DetectedFace(box=tuple(box), landmarks=np.array(landmarks, dtype=np.float64), score=float(score))
            for box, landmarks, score in line["faces"]
        ]
    return found
