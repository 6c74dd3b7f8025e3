"""The package's errors: each says what was wrong with which input, and what fixes it.

``OSDFaceError`` carries three fields that the app and the CLI format for their readers:

* ``source``: the file, repo or setting at fault ("photo.jpg", "alecccdd/OSDFace"), or None;
* ``reason``: what is wrong, without the source ("empty file (0 bytes)");
* ``fix``: what the user can do about it, or None.

``str(error)`` is ``"source: reason Fix: fix"``, the form the CLI prints; the app shows
``reason`` next to its own advice (it never shows server-side paths). Code that needs only the
message can keep raising these with one string, which becomes the ``reason``.
"""

from __future__ import annotations


class OSDFaceError(Exception):
    """Base of the package's errors (see the module docstring)."""

    def __init__(self, reason: str, *, source: str | None = None, fix: str | None = None):
        self.reason = reason
        self.source = source
        self.fix = fix
        super().__init__(self.message())

    def message(self, *, with_source: bool = True, with_fix: bool = True) -> str:
        text = self.reason
        if with_source and self.source:
            text = f"{self.source}: {text}"
        if with_fix and self.fix:
            text = f"{text.rstrip()}{'' if text.rstrip().endswith('.') else '.'} Fix: {self.fix}"
        return text

    def __reduce__(self):  # keeps the fields across processes (accelerate, multiprocessing)
        return (_rebuild, (type(self), self.reason, self.source, self.fix))


def _rebuild(cls: type[OSDFaceError], reason: str, source: str | None, fix: str | None) -> OSDFaceError:
    error = cls.__new__(cls)
    OSDFaceError.__init__(error, reason, source=source, fix=fix)
    return error


class ImageError(OSDFaceError, ValueError):
    """An input image that cannot be used: unreadable, too large, the wrong shape. The only
    error that batch commands report per file and go on (every other error stops them)."""


class VideoError(ImageError):
    """A video clip that cannot be read or written: not a media file, no video stream, a codec
    without a decoder, damaged or truncated data, over a limit, or an output container that
    cannot hold its streams. An ``ImageError``, so batch commands report it per file and go on."""
