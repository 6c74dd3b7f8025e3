"""Restore a list of image files into an output folder: the work behind ``osdface restore``
(``osdface.commands.restore`` parses the arguments and prints), kept apart so that it can be
sharded across processes (``osdface.runtime.distributed``) and tested without a command line.

``collect_inputs`` expands files and folders into ``InputFile``s (relative paths kept, PNG
outputs); ``restore_files`` restores each into one ``FileResult``; ``BatchSummary`` totals
them. A file the package cannot use (``osdface.errors.ImageError``: unreadable, too large, not
square in aligned mode) is a failed result and the run goes on; any other error stops it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from osdface.errors import ImageError
from osdface.files import save_png_atomic

if TYPE_CHECKING:  # the models are imported when the first file needs them
    from osdface.faces import FaceRestorer, RestoreOptions, RestoreResult

# Extensions searched for inside folders (files named on the command line are always tried).
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jfif",
        ".png",
        ".bmp",
        ".tif",
        ".tiff",
        ".webp",
        ".gif",
        ".ppm",
        ".pgm",
        ".pnm",
        ".tga",
    }
)

Status = Literal["restored", "no_face", "skipped", "failed"]


@dataclass(frozen=True)
class InputFile:
    """An input image and where its output goes, relative to the output folder."""

    path: Path
    output: Path


@dataclass(frozen=True)
class FileResult:
    """What happened to one input. ``output`` is set when a file was written or already
    existed; ``error`` names the reason of a failure."""

    input: Path
    status: Status
    output: Path | None = None
    faces: int = 0
    error: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class BatchSummary:
    """Totals over ``FileResult``s. ``images``: inputs restored or found without a face."""

    images: int = 0
    faces: int = 0
    no_face: int = 0
    skipped: int = 0
    failures: tuple[tuple[Path, str], ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, results: Sequence[FileResult]) -> BatchSummary:
        return cls(
            images=sum(r.status in ("restored", "no_face") for r in results),
            faces=sum(r.faces for r in results),
            no_face=sum(r.status == "no_face" for r in results),
            skipped=sum(r.status == "skipped" for r in results),
            failures=tuple((r.input, r.error or "unknown error") for r in results if r.status == "failed"),
        )

    @property
    def exit_status(self) -> int:
        return 1 if self.failures else 0

    def report(self, noun: str = "image") -> str:
        """The summary line (``noun``: what the inputs are, "image" or "clip") and each failure."""
        lines = [
            f"{self.images} {noun}(s) processed, {self.faces} face(s) restored, "
            f"{self.no_face} without a face, {self.skipped} skipped (output exists), "
            f"{len(self.failures)} failed"
        ]
        lines += [f"  FAILED {path}: {reason}" for path, reason in self.failures]
        return "\n".join(lines)


# --------------------------------------------------------------------------- inputs


def beside_name(output: Path, key: str) -> Path:
    """Where restorer ``key``'s result goes beside OSDFace's ``output``: ``a.png`` -> ``a.gfpgan.png``."""
    return output.with_name(f"{output.stem}.{key}{output.suffix}")


def collect_inputs(
    paths: Sequence[str | os.PathLike], output_dir: str | os.PathLike, *, beside_keys: Sequence[str] = ()
) -> tuple[list[InputFile], list[FileResult]]:
    """Expand files and folders (recursively, in sorted order) into ``InputFile``s.

    A folder's images keep their path relative to it, with a ``.png`` suffix; a file given
    directly goes to the top of the output folder. Hidden files, non-image extensions inside
    folders and anything under ``output_dir`` are ignored. A path that does not exist becomes
    a failed ``FileResult`` (the second list). When two inputs would write the same output, or
    an output would replace an input (``face.png -o`` its own folder), the input keeps its full
    original name (``a.jpg`` -> ``a.jpg.png``, ``face.png`` -> ``face.png.png``). ``beside_keys``
    (``--restorers``): each output's ``beside_name``s are taken too, so ``a.png`` and
    ``a.gfpgan.png`` never write the same file nor replace an input.
    """
    output_root = Path(output_dir).resolve()
    found: list[tuple[Path, Path]] = []
    missing: list[FileResult] = []
    seen: set[Path] = set()
    for given in paths:
        root = Path(given)
        if root.is_dir():
            pairs = folder_files(root, IMAGE_EXTENSIONS, output_root)
        elif root.is_file():
            pairs = [(root, Path(root.name))]
        else:
            missing.append(FileResult(input=root, status="failed", error="no such file or folder"))
            continue
        for path, relative in pairs:
            if path.resolve() in seen:  # the same file named twice (a folder and a file in it)
                continue
            seen.add(path.resolve())
            found.append((path, relative))
    # Every input is known before any output is named: a later input can be an earlier one's output.
    taken: set[Path] = set()
    items: list[InputFile] = []
    for path, relative in found:
        output = relative.with_suffix(".png")
        number = 1
        while any(
            name in taken or (output_root / name).resolve() in seen
            for name in [output, *(beside_name(output, key) for key in beside_keys)]
        ):
            output = relative.with_name(relative.name + ("" if number == 1 else f"_{number}") + ".png")
            number += 1
        taken.update([output, *(beside_name(output, key) for key in beside_keys)])
        items.append(InputFile(path=path, output=output))
    return items, missing


def folder_files(root: Path, extensions: frozenset[str], output_root: Path) -> list[tuple[Path, Path]]:
    """(path, path relative to ``root``) of the files under ``root`` with one of ``extensions``,
    sorted; hidden files and folders, and anything under ``output_root``, left out."""
    found = sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and path.suffix.lower() in extensions
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and not path.resolve().is_relative_to(output_root)
    )
    return [(path, path.relative_to(root)) for path in found]


# --------------------------------------------------------------------------- the work


def restore_files(
    get_restorer: Callable[[], FaceRestorer],
    inputs: Sequence[InputFile],
    output_dir: str | os.PathLike,
    options: RestoreOptions,
    *,
    overwrite: bool = False,
    on_result: Callable[[FileResult], None] | None = None,
    compare: Callable[[Path, RestoreResult, Path], object] | None = None,
) -> list[FileResult]:
    """Restore each input into ``output_dir / input.output`` (PNG); one ``FileResult`` each.

    ``get_restorer`` is called when the first file needs restoring (so a run where every
    output exists loads nothing); cache it if it is expensive. A file the package cannot use
    (an ``ImageError``) is a failed result and the run goes on; any other error (weights
    missing, out of memory, a full disk, a bug) propagates. Photos without a face are written
    unchanged (status ``no_face``). ``compare`` (e.g. an ``osdface.restorers.comparison.BesideWriter``) is
    called with (input, result, output) after each write. Each output is written atomically,
    so an interrupted run never leaves a partial file that a rerun would skip as done.
    """
    output_root = Path(output_dir)
    restorer: FaceRestorer | None = None
    results: list[FileResult] = []
    for item in inputs:
        target = output_root / item.output
        started = time.perf_counter()
        if target.exists() and not overwrite:
            result = FileResult(input=item.path, status="skipped", output=target)
        else:
            if restorer is None:
                restorer = get_restorer()
            try:
                restored = restorer.restore(item.path, options)
            except ImageError as exc:  # the report names the file already
                result = FileResult(input=item.path, status="failed", error=exc.message(with_source=False))
            else:
                save_png_atomic(restored.image, target)
                if compare is not None:
                    compare(item.path, restored, target)
                result = FileResult(
                    input=item.path,
                    status="no_face" if restored.no_face_found else "restored",
                    output=target,
                    faces=len(restored.faces),
                    seconds=time.perf_counter() - started,
                )
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
