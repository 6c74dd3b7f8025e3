"""FaceRestorer with the real (tiny, random) OSDFacePipeline: the restored face is pasted where
the face was, the rest of the photo is untouched, results are reproducible and do not depend
on how faces are batched."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers.faces import FixedDetector, group_photo, measured_face, portrait

from osdface.faces import FaceRestorer

pytestmark = pytest.mark.slow


def outside_crop_square(shape: tuple[int, ...], affines) -> np.ndarray:
    """Pixels no 512x512 crop square (mapped back, plus a 2-pixel margin) touches."""
    height, width = shape[:2]
    covered = np.zeros((height, width), np.uint8)
    for affine in affines:
        square = cv2.warpAffine(
            np.ones((512, 512), np.uint8), cv2.invertAffineTransform(affine), (width, height)
        )
        covered |= cv2.dilate(square, np.ones((5, 5), np.uint8))
    return covered == 0


def test_tiny_pipeline_restores_the_face_in_place(tiny_pipeline):
    photo = portrait("grace_hopper")
    restorer = FaceRestorer(tiny_pipeline, FixedDetector([measured_face("grace_hopper")]))
    result = restorer.restore(photo, seed=0, color_fix="adain")
    out = np.asarray(result.image)
    assert out.shape == photo.shape and not result.no_face_found
    (face,) = result.faces
    restored = np.asarray(face.restored_crop).astype(int)
    assert (
        face.restored_crop.size == (512, 512) and np.abs(restored - np.asarray(face.input_crop)).mean() > 1.0
    )
    # Inside the face the output is the restored crop mapped back; outside the square, the photo.
    x, y = (int(round(v)) for v in face.landmarks[2])
    back = cv2.warpAffine(
        np.asarray(face.restored_crop),
        cv2.invertAffineTransform(face.affine),
        (photo.shape[1], photo.shape[0]),
    )
    patch = (slice(y - 4, y + 5), slice(x - 4, x + 5))
    assert np.abs(out[patch].astype(int) - back[patch]).mean() < 3.0
    assert np.abs(out[patch].astype(int) - photo[patch]).mean() > 3.0
    far = outside_crop_square(photo.shape, [face.affine])
    np.testing.assert_array_equal(out[far], photo[far])
    assert {"vre", "vae_encode", "unet", "vae_decode", "restore", "paste"} <= set(result.timings)


def test_batching_does_not_change_the_result(tiny_pipeline):
    group = group_photo()
    faces = [group.faces[0], group.faces[3]]  # the two smallest copies
    restorer = FaceRestorer(tiny_pipeline, FixedDetector(faces))
    together = restorer.restore(group.image, seed=5, batch_size=2)
    alone = restorer.restore(group.image, seed=5, batch_size=1)
    for a, b in zip(together.faces, alone.faces):
        difference = np.abs(np.asarray(a.restored_crop).astype(int) - np.asarray(b.restored_crop))
        assert difference.max() <= 2 and difference.mean() < 0.05
    assert np.abs(np.asarray(together.image).astype(int) - np.asarray(alone.image)).max() <= 2
