"""Steady landmarks over time: the One Euro filter (Casiez, Roussel and Vogel, CHI 2012).

A detector's five landmarks move by a pixel or two from frame to frame even on a face that
keeps still, and each move shifts the aligned crop and the paste-back mask: the restored face
shimmers at its border. The One Euro filter is a low-pass filter whose cut-off frequency rises
with the speed of the signal: a still face is smoothed hard (no jitter), a moving one lightly
(no lag). Its two settings:

- ``min_cutoff`` (Hz): the cut-off when the face is still; lower is steadier, with more lag
  on slow moves;
- ``beta``: how fast the cut-off rises with speed; higher follows quick moves better.

Speeds here are measured in face sizes per second (the landmarks are divided by the face's
size, the distance between the eye centre and the mouth centre), so one setting suits a face
of 40 pixels and one of 400. Time comes from each frame's timestamp, so a clip with a variable
frame rate is filtered as it was filmed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroSettings:
    """The filter's settings (see the module docstring); ``enabled=False`` passes the
    detector's landmarks through unchanged (to measure what the filter gains)."""

    min_cutoff: float = 1.0
    beta: float = 1.5
    d_cutoff: float = 1.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if not self.min_cutoff > 0:
            raise ValueError(f"min_cutoff must be > 0 Hz, got {self.min_cutoff!r}")
        if not self.beta >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta!r}")
        if not self.d_cutoff > 0:
            raise ValueError(f"d_cutoff must be > 0 Hz, got {self.d_cutoff!r}")


def face_size(landmarks: np.ndarray) -> float:
    """The distance from the eyes' midpoint to the mouth's midpoint: about a third of a face's
    height, and unlike a box it does not depend on the detector's margin."""
    points = np.asarray(landmarks, dtype=np.float64)
    eyes = (points[0] + points[1]) / 2
    mouth = (points[3] + points[4]) / 2
    return max(float(np.linalg.norm(mouth - eyes)), 1.0)


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters one face's (5, 2) landmarks; one filter per tracked face.

    ``__call__(landmarks, t)`` returns the filtered landmarks at time ``t`` (seconds);
    ``predict(t)`` extrapolates the last filtered position with its filtered velocity (for
    frames where the face is not detected). Times must increase; a repeated time returns the
    last value.
    """

    def __init__(self, settings: OneEuroSettings | None = None):
        self.settings = settings or OneEuroSettings()
        self._value: np.ndarray | None = None  # (5, 2) float64 pixels
        self._velocity: np.ndarray | None = None  # (5, 2) pixels per second, filtered
        self._time: float | None = None

    @property
    def value(self) -> np.ndarray | None:
        return None if self._value is None else self._value.copy()

    def __call__(self, landmarks: np.ndarray, t: float) -> np.ndarray:
        points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
        settings = self.settings
        if not settings.enabled:
            self._velocity = (
                np.zeros_like(points)
                if self._value is None or self._time is None or t <= self._time
                else (points - self._value) / (t - self._time)
            )
            self._value, self._time = points.copy(), float(t)
            return points.copy()
        if self._value is None or self._time is None:
            self._value, self._velocity, self._time = points.copy(), np.zeros_like(points), float(t)
            return points.copy()
        dt = float(t) - self._time
        if dt <= 0:
            return self._value.copy()
        size = face_size(self._value)
        velocity = (points - self._value) / dt
        a_d = _alpha(settings.d_cutoff, dt)
        self._velocity = a_d * velocity + (1 - a_d) * self._velocity
        # Speed in face sizes per second, per coordinate, as the paper filters each value.
        cutoff = settings.min_cutoff + settings.beta * np.abs(self._velocity) / size
        a = _alpha(cutoff, dt)
        self._value = a * points + (1 - a) * self._value
        self._time = float(t)
        return self._value.copy()

    def predict(self, t: float) -> np.ndarray:
        """Where the face should be at ``t`` if it keeps moving as it did (no state change)."""
        if self._value is None or self._time is None:
            raise ValueError("predict() before any landmarks were filtered")
        dt = max(float(t) - self._time, 0.0)
        return self._value + self._velocity * dt
