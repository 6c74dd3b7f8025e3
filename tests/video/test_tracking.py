"""Faces keep their ids across frames: through misses, crossings and skipped detections."""

from __future__ import annotations

import numpy as np
import pytest

from osdface.faces.detection import DetectedFace
from osdface.faces.template import FFHQ_TEMPLATE_512
from osdface.video.smoothing import OneEuroSettings
from osdface.video.tracking import FaceTracker, TrackerSettings, iou

FPS = 25.0


def face_at(x: float, y: float, size: float = 80.0) -> DetectedFace:
    """A stand-in detection: the FFHQ template scaled to a ``size``-pixel face at (x, y)."""
    landmarks = FFHQ_TEMPLATE_512 * (size / 512) + np.array([x, y])
    return DetectedFace(box=(x, y, x + size, y + size), landmarks=landmarks, score=0.99)


def ids(faces) -> list[int]:
    return [face.track_id for face in faces]


def test_a_moving_face_keeps_one_id_and_its_landmarks_follow():
    tracker = FaceTracker()
    for index in range(50):
        x = 10 + 4 * index  # 100 pixels per second
        shown = tracker.update(index / FPS, [face_at(x, 40)])
        assert ids(shown) == [0]
        assert shown[0].detected
    assert tracker.tracks_started == 1
    np.testing.assert_allclose(shown[0].landmarks, face_at(x, 40).landmarks, atol=4.0)


def test_two_faces_that_cross_keep_their_ids():
    tracker = FaceTracker()
    seen: dict[int, list[float]] = {0: [], 1: []}
    for index in range(40):
        left = 20 + 6 * index  # moving right
        right = 260 - 6 * index  # moving left; they pass each other around frame 20
        faces = [face_at(left, 50), face_at(right, 70)]
        faces.sort(key=lambda face: face.box[0])  # a detector lists them left to right
        for face in tracker.update(index / FPS, faces):
            seen[face.track_id].append(face.box[0])
    assert tracker.tracks_started == 2
    assert np.all(np.diff(seen[0]) > 0), "track 0 moves right all the way"
    assert np.all(np.diff(seen[1]) < 0), "track 1 moves left all the way"


def test_a_short_miss_keeps_the_id_and_coasts_for_a_few_frames():
    tracker = FaceTracker(TrackerSettings(coast_frames=2, max_misses=5))
    for index in range(10):
        tracker.update(index / FPS, [face_at(100 + 2 * index, 50)])
    shown = [tracker.update((10 + k) / FPS, []) for k in range(3)]
    assert [ids(faces) for faces in shown] == [[0], [0], []]  # two predicted frames, then hidden
    assert not shown[0][0].detected
    assert shown[1][0].box[0] > shown[0][0].box[0]  # the prediction keeps moving
    back = tracker.update(13 / FPS, [face_at(126, 50)])
    assert ids(back) == [0] and back[0].detected


def test_a_long_miss_starts_a_new_track():
    tracker = FaceTracker(TrackerSettings(max_misses=3))
    tracker.update(0.0, [face_at(100, 50)])
    for k in range(1, 5):
        tracker.update(k / FPS, [])
    assert ids(tracker.update(5 / FPS, [face_at(100, 50)])) == [1]


def test_a_face_seen_in_one_frame_only():
    tracker = FaceTracker(TrackerSettings(coast_frames=1, max_misses=2))
    assert ids(tracker.update(0.0, [face_at(100, 50)])) == [0]
    assert ids(tracker.update(1 / FPS, [])) == [0]
    assert ids(tracker.update(2 / FPS, [])) == []
    assert ids(tracker.update(3 / FPS, [])) == []
    assert tracker.tracks_started == 1


def test_frames_between_detections_take_the_predicted_landmarks():
    tracker = FaceTracker(TrackerSettings(detect_every=3, smoothing=OneEuroSettings(enabled=False)))
    tracker.update(0.0, [face_at(100, 50)])
    tracker.update(3 / FPS, [face_at(106, 50)])  # 2 pixels per frame
    between = tracker.update(4 / FPS, None)
    assert ids(between) == [0] and not between[0].detected
    np.testing.assert_allclose(between[0].landmarks, face_at(108, 50).landmarks, atol=1e-6)


def test_the_same_detections_give_the_same_tracks():
    def run():
        tracker = FaceTracker()
        rng = np.random.default_rng(0)
        out = []
        for index in range(20):
            faces = [face_at(50 + 3 * index + rng.normal(), 60), face_at(300 - 2 * index, 80 + rng.normal())]
            out.append(
                [(f.track_id, f.landmarks.round(9).tolist()) for f in tracker.update(index / FPS, faces)]
            )
        return out

    assert run() == run()


def test_iou_and_settings():
    assert iou(np.array([0, 0, 10, 10]), np.array([5, 0, 15, 10])) == pytest.approx(1 / 3)
    assert iou(np.array([0, 0, 10, 10]), np.array([20, 20, 30, 30])) == 0.0
    with pytest.raises(ValueError, match="detect_every"):
        TrackerSettings(detect_every=0)
    with pytest.raises(ValueError, match="min_iou"):
        TrackerSettings(min_iou=1.0)


def test_misses_are_counted_in_frames_whatever_the_detection_interval():
    """A face in frames 0-9 that then leaves, the detector on every 5th frame: it is not shown
    once a detection misses it (2 coast frames are already past), and after more than
    ``max_misses`` frames its id is gone."""
    tracker = FaceTracker(TrackerSettings(detect_every=5, coast_frames=2, max_misses=6))
    shown_after = []
    for index in range(20):
        faces = ([face_at(100 + 2 * index, 50)] if index < 10 else []) if index % 5 == 0 else None
        shown = tracker.update(index / FPS, faces)
        assert index >= 10 or ids(shown) == [0]  # between detections too
        if index >= 10 and shown:
            shown_after.append(index)
    assert shown_after == []
    assert ids(tracker.update(20 / FPS, [face_at(140, 50)])) == [1]  # 10 frames > max_misses


def test_no_more_than_max_faces_per_frame_the_detected_ones_first():
    """max_faces=2, the detector's second choice flips between B and C: the missed one coasts,
    but never as a third face."""
    tracker = FaceTracker(max_faces=2)
    a, b, c = face_at(0, 50), face_at(200, 50), face_at(400, 50)
    for index, faces in enumerate([[a, b], [a, c], [a, b], [a, c]]):
        shown = tracker.update(index / FPS, faces)
        assert len(shown) == 2 and all(face.detected for face in shown)
    coasting = tracker.update(4 / FPS, None)
    assert len(coasting) == 2 and ids(coasting) == [0, 2]  # the two the last detection found
