"""Which face is which from frame to frame: a small IoU tracker with steady landmarks.

Each face found in a clip gets a track: an id (which also seeds its VAE sample, so its noise
does not change from frame to frame), a One Euro filter on its five landmarks
(``osdface.video.smoothing``) and a predicted box for the next frame. A new frame's faces are
matched to the tracks' predicted boxes by intersection over union with the Hungarian method
(``scipy.optimize.linear_sum_assignment``), so two faces that cross keep their ids as long as
their motion carries them; a track that finds no face keeps its id for ``max_misses`` frames
(a turned head, a hand in front), and for the first ``coast_frames`` of those its predicted
landmarks are still restored, so a face missed by the detector for one frame does not flash
back to its unrestored self.

Why our own: the maintained trackers (ByteTrack in ``supervision``, ``norfair``) track boxes
from a Kalman filter and bring their own dependencies (``supervision`` asks for the GUI build
of OpenCV, which needs libGL); what faces in a clip need is little more than this matching,
and the landmark filter that steadies the crop is the part that matters.

With ``detect_every`` = k > 1 the detector runs on every k-th frame; the frames between take
each track's predicted landmarks. Misses are counted in frames, skipped ones included, so
``coast_frames`` and ``max_misses`` mean the same time whatever k is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from osdface.faces.detection import DetectedFace
from osdface.video.smoothing import OneEuroFilter, OneEuroSettings


@dataclass(frozen=True)
class TrackerSettings:
    """detect_every: run the detector on every k-th frame (1: every frame);
    max_misses: frames a track keeps its id without a matching face;
    coast_frames: of those, how many are still restored at the predicted place;
    min_iou: the least overlap between a predicted box and a face to match them;
    smoothing: the landmarks' One Euro filter."""

    detect_every: int = 1
    max_misses: int = 15
    coast_frames: int = 2
    min_iou: float = 0.2
    smoothing: OneEuroSettings = field(default_factory=OneEuroSettings)

    def __post_init__(self) -> None:
        if int(self.detect_every) < 1:
            raise ValueError(f"detect_every must be at least 1, got {self.detect_every!r}")
        if int(self.max_misses) < 0 or int(self.coast_frames) < 0:
            raise ValueError(
                f"max_misses and coast_frames must be >= 0, got {self.max_misses!r}, {self.coast_frames!r}"
            )
        if not 0.0 <= float(self.min_iou) < 1.0:
            raise ValueError(f"min_iou must be in [0, 1), got {self.min_iou!r}")


@dataclass(frozen=True)
class TrackedFace:
    """A face to restore in one frame: its track's id, the steadied (5, 2) landmarks and box
    in frame pixels, and whether the detector saw it in this frame (False: predicted)."""

    track_id: int
    landmarks: np.ndarray
    box: tuple[float, float, float, float]
    detected: bool


@dataclass
class _Track:
    track_id: int
    filter: OneEuroFilter
    box: np.ndarray  # (4,) the last matched detection's box, moved with the landmarks
    landmarks: np.ndarray  # (5, 2) the last filtered landmarks
    time: float
    misses: int = 0  # frames since the last match, skipped frames included
    matched_last: bool = True  # whether the last detection found it

    def predicted(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(box, landmarks) expected at ``t``: the box moves with the landmarks' centre."""
        landmarks = self.filter.predict(t)
        shift = landmarks.mean(axis=0) - self.landmarks.mean(axis=0)
        return self.box + np.tile(shift, 2), landmarks


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class FaceTracker:
    """Feed it each frame's faces in order; it returns the faces to restore with their ids.

    ``update(t, faces)``, once per frame: ``t`` the frame's time in seconds, ``faces`` the
    detector's faces (already selected by size) or None on a frame where the detector did not
    run. ``max_faces``: the most faces returned for a frame (the detector's own first, then
    the predicted ones). Deterministic: the same faces in the same order give the same ids and
    landmarks.
    """

    def __init__(self, settings: TrackerSettings | None = None, max_faces: int | None = None):
        self.settings = settings or TrackerSettings()
        self.max_faces = max_faces
        self._tracks: list[_Track] = []
        self._next_id = 0

    @property
    def tracks_started(self) -> int:
        return self._next_id

    def update(self, t: float, faces: Sequence[DetectedFace] | None) -> list[TrackedFace]:
        if faces is None:
            return self._coast(t)
        predictions = [track.predicted(t) for track in self._tracks]
        pairs = self._match([box for box, _ in predictions], faces)
        matched_tracks = {track for track, _ in pairs}
        matched_faces = {face for _, face in pairs}
        shown: list[TrackedFace] = []
        for track_index, face_index in pairs:
            track, face = self._tracks[track_index], faces[face_index]
            landmarks = track.filter(face.landmarks, t)
            shift = landmarks.mean(axis=0) - np.asarray(face.landmarks, np.float64).mean(axis=0)
            track.box = np.asarray(face.box, np.float64) + np.tile(shift, 2)
            track.landmarks, track.time, track.misses, track.matched_last = landmarks, t, 0, True
            shown.append(TrackedFace(track.track_id, landmarks.copy(), _box(track.box), True))
        kept: list[_Track] = []
        coasting: list[TrackedFace] = []
        for index, track in enumerate(self._tracks):
            if index not in matched_tracks:
                track.misses += 1
                track.matched_last = False
                if track.misses > self.settings.max_misses:
                    continue
                if track.misses <= self.settings.coast_frames:
                    box, landmarks = predictions[index]
                    coasting.append(TrackedFace(track.track_id, landmarks, _box(box), False))
            kept.append(track)
        for index, face in enumerate(faces):
            if index not in matched_faces:
                kept.append(self._start(face, t))
                track = kept[-1]
                shown.append(TrackedFace(track.track_id, track.landmarks.copy(), _box(track.box), True))
        self._tracks = kept
        return self._capped(shown + coasting)

    def _coast(self, t: float) -> list[TrackedFace]:
        """A frame the detector skipped: the tracks the last detection found at their predicted
        place, and those it missed while they may still coast (misses counted in frames, so
        ``coast_frames`` means frames whatever ``detect_every`` is)."""
        found, coasting = [], []
        for track in self._tracks:
            track.misses += 1
            if track.matched_last or track.misses <= self.settings.coast_frames:
                box, landmarks = track.predicted(t)
                face = TrackedFace(track.track_id, landmarks, _box(box), False)
                (found if track.matched_last else coasting).append(face)
        return self._capped(found + coasting)

    def _capped(self, faces: list[TrackedFace]) -> list[TrackedFace]:
        """The first ``max_faces`` of ``faces`` (given most wanted first), in track order."""
        if self.max_faces is not None:
            faces = faces[: self.max_faces]
        return sorted(faces, key=lambda face: face.track_id)

    def _match(self, boxes: list[np.ndarray], faces: Sequence[DetectedFace]) -> list[tuple[int, int]]:
        if not boxes or not faces:
            return []
        overlap = np.array([[iou(box, np.asarray(face.box, np.float64)) for face in faces] for box in boxes])
        rows, cols = linear_sum_assignment(-overlap)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if overlap[r, c] >= self.settings.min_iou]

    def _start(self, face: DetectedFace, t: float) -> _Track:
        track_filter = OneEuroFilter(self.settings.smoothing)
        landmarks = track_filter(face.landmarks, t)
        track = _Track(self._next_id, track_filter, np.asarray(face.box, np.float64), landmarks, t)
        self._next_id += 1
        return track


def _box(box: np.ndarray) -> tuple[float, float, float, float]:
    return tuple(float(v) for v in box)
