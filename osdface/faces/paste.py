"""Paste restored faces back into the photo, working on each face's box only.

The maths is facexlib's ``FaceRestoreHelper.paste_faces_to_input_image`` (0.3.0): warp the
restored 512x512 face with the inverse affine, build its mask (the feathered square: warp a
square of ones, erode 2x``upscale`` px, erode again by 1/10 of the face's width, Gaussian-blur
by the same; or the ParseNet face mask, blurred), blend ``mask * face + (1 - mask) * photo``.
facexlib does all of it on the whole (upscaled) frame for every face; here each step runs on the
face's bounding box plus a margin wider than the blur, which gives the same values (the mask is
zero in the margin, and the box's borders that are image borders are treated as facexlib
treats them) except for OpenCV's fixed-point warp coordinates, which depend on the origin: up to
2 grey levels inside a face. The result is rounded to uint8 (facexlib truncates, which darkens
pixels by one level wherever a face's mask is fractional).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from osdface.faces.template import FACE_SIZE

# ParseNet's 19 classes: 1 where the class belongs to the face (facexlib's paste colour map).
_PARSE_FACE_CLASSES = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0], dtype=np.float64)
_PARSE_BLUR = ((101, 101), 11)
_PARSE_BORDER = 10


def paste_faces(
    background: np.ndarray,
    faces: Sequence[np.ndarray],
    inverse_affines: Sequence[np.ndarray],
    *,
    upscale: float = 1.0,
    face_parse: torch.nn.Module | None = None,
    upsampled: np.ndarray | None = None,
) -> np.ndarray:
    """``background``: (H, W, 3) uint8 (any channel order; faces in the same order);
    ``faces``: (512, 512, 3) uint8 restored crops; ``inverse_affines``: 2x3 crop -> output pixel
    matrices, already multiplied by ``upscale`` (facexlib's ``inverse_affine_matrices``; not
    modified). ``upsampled``: the background already enlarged by a model (e.g. Real-ESRGAN, same
    channel order), used instead of Lanczos resampling, as facexlib's ``upsample_img``. Returns
    the (int(H * upscale), int(W * upscale), 3) uint8 photo."""
    if len(faces) != len(inverse_affines):
        raise ValueError(f"got {len(faces)} faces for {len(inverse_affines)} inverse affine matrices")
    if background.ndim != 3 or background.shape[2] != 3 or background.dtype != np.uint8:
        raise ValueError(f"background must be (H, W, 3) uint8, got {background.shape} {background.dtype}")
    height, width = background.shape[:2]
    out_h, out_w = int(height * upscale), int(width * upscale)
    base = background if upsampled is None else upsampled
    output = base.copy()
    if output.shape[:2] != (out_h, out_w):
        output = cv2.resize(base, (out_w, out_h), interpolation=cv2.INTER_LANCZOS4)
    for face, inverse in zip(faces, inverse_affines):
        inverse = np.array(inverse, dtype=np.float64)
        if upscale > 1:  # facexlib's half-pixel offset for upscaled outputs
            inverse[:, 2] += 0.5 * upscale
        _paste_one(output, face, inverse, upscale, face_parse)
    return output


def face_box(inverse: np.ndarray, shape: tuple[int, int], margin: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the warped crop plus ``margin``, clipped to ``shape`` (H, W); None if empty."""
    corners = np.array([[0, 0, 1], [FACE_SIZE, 0, 1], [0, FACE_SIZE, 1], [FACE_SIZE, FACE_SIZE, 1]], float)
    points = corners @ inverse.T
    x0 = max(math.floor(points[:, 0].min()) - margin, 0)
    y0 = max(math.floor(points[:, 1].min()) - margin, 0)
    x1 = min(math.ceil(points[:, 0].max()) + margin, shape[1])
    y1 = min(math.ceil(points[:, 1].max()) + margin, shape[0])
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _paste_one(output: np.ndarray, face: np.ndarray, inverse: np.ndarray, upscale: float, face_parse) -> None:
    # The blur reaches at most side / 20 pixels (side: the face's width in the output).
    side = FACE_SIZE * math.sqrt(abs(np.linalg.det(inverse[:, :2])))
    box = face_box(inverse, output.shape[:2], margin=int(side / 20) + 4)
    if box is None:
        return
    x0, y0, x1, y1 = box
    local = inverse.copy()
    local[0, 2] -= x0
    local[1, 2] -= y0
    size = (x1 - x0, y1 - y0)
    warped_face = cv2.warpAffine(face, local, size)
    if face_parse is not None:
        mask = parse_face_mask(face_parse, face)
        soft = cv2.warpAffine(mask, local, size, flags=3)[:, :, None]
        pasted = warped_face
    else:
        soft, pasted = _square_mask(local, size, upscale, warped_face)
    region = output[y0:y1, x0:x1]
    blended = soft * pasted + (1 - soft) * region
    output[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _square_mask(local: np.ndarray, size: tuple[int, int], upscale: float, warped_face: np.ndarray):
    """facexlib's feathered square mask, on the box: (soft mask (h, w, 1), masked face)."""
    inv_mask = cv2.warpAffine(np.ones((FACE_SIZE, FACE_SIZE), dtype=np.float32), local, size)
    border = int(2 * upscale)
    eroded = cv2.erode(inv_mask, np.ones((border, border), np.uint8))  # drops the warp's soft rim
    pasted = eroded[:, :, None] * warped_face
    edge = int(np.sum(eroded) ** 0.5) // 20
    center = cv2.erode(eroded, np.ones((edge * 2, edge * 2), np.uint8))
    soft = cv2.GaussianBlur(center, (edge * 2 + 1, edge * 2 + 1), 0)
    return soft[:, :, None], pasted


@torch.no_grad()
def parse_face_mask(face_parse: torch.nn.Module, face: np.ndarray) -> np.ndarray:
    """ParseNet's face mask of a (512, 512, 3) BGR uint8 crop: (512, 512) float64 in [0, 1],
    blurred twice and zero on a 10-pixel border, as facexlib pastes with."""
    face = cv2.resize(face, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LINEAR)
    rgb = face[:, :, ::-1].astype(np.float32) / 255.0
    tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    tensor = (tensor - 0.5) / 0.5
    device = next(face_parse.parameters()).device
    classes = face_parse(tensor.to(device))[0].argmax(dim=1).squeeze().cpu().numpy()
    mask = _PARSE_FACE_CLASSES[classes] * 255.0
    mask = cv2.GaussianBlur(mask, *_PARSE_BLUR)
    mask = cv2.GaussianBlur(mask, *_PARSE_BLUR)
    border = _PARSE_BORDER
    mask[:border, :] = 0
    mask[-border:, :] = 0
    mask[:, :border] = 0
    mask[:, -border:] = 0
    return mask / 255.0
