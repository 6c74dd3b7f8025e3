"""Shared helpers for the whole-photo tests (no tests here): the two public-domain portraits
with their measured landmarks, stand-in detectors and pipelines, and a synthetic group photo
whose landmarks are known by construction."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
from PIL import Image

from osdface.faces import FFHQ_TEMPLATE_512, DetectedFace
from osdface.images.reading import load_image

FIXTURES = Path(__file__).parents[1] / "fixtures"
# Swapping image-left and image-right keeps facexlib's landmark order after a mirror flip.
MIRROR_ORDER = [1, 0, 2, 4, 3]


@cache
def landmarks_fixture() -> dict:
    return json.loads((FIXTURES / "faces" / "landmarks.json").read_text())


@cache
def _portrait(name: str) -> np.ndarray:
    if name == "astronaut":
        import skimage.data

        return np.ascontiguousarray(skimage.data.astronaut())
    if name == "grace_hopper":
        import matplotlib.cbook

        return load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    raise KeyError(name)


def portrait(name: str) -> np.ndarray:
    """(H, W, 3) RGB uint8 copy of "astronaut" or "grace_hopper"."""
    image = _portrait(name).copy()
    assert list(image.shape[:2]) == landmarks_fixture()[name]["image_size_hw"]
    return image


def measured_face(name: str, score: float = 0.99) -> DetectedFace:
    entry = landmarks_fixture()[name]
    return DetectedFace(
        box=tuple(float(v) for v in entry["box_xyxy"]),
        landmarks=np.array(entry["landmarks5_xy"], dtype=np.float64),
        score=score,
    )


class FixedDetector:
    """Returns the same faces for any image (the geometry is known); counts its calls."""

    def __init__(self, faces: list[DetectedFace]):
        self.faces = list(faces)
        self.calls = 0

    def __call__(self, image: np.ndarray) -> list[DetectedFace]:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        self.calls += 1
        return list(self.faces)


class RecordingPipeline:
    """A stand-in with the pipeline's call signature: ``transform`` maps each (512, 512, 3)
    uint8 face; records the batch sizes, options and generator seeds of every call."""

    def __init__(self, transform=lambda face: face):
        self.transform = transform
        self.batches: list[int] = []
        self.options: list[dict] = []
        self.seeds: list[list[int] | None] = []

    def __call__(self, images, *, prompt=None, color_fix=None, generator=None):
        assert isinstance(images, list) and all(isinstance(im, Image.Image) for im in images)
        assert all(im.size == (512, 512) and im.mode == "RGB" for im in images)
        self.batches.append(len(images))
        self.options.append({"prompt": prompt, "color_fix": color_fix})
        self.seeds.append(None if generator is None else [g.initial_seed() for g in generator])
        out = [Image.fromarray(self.transform(np.asarray(im))) for im in images]
        return SimpleNamespace(images=out, timings={"unet": 0.25, "total": 0.5})


def identity_pipeline() -> RecordingPipeline:
    return RecordingPipeline()


def invert_pipeline() -> RecordingPipeline:
    return RecordingPipeline(lambda face: 255 - face)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def fit_to_template(landmarks: np.ndarray) -> np.ndarray:
    """The 2x3 photo -> crop transform FaceRestoreHelper fits (similarity, LMEDS)."""
    return cv2.estimateAffinePartial2D(
        np.asarray(landmarks, np.float64), FFHQ_TEMPLATE_512, method=cv2.LMEDS
    )[0]


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


# --------------------------------------------------------------------------- group photo


@dataclass(frozen=True)
class Placement:
    name: str  # which portrait
    centre: tuple[float, float]  # where the face box centre lands on the canvas
    scale: float
    degrees: float  # counter-clockwise as seen on screen
    mirror: bool = False


GROUP = (
    Placement("astronaut", (150.0, 170.0), 0.6, 12.0),
    Placement("grace_hopper", (390.0, 440.0), 0.42, -18.0),
    Placement("astronaut", (610.0, 190.0), 0.85, -6.0, mirror=True),
    Placement("grace_hopper", (850.0, 480.0), 0.34, 24.0),
    Placement("grace_hopper", (930.0, 160.0), 0.5, 3.0, mirror=True),
)
CANVAS_HW = (640, 1080)


@dataclass(frozen=True)
class GroupPhoto:
    image: np.ndarray  # (H, W, 3) RGB uint8
    faces: list[DetectedFace]  # in GROUP order
    source_faces: list[DetectedFace]  # each face in its (possibly mirrored) source portrait
    transforms: list[np.ndarray]  # 2x3 source -> canvas


def _source(placement: Placement) -> tuple[np.ndarray, DetectedFace]:
    image, face = portrait(placement.name), measured_face(placement.name)
    if not placement.mirror:
        return image, face
    width = image.shape[1]
    landmarks = face.landmarks.copy()
    landmarks[:, 0] = width - 1 - landmarks[:, 0]
    x0, y0, x1, y1 = face.box
    box = (width - 1 - x1, y0, width - 1 - x0, y1)
    return np.ascontiguousarray(image[:, ::-1]), DetectedFace(box, landmarks[MIRROR_ORDER], face.score)


@cache
def group_photo() -> GroupPhoto:
    """Transformed copies of the two portraits (some mirrored) on a smooth canvas; each
    copy's landmarks and box are the source's mapped by the same similarity transform."""
    height, width = CANVAS_HW
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    background = np.stack([90 + 60 * xx / width, 110 + 40 * yy / height, 140 - 50 * xx / width], axis=2)
    background += rng.normal(0, 3, background.shape)
    canvas = background.copy()
    faces, sources, transforms = [], [], []
    for placement in GROUP:
        image, face = _source(placement)
        x0, y0, x1, y1 = face.box
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        matrix = cv2.getRotationMatrix2D(tuple(centre), placement.degrees, placement.scale)
        matrix[:, 2] += np.array(placement.centre) - centre
        # A soft disc around the head, large enough for hair and chin.
        radius = 1.2 * max(x1 - x0, y1 - y0)
        disc = np.zeros(image.shape[:2], np.float32)
        cv2.circle(disc, (int(centre[0]), int(centre[1])), int(radius), 1.0, -1)
        disc = cv2.GaussianBlur(disc, (0, 0), radius / 10)
        warped = cv2.warpAffine(image.astype(np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(disc, matrix, (width, height), flags=cv2.INTER_LINEAR)[..., None]
        canvas = alpha * warped + (1 - alpha) * canvas
        corners = apply_affine(matrix, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
        box = (*corners.min(axis=0), *corners.max(axis=0))
        faces.append(DetectedFace(tuple(float(v) for v in box), apply_affine(matrix, face.landmarks), 0.9))
        sources.append(face)
        transforms.append(matrix)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return GroupPhoto(image=image, faces=faces, source_faces=sources, transforms=transforms)


class PortraitDetector:
    """The measured landmarks of whichever portrait it is shown (told apart by size)."""

    def __call__(self, image: np.ndarray) -> list[DetectedFace]:
        by_shape = {(512, 512): "astronaut", (600, 512): "grace_hopper"}
        name = by_shape.get(image.shape[:2])
        return [measured_face(name)] if name else []
