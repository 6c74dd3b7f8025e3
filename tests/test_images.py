"""load_image: every common input kind and colour mode -> (H, W, 3) RGB uint8, clear errors."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, features

from osdface.images.conversion import to_pil
from osdface.images.reading import IMAGE_EXTENSIONS, ImageTooLargeError, UnreadableImageError, load_image


def rgb_sample(height: int = 12, width: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming a size, whose image data is a few bytes: decoding it would fail."""
    chunk = png_chunk
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


def broken_files() -> dict[str, bytes]:
    """Broken files whose Pillow plugin raises something other than OSError (the exception
    Pillow raises for each, checked in the test, is in the comment)."""
    rgb = rgb_sample(24, 20)
    sgi = bytearray(encode(Image.fromarray(rgb), "SGI"))
    sgi[3] = 228  # bytes per channel: "Unsupported SGI image mode" (ValueError)
    cases = {
        "short_ihdr.png": b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", b"\x00\x00\x01\x00\x00"),  # ValueError
        "cut_header.ppm": b"P6\n",  # ValueError: EOF while reading the header
        "bad_maxval.ppm": b"P6 4 4 70000\n" + bytes(96),  # ValueError: maxval
        "bad_mode.sgi": bytes(sgi),
        "truncated.qoi": encode(Image.fromarray(rgb), "QOI")[:54],  # IndexError while decoding
    }
    if features.check("avif"):
        avif = bytearray(encode(Image.fromarray(rgb), "AVIF"))
        pixels = avif.find(b"mdat") + 8
        avif[pixels : pixels + 36] = b"\xff" * 36  # RuntimeError: "Failed to decode frame 0"
        cases["damaged.avif"] = bytes(avif)
    return cases


def test_broken_files_of_every_format_are_unreadable_image_errors(tmp_path):
    for name, data in broken_files().items():
        with pytest.raises(Exception) as raw:  # what Pillow itself raises: not an OSError
            with Image.open(io.BytesIO(data)) as image:
                image.load()
        assert not isinstance(raw.value, OSError), name
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(UnreadableImageError, match=r"broken image (header|data) \(") as info:
            load_image(path)
        assert str(path) in str(info.value) and type(raw.value).__name__ in str(info.value)


def exif_jpeg(first_tag: int, first_type: int, first_value: bytes) -> bytes:
    """A 24x16 JPEG whose EXIF block (big-endian) holds one tag as given, then orientation 6
    (rotate 90 degrees clockwise to display). A tag given a value of the wrong type is the
    damage a bad editor or a flipped byte leaves: Pillow decodes the pixels fine."""
    entries = [
        struct.pack(">HHI", first_tag, first_type, len(first_value)) + first_value.ljust(4, b"\0"),
        struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0),
    ]
    tiff = b"MM\0*" + struct.pack(">IH", 8, len(entries)) + b"".join(entries) + struct.pack(">I", 0)
    return encode(Image.fromarray(rgb_sample(16, 24)), "JPEG", quality=95, exif=b"Exif\0\0" + tiff)


def test_damaged_exif_does_not_refuse_a_photo_that_decodes():
    from PIL import ImageOps

    damaged = {
        "text in BitsPerSample (a number tag)": exif_jpeg(0x0102, 2, b"Cam\0"),  # struct.error
        "text in PrimaryChromaticities (a rational tag)": exif_jpeg(0x013F, 2, b"Cam\0"),  # TypeError
    }
    for why, data in damaged.items():
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # the pixels decode
            with pytest.raises((struct.error, TypeError)):
                ImageOps.exif_transpose(image)
        out = load_image(data)
        assert out.shape == (24, 16, 3), why  # the orientation still applied


def test_unreadable_exif_gives_the_image_as_stored_with_a_warning(monkeypatch):
    data = exif_jpeg(0x010F, 2, b"Cam\0")

    def damaged(self):
        raise struct.error("unpack requires a buffer of 12 bytes")

    monkeypatch.setattr(Image.Image, "getexif", damaged)
    with pytest.warns(UserWarning, match=r"EXIF block is damaged \(error: unpack.*used as stored"):
        out = load_image(data)
    assert out.shape == (16, 24, 3)


def test_png_colour_key_transparency_is_composited_on_white():
    # tRNS on a grayscale, RGB or 1-bit image: pixels of that one colour are transparent.
    gray = np.array([[0, 128]], np.uint8)
    rgb = np.array([[[0, 0, 0], [10, 20, 30]]], np.uint8)
    cases = [
        (Image.fromarray(gray), 0, [[255] * 3, [128] * 3]),
        (Image.fromarray(rgb), (0, 0, 0), [[255] * 3, [10, 20, 30]]),
        (Image.fromarray(gray).convert("1"), 0, [[255] * 3, [255] * 3]),
    ]
    for image, key, expected in cases:
        out = load_image(encode(image, transparency=key))
        assert out.tolist() == [expected], image.mode
    # without the key, the same pixels keep their colour
    assert load_image(encode(Image.fromarray(rgb))).tolist() == rgb.tolist()


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


@pytest.mark.parametrize(
    ("mode", "fmt", "make"),
    [
        ("I;16", "PNG", lambda v: Image.fromarray(v)),  # a 16-bit grayscale PNG
        ("I;16B", "TIFF", lambda v: Image.fromarray(v.astype(">u2"))),  # big-endian 16-bit TIFF
        ("I", "TIFF", lambda v: Image.fromarray(v.astype(np.int32))),  # 32-bit integer, 16-bit values
        ("F", "TIFF", lambda v: Image.fromarray(v.astype(np.float32) / 65535.0)),  # float in [0, 1]
    ],
)
def test_the_pipeline_scales_deep_pil_modes_instead_of_clipping(tmp_path, mode, fmt, make):
    """A file saved and opened with Pillow, as a user passes it to the pipeline: a mid-grey face
    stays mid-grey (``convert("RGB")`` would clip it to white, or a float one to black)."""
    from osdface.images.conversion import to_batch, to_uint8_rgb

    gray8 = np.random.default_rng(0).integers(60, 200, (32, 32)).astype(np.uint16)
    values = gray8 * 257  # 16-bit values whose top byte is gray8
    path = tmp_path / f"face.{fmt.lower()}"
    make(values).save(path, format=fmt)
    with Image.open(path) as image:
        assert image.mode == mode
        batch = to_batch(image)
        pixels = to_uint8_rgb(image, "image")
    expected = np.repeat(gray8.astype(np.uint8)[..., None], 3, axis=2)
    assert np.array_equal(pixels, expected)  # v / 257 (v >> 8 for these values)
    assert batch.shape == (1, 3, 512, 512)
    assert abs(batch.mean().item() - gray8.mean() / 255.0) < 2e-3


# Recognised by Pillow but not decodable by it alone (BUFR, GRIB, HDF5 need a handler; EPS needs
# Ghostscript; WMF/EMF render on Windows only), and MPEG, which is a clip.
NOT_DECODED_HERE = {".bufr", ".grib", ".h5", ".hdf", ".eps", ".ps", ".wmf", ".emf", ".mpg", ".mpeg"}


def test_folder_extensions_are_every_format_pillow_decodes(tmp_path):
    # Folders used to skip .avif photos without a word, though a .avif named directly was read.
    Image.init()
    registered = Image.registered_extensions()
    readable = {ext for ext, fmt in registered.items() if fmt in Image.OPEN}
    assert IMAGE_EXTENSIONS == readable - NOT_DECODED_HERE
    assert features.check("avif") and {".avif", ".webp", ".jp2", ".qoi"} <= IMAGE_EXTENSIONS
    # Every one that Pillow can also write reads back through the single-file path.
    written = 0
    for ext in sorted(IMAGE_EXTENSIONS):
        if registered[ext] not in Image.SAVE:
            continue
        for mode in ("RGB", "L", "1", "P"):
            path = tmp_path / f"{mode}{ext}"
            try:
                Image.new(mode, (32, 32)).save(path)
            except (OSError, ValueError, KeyError):  # this format does not store this mode
                continue
            assert load_image(path).shape[2] == 3, ext
            written += 1
            break
        else:
            pytest.fail(f"Pillow writes {ext} in none of RGB, L, 1, P")
    assert written >= 40
