"""Atomic file writes: a reader (another request, a resumed run, a second process) never sees a
partial file, and an interrupted write never leaves one behind that a rerun would take as done.

Each write goes to a unique hidden name in the target's folder and is then renamed onto the
target (``os.replace`` is atomic within one file system). That name has a fixed length
(``.osdface-<12 hex digits>.part``), so any name that fits as the target also fits as the
temporary file: one built from the target's name overflows the 255-byte limit of most file
systems for long but legal names.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from osdface import lazy

# torch.hub is only needed when downloading.
torch = lazy.module("torch")


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; when the block ends without an error, the
    file written there replaces ``target``. The temporary file is removed in any case."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # 48 random bits: two writers in one folder (threads, processes) never pick the same name.
    partial = target.with_name(f".osdface-{uuid.uuid4().hex[:12]}.part")
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` when missing and write a file there (removed at once): an ``OSError``
    with the reason (``strerror``) when it is a file, cannot be created or cannot be written.
    A command checks its output folder so before any long work, not at its first output."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a folder", str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    # Permission bits do not tell (root, ACLs, read-only mounts): only a write does.
    probe = folder / f".osdface-{uuid.uuid4().hex[:12]}.part"
    try:
        probe.write_bytes(b"")
    finally:
        probe.unlink(missing_ok=True)
    return folder


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(target) as partial:
        partial.write_bytes(data)
    return Path(target)


def save_png_atomic(
    image: Image.Image | np.ndarray,
    target: str | os.PathLike,
    *,
    compress_level: int = 6,
    text: Mapping[str, str] | None = None,
) -> Path:
    """Write a PIL image or an ``(H, W, 3) RGB uint8`` array as PNG; return the target.
    ``compress_level`` 3 writes large photos a few times faster for about 10% more bytes.
    ``text``: iTXt chunks, written before the pixels so that a reader finds them in the header;
    values go as UTF-8, with the undecodable bytes of a file name kept (surrogateescape)."""
    picture = Image.fromarray(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_itxt(key, value.encode("utf-8", "surrogateescape"))
    with atomic_path(target) as partial:
        picture.save(partial, format="PNG", compress_level=compress_level, pnginfo=info)
    return Path(target)


def download_atomic(url: str, target: str | os.PathLike, *, sha256: str | None = None) -> Path:
    """Download ``url`` to ``target`` (two processes downloading at once both end up correct).
    With ``sha256`` (a prefix of the file's SHA-256 in hex), a download that does not match it
    raises ``RuntimeError`` and leaves no file."""

    with atomic_path(target) as partial:
        torch.hub.download_url_to_file(url, str(partial), hash_prefix=sha256, progress=True)
    return Path(target)
