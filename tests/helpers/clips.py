"""Shared helpers for the clip tests (no tests here): a portrait that moves across a black
canvas, and a stand-in detector that finds it again in the decoded frames."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from helpers.faces import measured_face, portrait
from osdface.faces import DetectedFace

CANVAS = (320, 240)  # (width, height)
SCALE = 0.3  # grace_hopper (512x600) -> 154x180 on the canvas


@dataclass(frozen=True)
class MovingPortrait:
    """Grace Hopper's portrait at ``SCALE``, ``step`` pixels further right each frame."""

    step: int = 4
    top: int = 30

    def image(self) -> np.ndarray:
        face = portrait("grace_hopper")
        size = (round(face.shape[1] * SCALE), round(face.shape[0] * SCALE))
        # Kept off pure black so the detector can tell the portrait from the canvas.
        return np.maximum(cv2.resize(face, size, interpolation=cv2.INTER_AREA), 24)

    def left(self, index: int) -> int:
        return 8 + self.step * index

    def draw(self, index: int) -> np.ndarray:
        """(240, 320, 3) RGB uint8: frame ``index``."""
        canvas = np.zeros((CANVAS[1], CANVAS[0], 3), np.uint8)
        image = self.image()
        x, height, width = self.left(index), image.shape[0], image.shape[1]
        visible = min(width, CANVAS[0] - x)
        canvas[self.top : self.top + height, x : x + visible] = image[:, :visible]
        return canvas


class PortraitFinder:
    """A stand-in detector: the portrait's place is where the canvas is not black; its face is the
    measured one, scaled and moved there. ``jitter``: Gaussian noise (pixels) on the landmarks,
    as a real detector's; counts its calls."""

    def __init__(self, jitter: float = 0.0, seed: int = 0):
        self.jitter = jitter
        self.rng = np.random.default_rng(seed)
        self.calls = 0
        face = measured_face("grace_hopper")
        self.box = np.asarray(face.box) * SCALE
        self.landmarks = face.landmarks * SCALE

    def __call__(self, image: np.ndarray) -> list[DetectedFace]:
        self.calls += 1
        rows, cols = np.nonzero(image.max(axis=2) > 12)
        if len(rows) == 0:
            return []
        offset = np.array([cols.min(), rows.min()], dtype=np.float64)
        landmarks = self.landmarks + offset + self.rng.normal(0.0, self.jitter, (5, 2)) * (self.jitter > 0)
        box = tuple(float(v) for v in (self.box + np.tile(offset, 2)))
        return [DetectedFace(box=box, landmarks=landmarks, score=0.99)]
