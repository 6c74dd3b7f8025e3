"""Which faces of a photo get restored: the detector's output, checked and selected.

A detector is any callable ``(H, W, 3) RGB uint8 -> list[DetectedFace]`` (default: facexlib's
RetinaFace, ``osdface.faces.facexlib_models``); ``select_faces`` drops what cannot be aligned or
is too small, applies ``only_center_face`` (first, among all faces) or else ``max_faces``, and
fixes the order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from facexlib.utils.face_restoration_helper import get_center_face

from osdface.faces.template import similarity_to_template

if TYPE_CHECKING:
    from osdface.faces.options import RestoreOptions


@dataclass(frozen=True)
class DetectedFace:
    """One face found by a detector, in pixels of the image it was given.

    ``box``: (x0, y0, x1, y1); ``landmarks``: (5, 2) float (x, y) in facexlib order: image-left
    eye, image-right eye, nose tip, left mouth corner, right mouth corner; ``score``: confidence.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float


FaceDetector = Callable[[np.ndarray], list[DetectedFace]]  # (H, W, 3) RGB uint8 -> faces


@dataclass(frozen=True)
class FaceDetection:
    """``faces``: the faces to restore (selected by the options, in restore order);
    ``found``: the usable faces before ``max_faces`` cut them (the app says "3 of 12")."""

    faces: list[DetectedFace]
    found: int


def detect_faces(detector: FaceDetector, photo: np.ndarray, options: RestoreOptions) -> FaceDetection:
    """Run ``detector`` on ``photo`` ((H, W, 3) RGB uint8) and select the faces to restore."""
    detected = detector(photo)
    found = len(select_faces(detected, photo.shape, replace(options, max_faces=None)))
    return FaceDetection(faces=select_faces(detected, photo.shape, options), found=found)


def select_faces(
    detected: Sequence[DetectedFace], image_shape: tuple[int, ...], options: RestoreOptions
) -> list[DetectedFace]:
    """Valid faces of at least ``min_face_size``; then only the centre one if asked (chosen
    among all of them), else at most ``max_faces`` (the largest); ordered left to right by box
    (then top to bottom, then by descending score) so the same photo always gives the same
    face order."""
    height, width = image_shape[:2]
    faces = [_normalized(face) for face in detected if _usable(face, width, height)]
    faces = [face for face in faces if _short_side(face) >= options.min_face_size]
    if options.only_center_face and faces:
        # Among all the faces: cutting to the largest first could drop the centre one, and one
        # face is within any max_faces.
        _, index = get_center_face([face.box for face in faces], height, width)
        faces = [faces[index]]
    elif options.max_faces is not None and len(faces) > options.max_faces:
        faces = sorted(faces, key=lambda face: -_area(face))[: options.max_faces]
    return sorted(faces, key=lambda face: (face.box[0], face.box[1], -face.score))


def _usable(face: DetectedFace, width: int, height: int) -> bool:
    """A face the helper can align: finite numbers, a box that overlaps the image, landmarks
    a similarity transform can be fitted to (random or broken detectors give all sorts)."""
    if not isinstance(face, DetectedFace):
        raise TypeError(f"a detector must return DetectedFace items, got {type(face).__name__}")
    landmarks = np.asarray(face.landmarks, dtype=np.float64)
    if landmarks.shape != (5, 2):
        raise ValueError(f"DetectedFace.landmarks must have shape (5, 2), got {landmarks.shape}")
    box = np.asarray(face.box, dtype=np.float64)
    if not (np.isfinite(box).all() and np.isfinite(landmarks).all() and np.isfinite(face.score)):
        return False
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0 or x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        return False
    return similarity_to_template(landmarks) is not None


def _normalized(face: DetectedFace) -> DetectedFace:
    """Plain floats and a (5, 2) float64 array, whatever number types the detector used."""
    return DetectedFace(
        box=tuple(float(v) for v in face.box),
        landmarks=np.array(face.landmarks, dtype=np.float64),
        score=float(face.score),
    )


def _short_side(face: DetectedFace) -> float:
    x0, y0, x1, y1 = face.box
    return min(x1 - x0, y1 - y0)


def _area(face: DetectedFace) -> float:
    x0, y0, x1, y1 = face.box
    return (x1 - x0) * (y1 - y0)
