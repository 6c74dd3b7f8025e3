"""Restore a list of image files into an output folder: the work behind ``osdface restore``
(``osdface.commands.restore`` parses the arguments and prints), kept apart so that it can be
sharded across processes (``osdface.runtime.distributed``) and tested without a command line.

``collect_inputs`` expands files and folders into ``InputFile``s (relative paths kept, PNG
outputs named by ``osdface.faces.output_names``); ``restore_files`` restores each into one
``FileResult``; ``BatchSummary`` totals them. A file the package cannot use
(``osdface.errors.ImageError``: unreadable, too large, not square in aligned mode) or an output
that cannot be written (an ``OSError``: a name the file system refuses, no permission) is a
failed result and the run goes on; any other error stops it.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from osdface.errors import ImageError
from osdface.faces.output_names import SOURCE_KEY, name_outputs
from osdface.files import save_png_atomic
from osdface.images.reading import IMAGE_EXTENSIONS

if TYPE_CHECKING:  # the models are imported when the first file needs them
    from osdface.faces import FaceRestorer, RestoreOptions, RestoreResult

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


def collect_inputs(
    paths: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    beside_keys: Sequence[str] = (),
    left_out: list[Path] | None = None,
) -> tuple[list[InputFile], list[FileResult]]:
    """Expand files and folders (recursively, in sorted order) into ``InputFile``s.

    A folder's images (``IMAGE_EXTENSIONS``) keep their path relative to it, with a ``.png``
    suffix; a file given directly goes to the top of the output folder. Hidden files, other
    extensions inside folders and anything under ``output_dir`` are ignored; the images left out
    for being under ``output_dir`` are appended to ``left_out`` when it is given. A path that
    does not exist becomes a failed ``FileResult`` (the second list). Outputs are named by
    ``osdface.faces.output_names.name_outputs``: ``a.jpg`` -> ``a.png``, or ``a.jpg.png`` when
    that name is another input's, an input, or a file not made from ``a.jpg``; ``beside_keys``
    (``--restorers``): each output's ``beside_name``s must be free too.
    """
    output_root = Path(output_dir).resolve()
    found: list[tuple[Path, Path]] = []
    missing: list[FileResult] = []
    seen: set[Path] = set()
    for given in paths:
        root = Path(given)
        if root.is_dir():
            pairs = folder_files(root, IMAGE_EXTENSIONS, output_root, left_out=left_out)
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
    outputs = name_outputs(found, output_root, beside_keys=beside_keys)
    items = [InputFile(path=path, output=output) for (path, _), output in zip(found, outputs)]
    return items, missing


def folder_files(
    root: Path, extensions: frozenset[str], output_root: Path, *, left_out: list[Path] | None = None
) -> list[tuple[Path, Path]]:
    """(path, path relative to ``root``) of the files under ``root`` with one of ``extensions``,
    sorted; hidden files and folders, and anything under ``output_root``, left out (the latter
    appended to ``left_out`` when given, so that the command can say why they are missing)."""
    found = sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and path.suffix.lower() in extensions
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )
    inside = {path for path in found if path.resolve().is_relative_to(output_root)}
    if left_out is not None:
        left_out.extend(path for path in found if path in inside)
    return [(path, path.relative_to(root)) for path in found if path not in inside]


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
    (an ``ImageError``) or an output that cannot be written (an ``OSError``: the name too long
    for the file system, no permission, a full disk) is a failed result naming the reason and
    the fix, and the run goes on; any other error (weights missing, out of memory, a bug)
    propagates. Photos without a face are written unchanged (status ``no_face``). ``compare``
    (e.g. an ``osdface.restorers.comparison.BesideWriter``) is called with (input, result,
    output) after each write. Each output is written atomically, so an interrupted run never
    leaves a partial file that a rerun would skip as done, and records the input's file name
    (``output_names.SOURCE_KEY``), by which a later run recognises it. An existing output is
    taken as done: ``collect_inputs`` names inputs so that it is theirs.
    """
    output_root = Path(output_dir)
    restorer: FaceRestorer | None = None
    results: list[FileResult] = []
    for item in inputs:
        target = output_root / item.output
        if os.path.exists(target) and not overwrite:  # False for a name too long, which fails below
            result = FileResult(input=item.path, status="skipped", output=target)
        else:
            if restorer is None:
                restorer = get_restorer()
            result = _restore_one(restorer, item, target, options, compare)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _restore_one(
    restorer: FaceRestorer,
    item: InputFile,
    target: Path,
    options: RestoreOptions,
    compare: Callable[[Path, RestoreResult, Path], object] | None,
) -> FileResult:
    started = time.perf_counter()
    try:
        restored = restorer.restore(item.path, options)
    except ImageError as exc:  # the report names the file already
        return FileResult(input=item.path, status="failed", error=exc.message(with_source=False))
    try:
        save_png_atomic(restored.image, target, text={SOURCE_KEY: item.path.name})
        if compare is not None:
            compare(item.path, restored, target)
    except OSError as exc:  # about this output (its name, its folder): the next one may be written
        return FileResult(input=item.path, status="failed", error=write_error(target, exc))
    return FileResult(
        input=item.path,
        status="no_face" if restored.no_face_found else "restored",
        output=target,
        faces=len(restored.faces),
        seconds=time.perf_counter() - started,
    )


# What to do about an output that cannot be written, by errno.
_WRITE_FIXES = {
    errno.ENAMETOOLONG: "rename the input to a shorter name, or restore it into a folder of its own",
    errno.EACCES: "make the output folder writable, or choose another one with -o",
    errno.EPERM: "make the output folder writable, or choose another one with -o",
    errno.EROFS: "choose an output folder on a writable disk with -o",
    errno.ENOSPC: "free disk space, or choose an output folder on another disk with -o",
    errno.EDQUOT: "free disk space, or choose an output folder on another disk with -o",
}


def write_error(target: Path, exc: OSError) -> str:
    """The report of an output that could not be written: which, why, and the fix."""
    fix = _WRITE_FIXES.get(exc.errno, "check the output folder, or choose another one with -o")
    return f"cannot write the output {target}: {exc.strerror or exc}. Fix: {fix}"
