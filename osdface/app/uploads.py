"""Reading an uploaded image for the app, with one voice for every refusal.

The endpoints read only files that were uploaded (``upload_path``): a client names its image
with Gradio's file payload, never with a path on the server.

The size of an upload is read from its header, before anything decodes it and before Pillow's
own decompression-bomb check (which would refuse a 30000x30000 PNG with its own text and its
own 179-megapixel limit): every over-size input gets our message with our limit, and a
non-square image in aligned mode is refused without being decoded.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from osdface.app.request_folders import KEEP_FOR
from osdface.app.requests import RequestError
from osdface.images.reading import ImageTooLargeError, UnreadableImageError, load_image

# Bytes enough for every Pillow plugin's signature test.
_PREFIX_BYTES = 16
# A plugin's refusal of a header: not its format (Image.open's own loop skips the first four
# the same way), or a broken header (a damaged AVIF raises RuntimeError): the loader says which.
_NOT_THIS_FORMAT = (
    SyntaxError,
    IndexError,
    TypeError,
    struct.error,
    ValueError,
    OSError,
    EOFError,
    RuntimeError,
)


NOT_AN_UPLOAD = (
    "The image must be uploaded to the app, not named by a path on the server. With gradio_client, "
    "pass handle_file(path_or_url); over HTTP, POST the file to /gradio_api/upload and send "
    '{"path": <the path it returns>, "meta": {"_type": "gradio.FileData"}}; MCP clients send an '
    "http(s) URL or a data: URI."
)

# Gradio deletes uploads KEEP_FOR seconds old (app.py's delete_cache): a page left open longer
# still shows the image, and sends the name of a file that is gone.
EXPIRED_UPLOAD = (
    "This upload has expired (the app deletes uploads after "
    f"{'an hour' if KEEP_FOR == 3600 else f'{KEEP_FOR / 60:g} minutes'}): upload it again."
)


def upload_path(value: object, upload_folder: str | os.PathLike) -> str | None:
    """The path of the uploaded file that an endpoint's input names, or None for no file.

    ``value`` is the input as it comes unprocessed (the endpoints check the size from the
    header before anything decodes the file): None, or Gradio's file payload, a dict
    ``{"path": ..., "meta": {"_type": "gradio.FileData"}}`` whose file Gradio has put in its
    upload folder (downloading it first when the client gave a URL). Gradio checks the folder
    only for a dict with that "meta", and not at all for a bare string, so the path is checked
    here, before anything looks at it on disk: a client must not read, nor learn whether there
    is, any other file on the server. Raises ``RequestError`` (``NOT_AN_UPLOAD``) otherwise,
    and ``EXPIRED_UPLOAD`` for a file in the folder that is gone (Gradio deleted it).
    """
    if value is None:
        return None
    if isinstance(value, dict):
        path = value.get("path")
        if path is None:
            return None  # an empty file payload: read_image says to upload a photo
        if isinstance(path, str) and _inside(path, upload_folder):
            if not Path(path).exists():
                raise RequestError(EXPIRED_UPLOAD)
            return path
        raise RequestError(NOT_AN_UPLOAD)
    if isinstance(value, str | os.PathLike):
        raise RequestError(NOT_AN_UPLOAD)
    raise RequestError(f"Unexpected image input of type {type(value).__name__}. {NOT_AN_UPLOAD}")


def _inside(path: str, folder: str | os.PathLike) -> bool:
    # resolve(): "..", and a link in the folder that points out of it, are followed first.
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def header_size(source: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) from the file's header, or None when no Pillow plugin recognises it
    (the loader then reports why). Only the header is parsed: the plugin's class is used
    directly, since ``Image.open`` would first apply Pillow's decompression-bomb limit.

    Raises Pillow's ``DecompressionBombError`` when a plugin checks a size of its own while
    parsing the header: a GIF whose screen is small can declare a huge first frame."""
    Image.init()
    try:
        with open(source, "rb") as stream:
            prefix = stream.read(_PREFIX_BYTES)
            if not prefix:
                return None  # an empty file: the loader says so
            for name in Image.ID:
                factory, accept = Image.OPEN[name]
                try:
                    if accept is not None and not accept(prefix):
                        continue
                    stream.seek(0)
                    image = factory(stream, str(source))
                except _NOT_THIS_FORMAT:
                    continue
                return image.size
    except OSError:
        return None
    return None


def too_large_message(width: int, height: int, max_pixels: int) -> str:
    return (
        f"This image is too large for the app (image is {width}x{height} = {width * height / 1e6:.1f} "
        f"megapixels, over the limit of {max_pixels / 1e6:.1f} megapixels). Downscale it (a face needs "
        "only about 512 pixels across) and upload it again."
    )


def bomb_message(exc: Image.DecompressionBombError, max_pixels: int) -> str:
    """``too_large_message`` for a size Pillow refused before we could read it (it gives only
    the number of pixels, in its message)."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    declared = f"{int(found[1]) / 1e6:,.0f} megapixels" if found else "more pixels than Pillow decodes"
    return (
        f"This image is too large for the app (its header declares {declared}, over the limit of "
        f"{max_pixels / 1e6:.1f} megapixels). Downscale it (a face needs only about 512 pixels across) "
        "and upload it again."
    )


def check_upload(source: str | os.PathLike | None, max_pixels: int, *, aligned: bool = False) -> None:
    """Refuse, from the header alone, an image over ``max_pixels`` or (``aligned``) not square."""
    if source is None or (isinstance(source, str) and not source.strip()):
        return  # read_image says what to do
    try:
        size = header_size(source)
    except Image.DecompressionBombError as exc:
        raise RequestError(bomb_message(exc, max_pixels)) from exc
    if size is None:
        return
    width, height = size
    if width * height > max_pixels:
        raise RequestError(too_large_message(width, height, max_pixels))
    if aligned:
        check_aligned_size(width, height)


def read_image(source: str | os.PathLike | None, max_pixels: int) -> np.ndarray:
    """An uploaded file -> (H, W, 3) RGB uint8, with messages a user can act on."""
    if source is None or (isinstance(source, str) and not source.strip()):
        raise RequestError(
            "No image yet: upload a photo (or paste one, or take one with the webcam), then try again."
        )
    check_upload(source, max_pixels)
    try:
        return load_image(source, max_pixels=max_pixels)
    except ImageTooLargeError as exc:
        if isinstance(exc.__cause__, Image.DecompressionBombError):
            raise RequestError(bomb_message(exc.__cause__, max_pixels)) from exc
        raise RequestError(
            f"This image is too large for the app ({exc.reason.rstrip('.')}). Downscale it "
            "(a face needs only about 512 pixels across) and upload it again."
        ) from exc
    except UnreadableImageError as exc:
        raise RequestError(
            f"This file cannot be read as an image ({exc.reason.rstrip('.')}). "
            "Upload a JPEG, PNG, WebP, BMP or TIFF photo."
        ) from exc


def check_aligned_size(width: int, height: int) -> None:
    """An aligned face is square (FaceRestorer allows 1% off) and not tiny."""
    if abs(height - width) > 0.01 * max(height, width):
        raise RequestError(
            f"An aligned face must be square, and this image is {width}x{height}. Choose the mode "
            "'Whole photo' to detect and align the faces, or upload a 512x512 FFHQ-aligned face."
        )
    if width < 32:
        raise RequestError(
            f"This face is only {width}x{height} pixels; upload at least 32x32 (512x512 is best)."
        )


def check_aligned_face(image: np.ndarray) -> None:
    """(H, W, 3) array: see ``check_aligned_size``."""
    check_aligned_size(image.shape[1], image.shape[0])
