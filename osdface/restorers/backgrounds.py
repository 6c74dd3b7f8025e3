"""Backgrounds for ``--upscale``: the photo is enlarged first, then the restored faces are
pasted onto it (``osdface.faces.FaceRestorer(background=...)``).

``BACKGROUNDS``: ``none`` (no model: the paste step resamples the photo, as before),
``lanczos`` (Lanczos resampling, explicitly) and ``realesrgan-x2`` / ``realesrgan-x4``
(Real-ESRGAN x2plus / x4plus, BSD-3-Clause, loaded through spandrel from the release files,
see ``osdface.restorers.weight_files``). The network runs tile by tile with an overlap that is thrown
away, on the model's device, writing into a uint8 image: a 12-megapixel photo never needs a
full-size float tensor. Its output (the photo times the model's scale) is then resampled to
the size asked for.
"""

from __future__ import annotations

from typing import Any, Protocol

import cv2
import numpy as np
import torch

from osdface.restorers.loading import load_descriptor
from osdface.restorers.specs import BACKGROUND_LICENCES, BACKGROUNDS, REALESRGAN_FILES
from osdface.restorers.weight_files import RestorerWeights, load_state_dict
from osdface.weights.hub import WeightsUnavailableError

__all__ = [
    "BACKGROUNDS",
    "BACKGROUND_LICENCES",
    "REALESRGAN_FILES",
    "LanczosUpscaler",
    "TiledUpscaler",
    "load_background",
    "load_realesrgan",
]


class BackgroundUpscaler(Protocol):
    """(H, W, 3) RGB uint8 -> (height, width, 3) RGB uint8, the photo enlarged."""

    name: str

    def __call__(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray: ...


class LanczosUpscaler:
    name = "lanczos"

    def __call__(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``size``: (width, height)."""
        return cv2.resize(image, size, interpolation=cv2.INTER_LANCZOS4)


class TiledUpscaler:
    """A spandrel super-resolution model run tile by tile.

    tile: input pixels per tile side (before the overlap); overlap: input pixels of context on
    each side of a tile, computed and discarded, so that seams only show where the network
    looks further than that.
    """

    def __init__(self, descriptor: Any, *, name: str = "realesrgan", tile: int = 256, overlap: int = 16):
        if tile < 8 or overlap < 0:
            raise ValueError(f"tile must be >= 8 and overlap >= 0, got tile={tile}, overlap={overlap}")
        self.descriptor = descriptor.eval()
        self.name = name
        self.scale = int(descriptor.scale)
        self.tile = int(tile)
        self.overlap = int(overlap)

    @property
    def device(self) -> torch.device:
        return self.descriptor.device

    def to(self, device: str | torch.device) -> TiledUpscaler:
        self.descriptor.to(torch.device(device))
        return self

    @torch.inference_mode()
    def upscale(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) RGB uint8 -> (H * scale, W * scale, 3) RGB uint8."""
        height, width = image.shape[:2]
        s, pad = self.scale, self.overlap
        out = np.empty((height * s, width * s, 3), dtype=np.uint8)
        for y0 in range(0, height, self.tile):
            for x0 in range(0, width, self.tile):
                y1, x1 = min(y0 + self.tile, height), min(x0 + self.tile, width)
                ty0, tx0 = max(y0 - pad, 0), max(x0 - pad, 0)
                ty1, tx1 = min(y1 + pad, height), min(x1 + pad, width)
                patch = torch.from_numpy(np.ascontiguousarray(image[ty0:ty1, tx0:tx1])).to(self.device)
                patch = patch.permute(2, 0, 1)[None].float() / 255.0
                # spandrel pads the patch to the model's size multiple and crops the padding off
                result = self.descriptor(patch)[0].clamp(0, 1)
                result = result[:, (y0 - ty0) * s : (y1 - ty0) * s, (x0 - tx0) * s : (x1 - tx0) * s]
                out[y0 * s : y1 * s, x0 * s : x1 * s] = (
                    (result * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
                )
        return out

    def __call__(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The photo through the network, then resampled to ``size`` (width, height) if needed
        (area-averaged down, Lanczos up)."""
        enlarged = self.upscale(image)
        if (enlarged.shape[1], enlarged.shape[0]) == tuple(size):
            return enlarged
        shrink = size[0] < enlarged.shape[1]
        return cv2.resize(enlarged, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)


def load_realesrgan(
    name: str, weights: RestorerWeights | None = None, *, device: str | torch.device = "cpu", **options: Any
) -> TiledUpscaler:
    """Real-ESRGAN ``realesrgan-x2`` or ``realesrgan-x4`` as a ``TiledUpscaler`` on ``device``.
    Raises ``WeightsUnavailableError`` when the file is missing or not an ESRGAN model."""
    if name not in REALESRGAN_FILES:
        raise ValueError(f"unknown Real-ESRGAN model {name!r}; choose from {', '.join(REALESRGAN_FILES)}")
    file = REALESRGAN_FILES[name]
    path = (weights or RestorerWeights.from_env()).path(file)
    descriptor = load_descriptor(load_state_dict(path), "ESRGAN", extra_arches=False, name=str(path))
    expected = 2 if name.endswith("x2") else 4
    if descriptor.scale != expected:
        raise WeightsUnavailableError(
            f"{file.filename} is a x{descriptor.scale} model, expected x{expected}."
        )
    return TiledUpscaler(descriptor, name=name, **options).to(device)


def load_background(
    name: str, weights: RestorerWeights | None = None, *, device: str | torch.device = "cpu"
) -> BackgroundUpscaler | None:
    """The upscaler for a ``--background`` choice (None for ``none``)."""
    if name not in BACKGROUNDS:
        raise ValueError(f"unknown background {name!r}; choose from {', '.join(BACKGROUNDS)}")
    if name == "none":
        return None
    if name == "lanczos":
        return LanczosUpscaler()
    return load_realesrgan(name, weights, device=device)
