"""The face geometry OSDFace works in, defined once: 512x512 crops aligned to facexlib's FFHQ
five-point template, filled with facexlib's grey where the crop leaves the photo.

Every aligned crop in the package (the restorer, the app's clean-face crop, eval-fr) is made
here, with the same fit (a similarity transform, ``cv2.LMEDS``, as ``FaceRestoreHelper``)
and the same warp, so they line up pixel for pixel.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from osdface.errors import ImageError
from osdface.pipeline.inputs import MIN_INPUT_SIZE

# The side of an aligned face crop in pixels, which is also the pipeline's input and output size.
FACE_SIZE = 512
# facexlib's five-point FFHQ template for 512x512 crops (FaceRestoreHelper, template_3points=False):
# image-left eye, image-right eye, nose tip, left and right mouth corners, (x, y) pixels.
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ]
)
# FaceRestoreHelper fills outside the photo with (135, 133, 132) in its BGR order.
BORDER_RGB = (132, 133, 135)
# An aligned face may be this far from square (relative), e.g. 512x509 after a careless crop.
SQUARE_TOLERANCE = 0.01


def similarity_to_template(landmarks: np.ndarray) -> np.ndarray | None:
    """Five (x, y) landmarks -> the (2, 3) float64 photo -> crop transform, or None when the
    points do not define one (a broken detector)."""
    affine = cv2.estimateAffinePartial2D(
        np.asarray(landmarks, np.float64), FFHQ_TEMPLATE_512, method=cv2.LMEDS
    )[0]
    if affine is None or not np.isfinite(affine).all() or abs(np.linalg.det(affine[:, :2])) <= 1e-12:
        return None
    return affine


def warp_to_template(image: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB uint8 photo -> (512, 512, 3) RGB uint8 crop through ``affine``."""
    return cv2.warpAffine(
        image,
        np.asarray(affine, dtype=np.float64),
        (FACE_SIZE, FACE_SIZE),
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=BORDER_RGB,
    )


def align_face(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) RGB uint8 photo + five landmarks -> ((512, 512, 3) RGB uint8 crop, affine)."""
    affine = similarity_to_template(landmarks)
    if affine is None:
        raise ImageError(
            "the five face landmarks do not define a similarity transform", source="face detector"
        )
    return warp_to_template(image, affine), affine


def square_face(image: np.ndarray) -> Image.Image:
    """An already aligned (H, W, 3) RGB uint8 face -> PIL RGB 512x512 (Lanczos when resized).
    A face under the pipeline's ``MIN_INPUT_SIZE`` is refused as the pipeline refuses it: once
    enlarged to 512x512 it would pass, and a 512x512 face be invented from a few pixels."""
    height, width = image.shape[:2]
    if abs(height - width) > SQUARE_TOLERANCE * max(height, width):
        raise ImageError(
            f"an aligned face must be square (it is {width}x{height})",
            fix="restore it as a whole photo instead",
        )
    if min(height, width) < MIN_INPUT_SIZE:  # the reason of osdface.pipeline.inputs.check_image
        raise ImageError(f"the face is only {width}x{height} pixels; at least {MIN_INPUT_SIZE} are needed")
    face = Image.fromarray(np.ascontiguousarray(image), mode="RGB")
    if face.size != (FACE_SIZE, FACE_SIZE):
        face = face.resize((FACE_SIZE, FACE_SIZE), Image.Resampling.LANCZOS)
    return face
