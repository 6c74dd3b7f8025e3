"""The image work of the app's requests: the turbulent copy, the clean face where the restored
one was cropped, and the PNGs. Images are (H, W, 3) RGB uint8 unless said otherwise.

The simulator and the face package (torch, OpenCV) load on first use (``osdface.lazy``): the app
shows its page, and its missing-weights banner, before they are imported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from osdface import degradations, faces, images
from osdface.app.requests import MAX_TURBULENCE_MEGAPIXELS, MODE_ALIGNED, RequestError
from osdface.app.results import PreparedRestore
from osdface.files import save_png_atomic


def add_turbulence(image: np.ndarray, propagation_length: float, seed: int) -> np.ndarray:
    """(H, W, 3) RGB uint8 -> its turbulent copy, same format."""
    height, width = image.shape[:2]
    if height * width > MAX_TURBULENCE_MEGAPIXELS * 1e6:
        raise RequestError(
            f"The turbulence simulator takes images up to {MAX_TURBULENCE_MEGAPIXELS:g} megapixels, and this "
            f"one is {width}x{height} = {height * width / 1e6:.1f} megapixels. Downscale it, or switch "
            "turbulence off."
        )
    if min(height, width) < 32:
        raise RequestError(
            f"The image is only {width}x{height} pixels; the turbulence simulator needs 32x32 or more."
        )
    return degradations.simulate_turbulence(
        image, degradations.TurbulenceParams(propagation_length=float(propagation_length)), seed=seed
    )


def clean_crop(prepared: PreparedRestore, affine: np.ndarray) -> Image.Image:
    """The clean input's face where the turbulent face was cropped (same alignment), 512x512."""
    if prepared.request.mode == MODE_ALIGNED:
        return faces.square_face(prepared.clean)
    return images.to_pil(faces.warp_to_template(prepared.clean, affine))


def save_png(image: Image.Image | np.ndarray, path: Path) -> Path:
    """Write a PIL image or an (H, W, 3) RGB uint8 array as PNG; return its path. Level 3
    instead of 6: large photos are written a few times faster for about 10% more bytes."""
    return save_png_atomic(image, path, compress_level=3)
