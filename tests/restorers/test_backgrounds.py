"""Backgrounds for --upscale: Real-ESRGAN release files (random weights, published layout)
loaded through spandrel and run tiled; faces pasted onto the upscaled background."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.restorer_files import write_realesrgan_release
from PIL import Image

from osdface.faces import DetectedFace, FaceRestorer, RestoreOptions
from osdface.restorers.backgrounds import REALESRGAN_FILES, LanczosUpscaler, load_background, load_realesrgan
from osdface.restorers.weight_files import RestorerWeights
from osdface.weights.hub import WeightsUnavailableError


def _photo(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    smooth = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(smooth).resize((width, height), Image.Resampling.BICUBIC))
    return np.clip(image.astype(int) + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name,scale", [("realesrgan-x2", 2), ("realesrgan-x4", 4)])
def test_release_file_loads_as_esrgan_with_its_weights(tmp_path, name, scale):
    state = write_realesrgan_release(name, tmp_path)
    upscaler = load_realesrgan(name, RestorerWeights(local_dir=tmp_path, offline=True))
    assert upscaler.descriptor.architecture.id == "ESRGAN" and upscaler.scale == scale
    loaded = upscaler.descriptor.model.state_dict()
    assert set(loaded) == set(state) and all(np.array_equal(loaded[k], state[k]) for k in state)


@pytest.mark.parametrize("name,scale", [("realesrgan-x2", 2), ("realesrgan-x4", 4)])
def test_tiled_equals_untiled_away_from_seams(tmp_path, name, scale):
    """Tolerance: 1 grey level, outside a band of 8 input pixels each side of every seam
    (the tiny network sees about 20 pixels around a pixel; the tiles keep 12 of context)."""
    write_realesrgan_release(name, tmp_path)
    weights = RestorerWeights(local_dir=tmp_path, offline=True)
    photo = _photo(72, 104)  # multiples of 4: the x2 model's pixel-unshuffle pads nothing
    untiled = load_realesrgan(name, weights, tile=1024).upscale(photo)
    tiled = load_realesrgan(name, weights, tile=32, overlap=12).upscale(photo)
    assert tiled.shape == untiled.shape == (72 * scale, 104 * scale, 3)
    away = np.ones(photo.shape[:2], dtype=bool)
    band = 8
    for seam in range(32, 104, 32):
        away[:, seam - band : seam + band] = False
    for seam in range(32, 72, 32):
        away[seam - band : seam + band, :] = False
    away = np.kron(away, np.ones((scale, scale), dtype=bool))
    difference = np.abs(tiled.astype(int) - untiled.astype(int))
    assert difference[away].max() <= 1
    assert difference.mean() < 2.0
    assert untiled.std() > 1.0  # the network does something


def test_output_is_photo_size_times_scale_for_odd_sizes(tmp_path):
    write_realesrgan_release("realesrgan-x2", tmp_path)
    upscaler = load_realesrgan("realesrgan-x2", RestorerWeights(local_dir=tmp_path, offline=True), tile=24)
    photo = _photo(45, 70)
    assert upscaler.upscale(photo).shape == (90, 140, 3)
    assert upscaler(photo, (105, 67)).shape == (67, 105, 3)  # resampled to a 1.5x request


def test_backgrounds_by_name(tmp_path):
    assert load_background("none") is None
    assert isinstance(load_background("lanczos"), LanczosUpscaler)
    with pytest.raises(ValueError, match="unknown background"):
        load_background("bicubic")
    with pytest.raises(WeightsUnavailableError, match="RealESRGAN_x4plus.pth"):
        load_background(
            "realesrgan-x4", RestorerWeights(local_dir=tmp_path, cache_dir=tmp_path, offline=True)
        )


class _Identity:
    device = None

    def __call__(self, images, prompt=None, color_fix=None, generator=None):
        class Output:
            pass

        output = Output()
        output.images = [image.convert("RGB") for image in images]
        return output


class _FlatBackground:
    """Paints the upscaled background one colour, and records the requests."""

    name = "flat"

    def __init__(self):
        self.sizes = []

    def __call__(self, image, size):
        self.sizes.append(size)
        return np.full((size[1], size[0], 3), (10, 200, 30), dtype=np.uint8)


def _face(photo_size: int) -> DetectedFace:
    from osdface.faces import FFHQ_TEMPLATE_512

    scale = 0.25
    landmarks = FFHQ_TEMPLATE_512 * scale + 40
    return DetectedFace(box=(40.0, 40.0, 40 + 128.0, 40 + 128.0), landmarks=landmarks, score=0.99)


def test_faces_are_pasted_onto_the_upscaled_background():
    photo = _photo(240, 320)
    background = _FlatBackground()
    restorer = FaceRestorer(_Identity(), detector=lambda image: [_face(320)], background=background)
    result = restorer.restore(photo, RestoreOptions(upscale=2.0))
    assert result.image.size == (640, 480) and background.sizes == [(640, 480)]
    out = np.asarray(result.image)
    assert out[470, 630].tolist() == [10, 200, 30]  # far from the face: the background's pixels
    assert (
        np.abs(
            out[208, 208].astype(int) - np.asarray(Image.fromarray(photo).resize((640, 480)))[208, 208]
        ).max()
        < 60
    )
    assert "background" in result.timings
    unchanged = FaceRestorer(_Identity(), detector=lambda image: [], background=background).restore(
        photo, RestoreOptions(upscale=2.0)
    )
    assert unchanged.no_face_found and np.asarray(unchanged.image)[0, 0].tolist() == [10, 200, 30]
    plain = FaceRestorer(_Identity(), detector=lambda image: [_face(320)], background=background)
    assert plain.restore(photo, RestoreOptions(upscale=1.0)).image.size == (320, 240)
    assert len(background.sizes) == 2  # not called without upscaling


def test_a_damaged_realesrgan_file_is_a_weights_error_naming_it(tmp_path):
    write_realesrgan_release("realesrgan-x2", tmp_path)
    path = tmp_path / REALESRGAN_FILES["realesrgan-x2"].filename
    release = torch.load(path, weights_only=True)["params_ema"]
    release.pop("conv_up1.weight")
    torch.save({"params_ema": release}, path)
    with pytest.raises(WeightsUnavailableError, match="delete it so it is fetched again") as caught:
        load_realesrgan("realesrgan-x2", RestorerWeights(local_dir=tmp_path, offline=True))
    assert str(path) in str(caught.value)
