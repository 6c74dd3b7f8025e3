"""Which file of the output folder each input photo of ``osdface restore`` writes.

An input ``sub/a.jpg`` writes ``sub/a.png``, unless that name is taken: claimed by another input
of the run, one of the inputs itself (an output never replaces an input), or a file already
there that was not made from this input. A taken name gives way to the input's full file name,
``sub/a.jpg.png``, then ``sub/a.jpg_2.png``, ... With ``--restorers`` each name's beside files
(``a.gfpgan.png``) must be free too.

Each output records the file name of the input it was made from (``SOURCE_KEY``, an iTXt chunk
ahead of the pixels, read here from the header without decoding), so a later run recognises
its own outputs however the inputs around them changed: ``a.png`` restored alone, then ``a.jpg``
added beside it, keeps ``a.png`` (skipped as done) and ``a.jpg`` gets ``a.jpg.png``. A file
without a record (made by hand, or by a version before the record) belongs to no input: it
is never overwritten, and never taken as done.

In one run, inputs whose own name ends in ``.png`` choose first (``a.png`` keeps ``a.png`` next
to ``a.jpg``), then the others in input order.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from itertools import count
from pathlib import Path

SOURCE_KEY = "osdface-source"  # the iTXt keyword of the record

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The record sits before the pixels; a header holds a handful of chunks, so the walk stops early
# on a file that is not one of ours.
_MAX_HEADER_CHUNKS = 64
_MAX_RECORD_BYTES = 16_384  # a keyword, a few separators and one file name


def recorded_source(path: Path) -> str | None:
    """The input file name recorded in the PNG at ``path``; None when there is none (not a PNG,
    no record, unreadable)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(len(_PNG_SIGNATURE)) != _PNG_SIGNATURE:
                return None
            for _ in range(_MAX_HEADER_CHUNKS):
                header = handle.read(8)
                if len(header) < 8:
                    return None
                length, kind = struct.unpack(">I4s", header)
                if kind in (b"IDAT", b"IEND"):
                    return None
                if kind == b"iTXt" and length <= _MAX_RECORD_BYTES:
                    value = _record_value(handle.read(length))
                    if value is not None:
                        return value
                    handle.seek(4, 1)  # the CRC
                else:
                    handle.seek(length + 4, 1)
    except OSError:  # a folder, a file that vanished, no permission: not a record of ours
        return None
    return None


def _record_value(data: bytes) -> str | None:
    """The text of an uncompressed iTXt chunk keyed ``SOURCE_KEY`` (keyword, 0, flag, method,
    language, 0, translated keyword, 0, text)."""
    keyword, _, rest = data.partition(b"\0")
    if keyword != SOURCE_KEY.encode("latin-1") or rest[:1] != b"\0":
        return None
    parts = rest[2:].split(b"\0", 2)
    if len(parts) != 3:
        return None
    return parts[2].decode("utf-8", "surrogateescape")


def candidates(relative: Path) -> Iterator[Path]:
    """The names an input at ``relative`` may write, in order of preference."""
    yield relative.with_suffix(".png")
    yield relative.with_name(relative.name + ".png")
    for number in count(2):
        yield relative.with_name(f"{relative.name}_{number}.png")


def beside_name(output: Path, key: str) -> Path:
    """Where restorer ``key``'s result goes beside OSDFace's ``output``: ``a.png`` -> ``a.gfpgan.png``."""
    return output.with_name(f"{output.stem}.{key}{output.suffix}")


class _Claims:
    """The names given out so far, and what the folder and the inputs rule out."""

    def __init__(self, output_root: Path, inputs: set[Path], beside_keys: Sequence[str]):
        self.root = output_root
        self.inputs = inputs
        self.beside_keys = tuple(beside_keys)
        self.taken: set[Path] = set()

    def names(self, output: Path) -> list[Path]:
        return [output, *(beside_name(output, key) for key in self.beside_keys)]

    def is_input(self, name: Path) -> bool:
        return (self.root / name).resolve() in self.inputs

    def owned(self, output: Path, source: str) -> bool:
        """``output`` exists, unclaimed, made from an input named ``source``."""
        path = self.root / output
        return (
            output not in self.taken
            and not self.is_input(output)
            and os.path.isfile(path)
            and recorded_source(path) == source
        )

    def free(self, output: Path, source: str) -> bool:
        """``output`` and its beside files are unclaimed, no input, and absent or ``source``'s."""
        for name in self.names(output):
            path = self.root / name
            if name in self.taken or self.is_input(name):
                return False
            # os.path, not Path.exists: a name too long for the file system is absent, not an
            # error here (writing it fails later, for that file alone).
            if os.path.lexists(path) and recorded_source(path) != source:
                return False
        return True

    def claim(self, output: Path) -> Path:
        self.taken.update(self.names(output))
        return output


def name_outputs(
    found: Sequence[tuple[Path, Path]], output_root: Path, *, beside_keys: Sequence[str] = ()
) -> list[Path]:
    """The output (relative to ``output_root``, resolved) of each (input path, path relative to
    its folder) in ``found``, in the same order (see the module docstring)."""
    claims = _Claims(output_root, {path.resolve() for path, _ in found}, beside_keys)
    outputs: list[Path | None] = [None] * len(found)
    # First each input's own output from an earlier run, so that nothing takes it from it.
    for index, (path, relative) in enumerate(found):
        for output in _existing_candidates(relative, output_root):
            if claims.owned(output, path.name):
                outputs[index] = claims.claim(output)
                break
    order = sorted(range(len(found)), key=lambda i: (found[i][1].suffix.lower() != ".png", i))
    for index in order:
        if outputs[index] is None:
            path, relative = found[index]
            outputs[index] = claims.claim(next(c for c in candidates(relative) if claims.free(c, path.name)))
    return [output for output in outputs if output is not None]


def _existing_candidates(relative: Path, output_root: Path) -> Iterator[Path]:
    """The stem name and the full name, then the numbered names while they exist."""
    for number, output in enumerate(candidates(relative)):
        if number >= 2 and not os.path.lexists(output_root / output):
            return
        yield output
