"""Restore a list of clip files into an output folder: the clips' half of ``osdface restore``
(``osdface.faces.batch`` is the photos' half, and shares its ``InputFile`` and ``FileResult``).

``collect_clips`` expands files and folders into clips (relative paths kept, the output in the
chosen container, ``.mp4`` by default); ``restore_clips`` restores each with a
``ClipRestorer``. A clip the package cannot use (``ImageError``: not a video, truncated, over
a limit, an unknown codec) is a failed result and the run goes on; any other error stops it,
and the clip's work folder stays so that the next run resumes it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from osdface.errors import ImageError
from osdface.faces.batch import FileResult, InputFile, folder_files
from osdface.video.clip_restorer import ClipRestorer, VideoResult, same_file_error

# The containers people bring (phones: mp4/mov; browsers' recordings: webm; others: mkv, avi).
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"})


def is_clip(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def collect_clips(
    paths: Sequence[str | os.PathLike], output_dir: str | os.PathLike, *, suffix: str = ".mp4"
) -> list[InputFile]:
    """The clips among ``paths``: files with a video extension, and those inside folders
    (recursively, sorted, hidden files and anything under ``output_dir`` left out). Outputs keep
    the relative path with ``suffix``; a clip named twice (a folder and a file in it) is
    restored once; inputs that would write one output keep their full names, numbered from the
    third on (``a.mov``, ``a.mkv``, ``x/a.mov`` -> ``a.mp4``, ``a.mkv.mp4``, ``a.mov_2.mp4``), in
    input order (photos' outputs also record their input: ``osdface.faces.output_names``)."""
    output_root = Path(output_dir).resolve()
    items: list[InputFile] = []
    taken: set[Path] = set()
    seen: set[Path] = set()
    for given in paths:
        root = Path(given)
        if root.is_dir():
            pairs = folder_files(root, VIDEO_EXTENSIONS, output_root)
        elif root.is_file() and is_clip(root):
            pairs = [(root, Path(root.name))]
        else:
            continue
        for path, relative in pairs:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            output = relative.with_suffix(suffix)
            number = 1
            while output in taken:
                output = relative.with_name(relative.name + ("" if number == 1 else f"_{number}") + suffix)
                number += 1
            taken.add(output)
            items.append(InputFile(path=path, output=output))
    return items


def restore_clips(
    get_restorer: Callable[[], ClipRestorer],
    inputs: Sequence[InputFile],
    output_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    on_result: Callable[[FileResult, VideoResult | None], None] | None = None,
    on_frame: Callable[[int, int | None], None] | None = None,
) -> list[FileResult]:
    """Restore each clip into ``output_dir / input.output``; one ``FileResult`` each, and
    ``on_result(file_result, video_result or None)`` after each. ``get_restorer`` is called when
    the first clip needs restoring. An existing output is skipped unless ``overwrite``."""
    output_root = Path(output_dir)
    restorer: ClipRestorer | None = None
    results: list[FileResult] = []
    for item in inputs:
        target = output_root / item.output
        started = time.perf_counter()
        video: VideoResult | None = None
        if target.resolve() == item.path.resolve():
            error = same_file_error(item.path)
            result = FileResult(input=item.path, status="failed", error=error.message(with_source=False))
        elif target.exists() and not overwrite:
            result = FileResult(input=item.path, status="skipped", output=target)
        else:
            if restorer is None:
                restorer = get_restorer()
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                video = restorer.restore(item.path, target, on_frame=on_frame)
            except ImageError as exc:
                result = FileResult(input=item.path, status="failed", error=exc.message(with_source=False))
            else:
                result = FileResult(
                    input=item.path,
                    status="no_face" if video.no_face_found else "restored",
                    output=target,
                    faces=video.faces,
                    seconds=time.perf_counter() - started,
                )
        results.append(result)
        if on_result is not None:
            on_result(result, video)
    return results
