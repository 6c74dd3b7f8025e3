"""FaceRestorer's two steps (detect, restore_faces) and the one alignment path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.faces import FixedDetector, apply_affine, group_photo, invert_pipeline
from PIL import Image

from osdface.errors import ImageError
from osdface.faces import DetectedFace, FaceRestorer, PhotoHelper, RestoreOptions, align_face, square_face
from osdface.faces.detection import select_faces
from osdface.faces.paste import paste_faces
from osdface.faces.template import BORDER_RGB, FACE_SIZE, FFHQ_TEMPLATE_512
from osdface.pipeline.inputs import MIN_INPUT_SIZE, check_image


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


def test_align_face_inverts_a_known_similarity():
    """A photo made by placing the template's five points with a known similarity: align_face
    must fit that similarity's inverse and sample the photo through it. The photo is a linear
    ramp (red along x, green along y), which bilinear sampling reproduces exactly, so every crop
    pixel tells where in the photo it came from; each landmark carries its own blue mark, so a
    swapped or mirrored fit shows as well."""
    height, width = 360, 300
    angle, scale = np.deg2rad(20.0), 0.6
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = np.array([80.0, -30.0])  # part of the crop falls off the photo's right and bottom
    landmarks = FFHQ_TEMPLATE_512 @ rotation.T + shift
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    photo = np.zeros((height, width, 3), np.uint8)
    photo[..., 0] = np.rint(20 + 0.5 * xx)
    photo[..., 1] = np.rint(20 + 0.5 * yy)
    marks = (50, 100, 150, 200, 250)
    radius = 3.0
    for (x, y), value in zip(landmarks, marks):
        photo[..., 2][(xx - x) ** 2 + (yy - y) ** 2 <= radius**2] = value

    crop, affine = align_face(photo, landmarks)

    assert crop.shape == (FACE_SIZE, FACE_SIZE, 3) and crop.dtype == np.uint8
    assert affine.shape == (2, 3)
    inverse = np.linalg.inv(rotation)
    np.testing.assert_allclose(affine, np.hstack([inverse, (-inverse @ shift)[:, None]]), atol=1e-3)
    np.testing.assert_allclose(apply_affine(affine, landmarks), FFHQ_TEMPLATE_512, atol=1e-3)
    # Each template point shows its own landmark's mark, in order.
    at = np.rint(FFHQ_TEMPLATE_512).astype(int)
    assert crop[at[:, 1], at[:, 0], 2].tolist() == list(marks)
    # Every crop pixel comes from the photo point the known similarity sends it to.
    v, u = np.mgrid[0:FACE_SIZE, 0:FACE_SIZE].astype(np.float64)
    source = np.stack([u, v], axis=-1) @ rotation.T + shift
    sx, sy = source[..., 0], source[..., 1]
    inside = (sx > 1) & (sx < width - 2) & (sy > 1) & (sy < height - 2)
    outside = (sx < -1) | (sx > width) | (sy < -1) | (sy > height)
    assert inside.mean() > 0.5 and outside.mean() > 0.05  # both cases are really exercised
    assert np.abs(crop[..., 0][inside] - (20 + 0.5 * sx[inside])).max() <= 1.0
    assert np.abs(crop[..., 1][inside] - (20 + 0.5 * sy[inside])).max() <= 1.0
    # The marks appear only around the template points: a disc of the photo, 1 / scale larger
    # in the crop, plus the pixel the bilinear sampling blends in.
    marked = inside & (crop[..., 2] > 0)
    distance = np.linalg.norm(np.stack([u, v], -1)[marked][:, None] - FFHQ_TEMPLATE_512, axis=2).min(axis=1)
    assert distance.max() <= (radius + 1.5) / scale
    # Off the photo the crop is facexlib's grey.
    assert (crop[outside] == BORDER_RGB).all()


def test_align_face_refuses_landmarks_without_a_similarity():
    group = group_photo()
    with pytest.raises(ImageError, match="do not define a similarity transform"):
        align_face(group.image, np.zeros((5, 2)))


def test_square_face():
    assert square_face(np.zeros((256, 256, 3), np.uint8)).size == (FACE_SIZE, FACE_SIZE)
    assert square_face(np.zeros((512, 509, 3), np.uint8)).size == (FACE_SIZE, FACE_SIZE)  # within 1%
    with pytest.raises(ImageError, match=r"must be square \(it is 400x512\)") as caught:
        square_face(np.zeros((512, 400, 3), np.uint8))
    assert caught.value.fix == "restore it as a whole photo instead"


def test_aligned_faces_under_the_pipelines_minimum_are_refused_with_its_message():
    # A 1x1 or 4x4 "face" used to be enlarged to 512x512 and restored; the pipeline itself
    # refuses such faces, and so does the aligned path now, before resizing.
    with pytest.raises(ImageError) as pipeline_says:
        check_image(Image.new("RGB", (4, 4)), "image[0]")
    with pytest.raises(ImageError) as aligned_says:
        square_face(np.zeros((4, 4, 3), np.uint8))
    assert aligned_says.value.reason == pipeline_says.value.reason
    assert aligned_says.value.reason == f"the face is only 4x4 pixels; at least {MIN_INPUT_SIZE} are needed"
    restorer = _restorer([])
    for side in (1, MIN_INPUT_SIZE - 1):
        with pytest.raises(ImageError, match=f"only {side}x{side} pixels"):
            restorer.restore(np.zeros((side, side, 3), np.uint8), aligned=True)
        assert restorer.pipeline.batches == []
    assert square_face(np.zeros((MIN_INPUT_SIZE, MIN_INPUT_SIZE, 3), np.uint8)).size == (FACE_SIZE, FACE_SIZE)


def _face_at(cx: float, cy: float, size: float) -> DetectedFace:
    landmarks = (FFHQ_TEMPLATE_512 - 256) / 512 * size * 2 + [cx, cy]
    box = (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2)
    return DetectedFace(box=box, landmarks=landmarks, score=0.99)


def test_only_center_face_keeps_the_centre_face_also_with_max_faces():
    # max_faces used to cut to the largest faces first: with a larger face in the corner,
    # --only-center-face --max-faces 1 restored the corner face.
    centre, corner = _face_at(400, 300, 60), _face_at(80, 80, 120)
    shape = (600, 800, 3)
    for max_faces in (None, 1, 2):
        options = RestoreOptions(only_center_face=True, max_faces=max_faces)
        assert [f.box for f in select_faces([corner, centre], shape, options)] == [centre.box]
    assert [f.box for f in select_faces([corner, centre], shape, RestoreOptions(max_faces=1))] == [corner.box]
