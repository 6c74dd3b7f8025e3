"""What ``FaceRestorer`` is asked to do (``RestoreOptions``) and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from osdface.choices import ColorFix
from osdface.images.reading import DEFAULT_MAX_PIXELS

# torch.Generator takes seeds below 2**64: with seeds below 2**63, seed + i (face i, track i in
# clips) stays within it for any number of faces.
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class RestoredFace:
    """One restored face. ``box``, ``landmarks`` (5, 2) and ``affine`` (2x3, photo -> crop
    pixels) are in the coordinates of the input photo (before ``upscale``); ``score`` is the
    detector's (None in aligned mode); the crops are PIL RGB 512x512."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float | None
    input_crop: Image.Image
    restored_crop: Image.Image
    affine: np.ndarray


@dataclass
class RestoreResult:
    """``image``: the whole photo (PIL RGB; its size times ``upscale``) with every face restored,
    or the photo unchanged (resampled if ``upscale`` > 1) when ``no_face_found``.
    ``timings``: seconds per stage: ``detect``, ``align``, ``restore`` (pipeline calls),
    ``paste``, ``total``, plus the pipeline's own stages (``vre``, ``unet``, ...) summed."""

    image: Image.Image
    faces: list[RestoredFace]
    no_face_found: bool
    timings: dict[str, float] = field(default_factory=dict)
    upscale: float = 1.0


@dataclass(frozen=True)
class RestoreOptions:
    """What ``FaceRestorer.restore`` does with one photo.

    aligned: the input is already an aligned face: skip detection, resize it to 512x512 if
        needed and return the restored 512x512 face (times ``upscale``).
    only_center_face: keep only the face nearest the image centre, chosen among all the faces
        found (before ``max_faces``, which then changes nothing).
    min_face_size: drop faces whose box is smaller than this many pixels (shorter side):
        restoring a face a few pixels wide would invent one.
    max_faces: keep at most this many faces, the largest boxes (None: all).
    prompt, color_fix: passed to the pipeline (None: VRE conditioning, no colour fix).
    upscale: output scale of the whole photo (>= 1); the background is Lanczos-resampled.
    batch_size: faces per pipeline call.
    seed: seeds face i's VAE posterior sample with ``seed + i`` (one generator per face), so
        a result does not depend on ``batch_size``; None: unseeded. At most ``MAX_SEED``.
    max_pixels: refuse inputs with more pixels (see ``osdface.images.reading.load_image``).
    max_output_pixels: refuse outputs (after ``upscale``) with more pixels.
    """

    aligned: bool = False
    only_center_face: bool = False
    min_face_size: float = 16.0
    max_faces: int | None = None
    prompt: str | None = None
    color_fix: str | None = None
    upscale: float = 1.0
    batch_size: int = 4
    seed: int | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_output_pixels: int | None = 4 * DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not 1.0 <= float(self.upscale) <= 8.0:
            raise ValueError(f"upscale must be between 1 and 8, got {self.upscale!r}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size!r}")
        if not float(self.min_face_size) >= 0:  # NaN compares false both ways
            raise ValueError(f"min_face_size must be a number >= 0, got {self.min_face_size!r}")
        if self.max_faces is not None and int(self.max_faces) < 1:
            raise ValueError(f"max_faces must be None or at least 1, got {self.max_faces!r}")
        ColorFix.parse(self.color_fix)  # ValueError naming an unknown colour fix
        seed = self.seed
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED
        ):
            raise ValueError(f"seed must be None or an int from 0 to {MAX_SEED} (2**63 - 1), got {seed!r}")
