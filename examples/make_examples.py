"""Regenerate the app's example images from two public-domain portraits.

    python examples/make_examples.py            # writes examples/*.jpg (deterministic)

Sources (see SOURCES.md): ``skimage.data.astronaut()`` (NASA photo, scikit-image) and
matplotlib's sample ``grace_hopper.jpg`` (US Navy photo). Their five facial landmarks come
from ``tests/fixtures/faces/landmarks.json`` (measured with dlib's 68-point model).

For each portrait NAME it writes:

* ``NAME.jpg``: the photo as shipped (whole-photo mode);
* ``NAME_classic.jpg``, ``NAME_turbulence.jpg``: the photo degraded by the project's own
  classic degradation (blur, downsampling, noise, JPEG) and turbulence simulator (30 km);
* ``NAME_aligned.jpg``: the face aligned to the FFHQ template at 512x512 (aligned mode), the
  similarity transform that maps the landmarks onto the template, as facexlib computes it;
* ``NAME_aligned_classic.jpg``, ``NAME_aligned_turbulence.jpg``: degraded copies of it
  (turbulence at 40 km).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from osdface.degradations import TurbulenceParams, classic_degradation, simulate_turbulence
from osdface.faces import FACE_SIZE, FFHQ_TEMPLATE_512

HERE = Path(__file__).resolve().parent
LANDMARKS = HERE.parent / "tests" / "fixtures" / "faces" / "landmarks.json"
JPEG_QUALITY = 92
PHOTO_TURBULENCE = TurbulenceParams(propagation_length=30_000.0)
# The simulator's pixel pitch is fixed, so an aligned face is a "large" scene: the longest
# path keeps its turbulence as visible as the photo's.
FACE_TURBULENCE = TurbulenceParams(propagation_length=40_000.0)
# A whole photo's faces are small (90-190 pixels): a milder recipe keeps them recognisable.
PHOTO_CLASSIC = {"sigma": 1.5, "scale": 2.0, "noise": 8.0, "jpeg_quality": 50}
# On a 512x512 face, the usual CelebA-Test-like strength.
FACE_CLASSIC = {"sigma": 3.0, "scale": 4.0, "noise": 10.0, "jpeg_quality": 60}
# facexlib fills the outside of an alignment crop with this colour (RGB).
CROP_BORDER_RGB = (132, 133, 135)


def portraits() -> dict[str, np.ndarray]:
    """Name -> (H, W, 3) RGB uint8."""
    import matplotlib.cbook
    import skimage.data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        hopper = np.array(Image.open(handle).convert("RGB"))
    return {"astronaut": np.array(skimage.data.astronaut()), "grace_hopper": hopper}


def align(photo: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The face with these five landmarks, warped onto the 512x512 FFHQ template."""
    affine = cv2.estimateAffinePartial2D(landmarks, FFHQ_TEMPLATE_512, method=cv2.LMEDS)[0]
    return cv2.warpAffine(
        photo, affine, (FACE_SIZE, FACE_SIZE), borderMode=cv2.BORDER_CONSTANT, borderValue=CROP_BORDER_RGB
    )


def save(image: np.ndarray, name: str, folder: Path = HERE) -> Path:
    path = folder / f"{name}.jpg"
    Image.fromarray(image).save(path, quality=JPEG_QUALITY, optimize=True)
    return path


def aligned_faces() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Name -> (photo, its face aligned to the FFHQ template), both (H, W, 3) RGB uint8."""
    measured = json.loads(LANDMARKS.read_text())
    result = {}
    for name, photo in portraits().items():
        expected = tuple(measured[name]["image_size_hw"])
        if photo.shape[:2] != expected:
            raise RuntimeError(f"{name}: expected a {expected} image, the package ships {photo.shape[:2]}")
        result[name] = (photo, align(photo, np.asarray(measured[name]["landmarks5_xy"], dtype=np.float64)))
    return result


def main(folder: Path = HERE) -> list[Path]:
    written = []
    for seed, (name, (photo, face)) in enumerate(aligned_faces().items()):
        written += [
            save(photo, name, folder),
            save(classic_degradation(photo, seed=seed, **PHOTO_CLASSIC), f"{name}_classic", folder),
            save(simulate_turbulence(photo, PHOTO_TURBULENCE, seed=seed), f"{name}_turbulence", folder),
            save(face, f"{name}_aligned", folder),
            save(classic_degradation(face, seed=seed, **FACE_CLASSIC), f"{name}_aligned_classic", folder),
            save(simulate_turbulence(face, FACE_TURBULENCE, seed=seed), f"{name}_aligned_turbulence", folder),
        ]
    for path in written:
        print(f"{path}  {path.stat().st_size / 1024:.0f} KB")
    return written


if __name__ == "__main__":
    main()
