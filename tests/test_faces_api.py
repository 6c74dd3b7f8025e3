"""FaceRestorer's two steps (detect, restore_faces) and the one alignment path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_faces_support import FixedDetector, group_photo, invert_pipeline

from osdface.errors import ImageError
from osdface.faces import FaceRestorer, PhotoHelper, RestoreOptions, align_face, square_face
from osdface.faces.paste import paste_faces
from osdface.faces.template import BORDER_RGB, FACE_SIZE, warp_to_template


def _restorer(faces, **options):
    return FaceRestorer(
        invert_pipeline(), detector=FixedDetector(faces), options=RestoreOptions(seed=0, **options)
    )


def test_detect_selects_and_counts():
    group = group_photo()
    restorer = _restorer(group.faces, max_faces=2)
    detection = restorer.detect(group.image)
    assert detection.found == 5 and len(detection.faces) == 2
    # the two largest boxes, left to right
    areas = sorted(((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in group.faces), reverse=True)[:2]
    got = sorted((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in detection.faces)
    np.testing.assert_allclose(sorted(areas), got)
    assert detection.faces[0].box[0] < detection.faces[1].box[0]


def test_restore_is_detect_then_restore_faces():
    group = group_photo()
    restorer = _restorer(group.faces)
    whole = restorer.restore(group.image)
    detector = restorer.detector
    calls = detector.calls
    two_steps = restorer.restore_faces(group.image, restorer.detect(group.image).faces)
    assert detector.calls == calls + 1  # restore_faces itself detects nothing
    np.testing.assert_array_equal(np.asarray(whole.image), np.asarray(two_steps.image))
    assert "detect" in whole.timings and "detect" not in two_steps.timings
    assert len(two_steps.faces) == 5


def test_restore_faces_matches_facexlibs_helper():
    """Our alignment and paste-back give exactly what facexlib's FaceRestoreHelper steps give
    (its align_warp_face and get_inverse_affine, then osdface.faces.paste on its matrices)."""
    group = group_photo()
    faces = group.faces[:3]
    upscale = 2.0
    result = _restorer(faces).restore_faces(group.image, faces, upscale=upscale)

    helper = PhotoHelper(upscale_factor=upscale, face_parse=None, device=torch.device("cpu"))
    helper.input_img = np.ascontiguousarray(group.image[:, :, ::-1])
    helper.all_landmarks_5 = [face.landmarks.copy() for face in result.faces]
    helper.align_warp_face()
    helper.get_inverse_affine()
    for face, crop, affine in zip(result.faces, helper.cropped_faces, helper.affine_matrices):
        np.testing.assert_array_equal(np.asarray(face.input_crop), crop[:, :, ::-1])
        np.testing.assert_array_equal(face.affine, affine)
    restored = [np.ascontiguousarray(255 - crop) for crop in helper.cropped_faces]  # invert_pipeline
    expected = paste_faces(helper.input_img, restored, helper.inverse_affine_matrices, upscale=upscale)
    np.testing.assert_array_equal(np.asarray(result.image), expected[:, :, ::-1])


def test_restore_faces_without_faces_keeps_the_photo():
    group = group_photo()
    result = _restorer([]).restore_faces(group.image, [])
    assert result.no_face_found and result.faces == []
    np.testing.assert_array_equal(np.asarray(result.image), group.image)


def test_restore_faces_refuses_mixed_modes():
    group = group_photo()
    restorer = _restorer(group.faces)
    with pytest.raises(ValueError, match="faces=None is for aligned faces"):
        restorer.restore_faces(group.image, None)
    face = np.zeros((512, 512, 3), np.uint8)
    with pytest.raises(ValueError, match="aligned=True the photo is the face"):
        restorer.restore_faces(face, group.faces, aligned=True)
    aligned = restorer.restore_faces(face, None, aligned=True)
    assert np.asarray(aligned.image).min() == 255  # the inverted black face


def test_template_alignment():
    group = group_photo()
    face = group.faces[1]
    crop, affine = align_face(group.image, face.landmarks)
    assert crop.shape == (FACE_SIZE, FACE_SIZE, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(warp_to_template(group.image, affine), crop)
    # outside the photo the crop is facexlib's grey
    far = np.array([[1.0, 0.0, 1e5], [0.0, 1.0, 1e5]])
    assert (warp_to_template(group.image, far) == BORDER_RGB).all()
    with pytest.raises(ImageError, match="do not define a similarity transform"):
        align_face(group.image, np.zeros((5, 2)))


def test_square_face():
    assert square_face(np.zeros((256, 256, 3), np.uint8)).size == (FACE_SIZE, FACE_SIZE)
    assert square_face(np.zeros((512, 509, 3), np.uint8)).size == (FACE_SIZE, FACE_SIZE)  # within 1%
    with pytest.raises(ImageError, match=r"must be square \(it is 400x512\)") as caught:
        square_face(np.zeros((512, 400, 3), np.uint8))
    assert caught.value.fix == "restore it as a whole photo instead"
