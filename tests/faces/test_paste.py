"""Box-local paste-back (osdface.faces.paste) against facexlib's own paste_faces_to_input_image, on the
same affine matrices: at most 2 grey levels apart inside a face, at most 1 outside (rounding
instead of truncating), and it is what FaceRestorer uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.faces import group_photo, measured_face, portrait

from osdface.faces import PhotoHelper as _PhotoHelper
from osdface.faces.paste import face_box, paste_faces


class EllipseParser(torch.nn.Module):
    """Stands in for ParseNet (same call and output layout): face (class 1) inside an ellipse
    that depends on the crop's brightness, so the mask follows the crop."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        yy, xx = torch.meshgrid(torch.arange(512.0), torch.arange(512.0), indexing="ij")
        width = 120 + 60 * (x.mean() + 1)
        inside = ((xx - 256) / width) ** 2 + ((yy - 300) / 190) ** 2 < 1
        logits = torch.zeros(x.shape[0], 19, 512, 512)
        logits[:, 1][:, inside] = 1.0
        logits[:, 0][:, ~inside] = 1.0
        return logits, x


def _aligned(photo_rgb, faces, upscale, parser=None):
    """A facexlib helper holding the photo (BGR), its crops and affine matrices, and crops that
    differ from the photo (inverted, so every pasted pixel shows)."""
    helper = _PhotoHelper(upscale_factor=upscale, face_parse=parser, device=torch.device("cpu"))
    helper.input_img = np.ascontiguousarray(photo_rgb[:, :, ::-1])
    helper.det_faces = [np.array([*face.box, face.score]) for face in faces]
    helper.all_landmarks_5 = [face.landmarks.copy() for face in faces]
    helper.align_warp_face()
    helper.get_inverse_affine()
    for crop in helper.cropped_faces:
        helper.add_restored_face(np.ascontiguousarray(255 - crop))
    return helper


def _both(helper, upscale, parser=None):
    inverses = [m.copy() for m in helper.inverse_affine_matrices]
    ours = paste_faces(helper.input_img, helper.restored_faces, inverses, upscale=upscale, face_parse=parser)
    # facexlib's paste adds its upscale offset to the helper's matrices in place: give it copies.
    helper.inverse_affine_matrices = [m.copy() for m in inverses]
    theirs = helper.paste_faces_to_input_image()
    for before, after in zip(inverses, [m.copy() for m in helper.inverse_affine_matrices]):
        assert upscale > 1 or np.array_equal(before, after)
    return ours, theirs, inverses


def _inside(shape, inverses, upscale):
    """Pixels of the output that some face's warped 512 square covers."""
    import cv2

    inside = np.zeros(shape[:2], bool)
    for inverse in inverses:
        matrix = inverse.copy()
        if upscale > 1:
            matrix[:, 2] += 0.5 * upscale
        warped = cv2.warpAffine(np.ones((512, 512), np.float32), matrix, (shape[1], shape[0]))
        inside |= warped > 0
    return inside


def _check(ours, theirs, inside):
    assert ours.shape == theirs.shape and ours.dtype == np.uint8
    diff = ours.astype(int) - theirs.astype(int)
    assert np.abs(diff[inside]).max() <= 2
    outside = diff[~inside]
    assert outside.min() >= 0 and outside.max() <= 1  # rounding is never below truncation
    assert (diff[inside] != 0).mean() < 0.6
    return diff


@pytest.mark.parametrize("upscale", [1.0, 2.0])
def test_group_photo_matches_facexlib(upscale):
    group = group_photo()
    helper = _aligned(group.image, group.faces, upscale)
    ours, theirs, inverses = _both(helper, upscale)
    inside = _inside(ours.shape, inverses, upscale)
    diff = _check(ours, theirs, inside)
    assert inside.mean() > 0.1  # the faces cover a good part of the photo
    assert np.abs(diff).max() >= 1  # truncation vs rounding shows somewhere


def test_face_cut_by_the_image_border_matches_facexlib():
    photo = portrait("grace_hopper")
    face = measured_face("grace_hopper")
    x0, y0, _, _ = face.box
    left, top = int(x0) + 40, int(y0) + 30  # the crop square reaches beyond the top-left corner
    cut = np.ascontiguousarray(photo[top:, left:])
    moved = type(face)(
        box=(face.box[0] - left, face.box[1] - top, face.box[2] - left, face.box[3] - top),
        landmarks=face.landmarks - [left, top],
        score=face.score,
    )
    helper = _aligned(cut, [moved], 1.0)
    ours, theirs, inverses = _both(helper, 1.0)
    box = face_box(inverses[0], ours.shape[:2], margin=0)
    assert box[:2] == (0, 0)
    _check(ours, theirs, _inside(ours.shape, inverses, 1.0))


def test_parse_mask_matches_facexlib():
    photo = portrait("astronaut")
    parser = EllipseParser()
    helper = _aligned(photo, [measured_face("astronaut")], 1.0, parser)
    ours, theirs, inverses = _both(helper, 1.0, parser)
    _check(ours, theirs, _inside(ours.shape, inverses, 1.0))


def test_pixels_far_from_faces_are_untouched():
    group = group_photo()
    helper = _aligned(group.image, group.faces[:1], 1.0)
    ours, _, inverses = _both(helper, 1.0)
    x0, y0, x1, y1 = face_box(inverses[0], ours.shape[:2], margin=40)
    outside = np.ones(ours.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(ours[outside], helper.input_img[outside])


def test_face_outside_the_output_is_skipped_and_bad_inputs_raise():
    background = np.full((64, 64, 3), 7, np.uint8)
    far = np.array([[0.1, 0.0, 500.0], [0.0, 0.1, 500.0]])
    out = paste_faces(background, [np.zeros((512, 512, 3), np.uint8)], [far])
    np.testing.assert_array_equal(out, background)
    with pytest.raises(ValueError, match="2 faces for 1"):
        paste_faces(background, [np.zeros((512, 512, 3), np.uint8)] * 2, [far])
    with pytest.raises(ValueError, match="uint8"):
        paste_faces(background.astype(np.float32), [], [])
