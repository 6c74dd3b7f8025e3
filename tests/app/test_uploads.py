"""Reading an upload for the app (``osdface.app.uploads``): one voice for every refusal, from
the header when it can be."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, features

from osdface.app.models import LoadedModels, Part
from osdface.app.requests import RequestError
from osdface.app.service import Studio
from osdface.app.uploads import check_upload, read_image

MAX_PIXELS = 25_000_000


def gif_with_huge_frame(screen: int, frame: int) -> bytes:
    """A GIF whose logical screen is ``screen`` pixels square and whose one frame is declared
    ``frame`` pixels square, with a 1-pixel LZW stream: a decompression bomb that Pillow's GIF
    plugin refuses while still parsing the header."""
    header = b"GIF89a" + struct.pack("<HH", screen, screen) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    descriptor = b"\x2c" + struct.pack("<HHHH", 0, 0, frame, frame) + b"\x00"
    return header + descriptor + b"\x02\x02\x44\x01\x00" + b"\x3b"


def test_a_gif_declaring_a_huge_frame_gets_the_apps_too_large_message(tmp_path):
    path = tmp_path / "frame_bomb.gif"
    path.write_bytes(gif_with_huge_frame(16, 60000))
    with pytest.raises(Image.DecompressionBombError):  # what Pillow says on its own
        Image.open(path)
    studio = Studio(LoadedModels(missing={Part.PIPELINE: "no weights in this test"}))
    calls = {
        "check_upload": lambda: check_upload(str(path), MAX_PIXELS),
        "read_image": lambda: read_image(str(path), MAX_PIXELS),
        "Studio.degrade": lambda: studio.degrade(str(path), 30_000.0, 0, tmp_path / "out"),
    }
    for name, call in calls.items():
        with pytest.raises(RequestError) as caught:
            call()
        message = str(caught.value)
        assert message.startswith(
            "This image is too large for the app (its header declares 3,600 megapixels"
        ), name
        assert "limit of 25.0 megapixels" in message and "Downscale it" in message, name
        assert "decompression bomb" not in message and str(path) not in message, name


def avif_bytes() -> bytes:
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "AVIF")
    return buffer.getvalue()


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow reads no AVIF")
def test_a_damaged_avif_is_refused_as_unreadable(tmp_path):
    data = bytearray(avif_bytes())
    pixels = data.find(b"mdat") + 8
    data[pixels : pixels + 36] = b"\xff" * 36  # what a bad transfer leaves
    path = tmp_path / "damaged.avif"
    path.write_bytes(bytes(data))
    check_upload(str(path), MAX_PIXELS)  # the header is fine
    with pytest.raises(RequestError, match=r"cannot be read as an image \(broken image data \(RuntimeError"):
        read_image(str(path), MAX_PIXELS)
    # The box that locates the image renamed: Pillow's AVIF plugin raises RuntimeError while
    # reading the header, which the header check took for a bug (a bare "Error" in the app).
    path.write_bytes(avif_bytes().replace(b"iloc", b"free", 1))
    check_upload(str(path), MAX_PIXELS)  # no size known: left to the loader, which says why
    with pytest.raises(
        RequestError, match=r"cannot be read as an image \(broken image header \(RuntimeError"
    ):
        read_image(str(path), MAX_PIXELS)
