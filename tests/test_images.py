"""load_image: every common input kind and colour mode -> (H, W, 3) RGB uint8, clear errors."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from osdface.images.conversion import to_pil
from osdface.images.reading import ImageTooLargeError, UnreadableImageError, load_image


def rgb_sample(height: int = 12, width: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming a size, whose image data is a few bytes: decoding it would fail."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def test_all_source_kinds_give_the_same_rgb_array(tmp_path):
    rgb = rgb_sample()
    data = encode(Image.fromarray(rgb))
    path = tmp_path / "sample.png"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        from_file = load_image(handle)
        assert not handle.closed  # a caller's file stays the caller's
    for source in (path, str(path), data, bytearray(data), memoryview(data), Image.fromarray(rgb), rgb):
        out = load_image(source)
        assert out.dtype == np.uint8 and out.shape == (12, 16, 3)
        np.testing.assert_array_equal(out, rgb)
    np.testing.assert_array_equal(from_file, rgb)


def test_exif_orientation_is_applied():
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red
    stored[:, 20:] = (0, 0, 255)  # right half blue
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    out = load_image(encode(image, "JPEG", quality=95, exif=exif.tobytes()))
    assert out.shape == (40, 20, 3)
    assert out[5, 10, 0] > 200 and out[5, 10, 2] < 60  # the stored left half is now on top
    assert out[35, 10, 2] > 200 and out[35, 10, 0] < 60


def test_grayscale_and_one_bit():
    gray = np.arange(0, 240, dtype=np.uint8).reshape(12, 20)
    out = load_image(encode(Image.fromarray(gray, mode="L")))
    assert out.shape == (12, 20, 3)
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))
    bits = load_image(encode(Image.fromarray(gray > 100).convert("1")))
    np.testing.assert_array_equal(bits[..., 0], np.where(gray > 100, 255, 0))


def test_transparency_is_composited_on_white():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (100, 50, 0, 255)  # opaque: unchanged
    rgba[0, 1] = (0, 0, 0, 0)  # transparent: white
    rgba[0, 2] = (0, 0, 0, 128)  # half: mid grey
    rgba[1, :] = (200, 100, 0, 51)  # 20 % opaque
    out = load_image(encode(Image.fromarray(rgba, mode="RGBA")))
    np.testing.assert_array_equal(out[0, 0], (100, 50, 0))
    np.testing.assert_array_equal(out[0, 1], (255, 255, 255))
    np.testing.assert_array_equal(out[0, 2], (127, 127, 127))
    np.testing.assert_array_equal(out[1, 0], (244, 224, 204))
    la = Image.fromarray(
        np.dstack([np.full((2, 2), 0, np.uint8), np.array([[0, 255], [255, 0]], np.uint8)]), "LA"
    )
    np.testing.assert_array_equal(load_image(encode(la))[..., 0], [[255, 0], [0, 255]])
    np.testing.assert_array_equal(load_image(rgba), out)  # RGBA arrays too


def test_palette_with_and_without_transparency():
    palette = Image.fromarray(rgb_sample()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    np.testing.assert_array_equal(load_image(encode(palette)), np.asarray(palette.convert("RGB")))
    indexed = Image.new("P", (4, 1))
    indexed.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    indexed.putdata([0, 1, 0, 1])
    out = load_image(encode(indexed, transparency=1))
    np.testing.assert_array_equal(out[0], [(255, 0, 0), (255, 255, 255), (255, 0, 0), (255, 255, 255)])
    gif = load_image(encode(indexed, "GIF", transparency=1))
    np.testing.assert_array_equal(gif, out)


def test_sixteen_bit_is_scaled_not_clipped():
    values = np.array([[0, 1000, 32896, 65535]], dtype=np.uint16)
    expected = np.rint(values / 257.0).astype(np.uint8)  # 0, 4, 128, 255
    sixteen = Image.fromarray(values)  # mode I;16
    assert sixteen.mode.startswith("I;16")
    out = load_image(encode(sixteen))
    np.testing.assert_array_equal(out[..., 0], expected)
    np.testing.assert_array_equal(out[..., 2], expected)
    np.testing.assert_array_equal(
        load_image(Image.fromarray(values.astype(np.int32)))[..., 1], expected
    )  # mode I
    np.testing.assert_array_equal(load_image(encode(sixteen, "TIFF"))[..., 0], expected)
    np.testing.assert_array_equal(load_image(values)[..., 0], expected)


def test_float_images_are_taken_in_unit_range():
    values = np.array([[0.0, 0.25, 0.5, 1.0, 2.0]], dtype=np.float32)
    expected = [0, 64, 128, 255, 255]
    np.testing.assert_array_equal(load_image(encode(Image.fromarray(values, "F"), "TIFF"))[0, :, 0], expected)
    np.testing.assert_array_equal(load_image(values)[0, :, 1], expected)
    with pytest.raises(ValueError, match="NaN"):
        load_image(np.full((2, 2, 3), np.nan, np.float32))


def test_cmyk_becomes_rgb():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red ink mix
    for fmt in ("JPEG", "TIFF"):
        out = load_image(encode(cmyk, fmt))
        assert out.shape == (8, 8, 3)
        assert out[4, 4, 0] > 230 and out[4, 4, 1] < 25 and out[4, 4, 2] < 25, (fmt, out[4, 4])


def test_numpy_layouts():
    rgb = rgb_sample()
    np.testing.assert_array_equal(load_image(rgb[..., :1])[..., 2], rgb[..., 0])
    np.testing.assert_array_equal(load_image(rgb[..., 0] > 127)[..., 0], np.where(rgb[..., 0] > 127, 255, 0))
    with pytest.raises(ValueError, match=r"\(H, W"):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        load_image(np.zeros((4, 4, 3), np.int64))


def test_unreadable_inputs_name_the_file_and_the_reason(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(encode(Image.fromarray(rgb_sample(64, 64)))[:300])
    cases = {
        empty: "empty",
        text: "not an image",
        truncated: "broken",
        tmp_path / "missing.png": "no such file",
        tmp_path: "folder",
    }
    for path, reason in cases.items():
        with pytest.raises(UnreadableImageError, match=reason) as info:
            load_image(path)
        assert str(path) in str(info.value)
        assert isinstance(info.value, ValueError)
    with pytest.raises(UnreadableImageError, match="empty"):
        load_image(b"")
    with pytest.raises(UnreadableImageError, match="unsupported image source"):
        load_image(12345)  # type: ignore[arg-type]


def test_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path):
    # A header claiming 8000x8000 and no pixel data: decoding would fail as "broken", so an
    # ImageTooLargeError proves the check came first.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(8000, 8000))
    with pytest.raises(ImageTooLargeError, match=r"8000x8000 = 64\.0 megapixels.*limit of 50\.0") as info:
        load_image(bomb)
    assert str(bomb) in str(info.value) and "max_pixels" in str(info.value)
    # Beyond Pillow's own decompression-bomb limit: still our error type.
    with pytest.raises(ImageTooLargeError):
        load_image(png_header_only(60000, 60000), max_pixels=None)
    small = encode(Image.fromarray(rgb_sample(100, 100)))
    with pytest.raises(ImageTooLargeError, match="100x100"):
        load_image(small, max_pixels=5000)
    with pytest.raises(UnreadableImageError, match="broken"):  # the same header, allowed: decoding fails
        load_image(png_header_only(800, 800))
    assert load_image(small, max_pixels=10000).shape == (100, 100, 3)
    with pytest.raises(ImageTooLargeError):
        load_image(rgb_sample(100, 100), max_pixels=5000)


def test_to_pil():
    rgb = rgb_sample()
    image = to_pil(rgb)
    assert image.mode == "RGB" and image.size == (16, 12)
    np.testing.assert_array_equal(np.asarray(image), rgb)
    with pytest.raises(ValueError, match="uint8"):
        to_pil(rgb.astype(np.float32))
    with pytest.raises(ValueError):
        to_pil(rgb[..., 0])
