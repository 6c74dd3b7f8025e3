"""OSDFace next to other restorers on the same faces (the CLI's ``--compare``, the app's
"Compare with", ``eval-fr --methods``).

``restore_same_faces`` restores the faces OSDFace restored in a photo (the same boxes and
landmarks, hence the same aligned crops and paste-back) with another ``FaceModel``;
``BesideWriter`` writes each method's photo beside OSDFace's output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from osdface.faces import DetectedFace, FaceRestorer, RestoreOptions, RestoreResult
from osdface.faces.output_names import SOURCE_KEY, beside_name
from osdface.files import save_png_atomic
from osdface.images.reading import load_image
from osdface.restorers.loading import FaceModel, FaceModelPipeline


def detected_faces(result: RestoreResult) -> list[DetectedFace]:
    """The detections behind a whole-photo ``RestoreResult``."""
    return [
        DetectedFace(box=face.box, landmarks=face.landmarks.copy(), score=face.score or 0.0)
        for face in result.faces
    ]


def restore_same_faces(
    reference: RestoreResult,
    photo: np.ndarray,
    model: FaceModel,
    options: RestoreOptions,
    *,
    background: Any = None,
) -> RestoreResult:
    """``photo`` ((H, W, 3) RGB uint8, the one ``reference`` restored) with the faces of
    ``reference`` restored by ``model`` instead, pasted the same way (on ``background``'s
    upscaled photo when given). ``options.aligned``: ``photo`` is the aligned face itself."""
    options = replace(options, prompt=None)
    restorer = FaceRestorer(FaceModelPipeline(model), options=options, background=background)
    faces = None if options.aligned else detected_faces(reference)
    return restorer.restore_faces(photo, faces, options)


def beside(target: Path, key: str) -> Path:
    """``out/a.png`` -> ``out/a.gfpgan.png`` (``collect_inputs`` keeps these names free)."""
    return beside_name(target, key)


class BesideWriter:
    """After OSDFace restored ``source`` into ``target``: the same faces by each model, written
    as ``target`` with the model's key added (``a.png`` -> ``a.gfpgan.png``)."""

    def __init__(self, models: Mapping[str, FaceModel], options: RestoreOptions, background: Any = None):
        self.models = dict(models)
        self.options = options
        self.background = background

    def __call__(self, source: Path, result: RestoreResult, target: Path) -> list[Path]:
        if result.no_face_found or not self.models:
            return []
        photo = load_image(source, max_pixels=self.options.max_pixels)  # (H, W, 3) RGB uint8
        written = []
        for key, model in self.models.items():
            other = restore_same_faces(result, photo, model, self.options, background=self.background)
            # The same record as OSDFace's output: the next run knows whose file this is.
            save_png_atomic(other.image, beside(target, key), text={SOURCE_KEY: source.name})
            written.append(beside(target, key))
        return written
