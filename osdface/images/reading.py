"""Reading user images: any common file or in-memory image -> ``(H, W, 3) RGB uint8``.

People bring phone pictures (EXIF-rotated), old scans (grayscale, 16-bit, CMYK), PNGs with
transparency and palette GIFs. ``load_image`` turns every one of them into the one format the
rest of OSDFace Studio uses, and fails with an exception that names the file and the reason:

* ``UnreadableImageError`` (a ``ValueError``): missing, empty, broken or non-image input;
* ``ImageTooLargeError`` (a ``ValueError``): more pixels than ``max_pixels``. The size is read
  from the header, before anything is decoded, so a decompression bomb costs nothing.

Conversions (all to 8-bit RGB):
* EXIF orientation is applied (as ``ImageOps.exif_transpose`` does). A damaged EXIF block
  never refuses a photo whose pixels decode: the orientation is applied when it can be read,
  and otherwise the image is taken as stored, with a ``UserWarning`` naming the file;
* grayscale (``1``, ``L``, ``I;16*``, ``I``, ``F``) is replicated to three channels; 16-bit
  values are scaled by 255/65535 (not clipped); ``I`` (32-bit int) is taken to hold 16-bit
  values; ``F`` (float) is taken to be in [0, 1];
* transparency (``RGBA``, ``LA``, ``PA``, and a transparent colour key, PNG's ``tRNS``, on a
  palette, grayscale or RGB image) is composited on white, which is what a viewer shows for a
  scan or a sticker-like PNG;
* ``P``, ``CMYK``, ``YCbCr`` and ``RGBX`` go through Pillow's own conversion (CMYK without
  colour management);
* multi-frame files (GIF, TIFF) give their first frame.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from osdface.errors import ImageError

# 50 MP: a 12-50 MP phone photo fits; bigger inputs are almost always scans that should be
# downscaled first (restoring a face needs about 512 pixels across it, not 10000).
DEFAULT_MAX_PIXELS = 50_000_000
# Pillow refuses to open an image of more than twice its MAX_IMAGE_PIXELS (DecompressionBombError),
# whatever our own limit: a limit above this one could not be honoured.
LARGEST_READABLE_PIXELS = 2 * Image.MAX_IMAGE_PIXELS

# The extensions of every format the pinned Pillow decodes, the one list that folders are
# searched with (a file named directly is always tried). Left out: formats Pillow only
# recognises (BUFR, GRIB, HDF5 need a handler; EPS needs Ghostscript; WMF/EMF render on Windows
# only) and MPEG, which is a clip. tests/test_images.py compares this with Pillow's registry.
IMAGE_EXTENSIONS = frozenset(
    {
        *(".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".avif", ".avifs", ".gif"),
        *(".tif", ".tiff", ".bmp", ".dib", ".ppm", ".pgm", ".pbm", ".pnm", ".pfm", ".tga", ".icb"),
        *(".vda", ".vst", ".jp2", ".j2k", ".jpc", ".jpf", ".jpx", ".j2c", ".qoi", ".psd", ".pcx"),
        *(".dcx", ".sgi", ".rgb", ".rgba", ".bw", ".ras", ".xbm", ".xpm", ".ico", ".cur", ".icns"),
        *(".dds", ".blp", ".fit", ".fits", ".fli", ".flc", ".ftc", ".ftu", ".gbr", ".iim", ".im"),
        *(".msp", ".pcd", ".pxr"),
    }
)

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | IO[bytes] | Image.Image | np.ndarray

_WHITE = 255.0

# What Pillow's format plugins raise for a broken file besides OSError, found by fuzzing
# (PNG, PPM, SGI, QOI, AVIF, GIF): Image.open and load() let these through.
_BROKEN_DATA_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    RuntimeError,
    IndexError,
    EOFError,
    struct.error,
    TypeError,
)
# ... and what Pillow's EXIF parser raises for a damaged EXIF block.
_EXIF_ERRORS = (OSError, ValueError, SyntaxError, IndexError, KeyError, EOFError, struct.error, TypeError)

_EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class UnreadableImageError(ImageError):
    """The input is missing, empty, broken or not an image. The message names the input."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than allowed. The message gives the size, the limit and the fix."""


def load_image(source: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read ``source`` into an ``(H, W, 3) RGB uint8`` array (see the module docstring).

    ``source``: a path, encoded bytes, a binary file object, a PIL image, or a numpy array
    (``(H, W)``, ``(H, W, 1|3|4)`` in RGB(A) order; uint8, uint16 or float in [0, 1]).
    ``max_pixels``: width x height limit, ``None`` for no limit of our own (Pillow's
    decompression-bomb limit, about 179 MP, still applies to encoded inputs).
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, Image.Image):
        _check_size(source.width, source.height, max_pixels, "<PIL image>")
        return _from_pil(source, "<PIL image>")
    name, stream = _open_stream(source)
    try:
        return _decode(stream, name, max_pixels)
    finally:
        if stream is not source:
            stream.close()


def describe_source(source: object) -> str:
    """A short name for an input, as used in error messages."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return "<array>"
    if isinstance(source, Image.Image):
        return "<PIL image>"
    return str(getattr(source, "name", "<file object>"))


def _open_stream(source: ImageSource) -> tuple[str, IO[bytes]]:
    name = describe_source(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise UnreadableImageError("empty input (0 bytes)", source=name)
        return name, io.BytesIO(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise UnreadableImageError("is a folder, not an image file", source=name)
        if not path.is_file():
            raise UnreadableImageError("no such file", source=name)
        if path.stat().st_size == 0:
            raise UnreadableImageError("empty file (0 bytes)", source=name)
        try:
            return name, open(path, "rb")  # noqa: SIM115 - closed by load_image
        except OSError as exc:
            raise UnreadableImageError(f"cannot open: {exc.strerror or exc}", source=name) from exc
    if hasattr(source, "read"):
        return name, source  # type: ignore[return-value]
    raise UnreadableImageError(
        f"unsupported image source of type {type(source).__name__}; "
        "expected a path, bytes, a binary file object, a PIL image or a numpy array"
    )


def _decode(stream: IO[bytes], name: str, max_pixels: int | None) -> np.ndarray:
    try:
        # Image.open reads the header only: the size is known before any pixel is decoded.
        image = Image.open(stream)
    except Image.DecompressionBombError as exc:
        raise _too_large_for_pillow(exc, name) from exc
    except UnidentifiedImageError as exc:
        raise UnreadableImageError("not an image, or a format Pillow cannot read", source=name) from exc
    except _BROKEN_DATA_ERRORS as exc:
        # A format was recognised but its header is broken (a truncated PNG IHDR, a PPM
        # header cut short or with a bad maxval, an SGI with an unknown mode, a damaged AVIF).
        raise UnreadableImageError(f"broken image header ({_describe(exc)})", source=name) from exc
    with image:
        _check_size(image.width, image.height, max_pixels, name)
        try:
            image.load()
        except Image.DecompressionBombError as exc:
            raise _too_large_for_pillow(exc, name) from exc
        except _BROKEN_DATA_ERRORS as exc:
            # Truncated or corrupt pixel data: OSError from most plugins, others from some.
            raise UnreadableImageError(f"broken image data ({_describe(exc)})", source=name) from exc
        return _from_pil(image, name)


def _too_large_for_pillow(exc: Image.DecompressionBombError, name: str) -> ImageTooLargeError:
    return ImageTooLargeError(str(exc), source=name, fix="downscale the image before restoring it.")


def _describe(exc: BaseException) -> str:
    """An exception as "Type: text": Pillow's bare IndexError or struct.error says little alone."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _check_size(width: int, height: int, max_pixels: int | None, name: str) -> None:
    if width <= 0 or height <= 0:
        raise UnreadableImageError(f"image has no pixels ({width}x{height})", source=name)
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height / 1e6:.1f} megapixels, over the limit of "
            f"{max_pixels / 1e6:.1f} megapixels",
            source=name,
            fix="downscale it first, or raise the limit (load_image(..., max_pixels=...); "
            "osdface restore --max-megapixels).",
        )


def _from_pil(image: Image.Image, name: str) -> np.ndarray:
    image = _upright(image, name)
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return np.asarray(image, dtype=np.uint8).copy()
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image).astype(np.float64)
        gray = np.clip(values, 0, 65535) * (255.0 / 65535.0)
        return _gray_to_rgb(gray)
    if mode == "F":
        gray = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0) * 255.0
        return _gray_to_rgb(gray)
    if "transparency" in image.info and mode in {"P", "1", "L", "RGB"}:
        # A colour key (PNG tRNS): Pillow's RGBA conversion turns it into alpha.
        image = image.convert("RGBA")
    elif mode in {"PA", "La", "LA", "RGBa"}:
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        rgba = np.asarray(image, dtype=np.float64)
        alpha = rgba[..., 3:4] / 255.0
        return _round_u8(rgba[..., :3] * alpha + _WHITE * (1.0 - alpha))
    try:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except ValueError as exc:
        raise UnreadableImageError(f"unsupported colour mode {mode!r} ({exc})", source=name) from exc


def _upright(image: Image.Image, name: str) -> Image.Image:
    """Apply the EXIF orientation. Not with ImageOps.exif_transpose: after rotating it writes
    the EXIF block back, which fails on a damaged tag that has nothing to do with the
    orientation (a text value in a number tag), and such a photo decodes fine."""
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except _EXIF_ERRORS as exc:
        warnings.warn(
            f"{name}: the EXIF block is damaged ({_describe(exc)}); the image is used as stored, "
            "without its EXIF orientation.",
            UserWarning,
            stacklevel=4,
        )
        return image
    method = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    return image if method is None else image.transpose(method)


def _from_array(array: np.ndarray, max_pixels: int | None) -> np.ndarray:
    name = "<array>"
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(
            f"expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array, got {array.shape}", source=name
        )
    _check_size(array.shape[1], array.shape[0], max_pixels, name)
    if array.dtype == np.uint8:
        values = array.astype(np.float64)
    elif array.dtype == np.uint16:
        values = array.astype(np.float64) * (255.0 / 65535.0)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("float image holds NaN or infinite values", source=name)
        values = np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0
    elif array.dtype == np.bool_:
        values = array.astype(np.float64) * 255.0
    else:
        raise ImageError(
            f"unsupported dtype {array.dtype}; use uint8, uint16 or float in [0, 1]", source=name
        )
    if values.ndim == 2:
        return _gray_to_rgb(values)
    if values.shape[2] == 4:
        alpha = values[..., 3:4] / 255.0
        values = values[..., :3] * alpha + _WHITE * (1.0 - alpha)
    return _round_u8(values)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(_round_u8(gray)[..., None], 3, axis=2)


def _round_u8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
