"""``osdface restore``: restore every face of photos (files and folders) into an output folder.

    osdface restore photos/ -o restored/        # whole photos: detect, align, restore, paste back
    osdface restore faces/ -o out/ --aligned    # inputs are already 512x512 aligned faces

Folders are searched recursively for image files and their relative paths are kept; outputs
are PNG files (``a/b.jpg`` -> ``restored/a/b.png``). Outputs that already exist are skipped
unless ``--overwrite``. A file that cannot be read or restored is reported with its reason and
skipped; the exit status is 1 when any input failed, 2 when nothing could run (weights
missing, bad arguments).

The work itself is ``restore_files`` (a list of inputs -> one ``FileResult`` each), separate
from argument parsing and printing so that it can be sharded across processes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from osdface.peers_cli import _peer_settings, add_peer_arguments, beside_writer

if TYPE_CHECKING:
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
DTYPES = ("float32", "float16", "bfloat16")
COLOR_FIXES = ("none", "adain", "wavelet")

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

    def report(self) -> str:
        lines = [
            f"{self.images} image(s) processed, {self.faces} face(s) restored, "
            f"{self.no_face} without a face, {self.skipped} skipped (output exists), "
            f"{len(self.failures)} failed"
        ]
        lines += [f"  FAILED {path}: {reason}" for path, reason in self.failures]
        return "\n".join(lines)


# --------------------------------------------------------------------------- inputs


def collect_inputs(
    paths: Sequence[str | os.PathLike], output_dir: str | os.PathLike
) -> tuple[list[InputFile], list[FileResult]]:
    """Expand files and folders (recursively, in sorted order) into ``InputFile``s.

    A folder's images keep their path relative to it, with a ``.png`` suffix; a file given
    directly goes to the top of the output folder. Hidden files, non-image extensions inside
    folders and anything under ``output_dir`` are ignored. A path that does not exist becomes
    a failed ``FileResult`` (the second list). When two inputs would write the same output,
    the later one keeps its full original name (``a.jpg`` -> ``a.jpg.png``).
    """
    output_root = Path(output_dir).resolve()
    items: list[InputFile] = []
    missing: list[FileResult] = []
    taken: set[Path] = set()
    seen: set[Path] = set()
    for given in paths:
        root = Path(given)
        if root.is_dir():
            found = sorted(
                path
                for path in root.rglob("*")
                if path.is_file()
                and path.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in path.relative_to(root).parts)
                and not path.resolve().is_relative_to(output_root)
            )
            pairs = [(path, path.relative_to(root)) for path in found]
        elif root.is_file():
            pairs = [(root, Path(root.name))]
        else:
            missing.append(FileResult(input=root, status="failed", error="no such file or folder"))
            continue
        for path, relative in pairs:
            if path.resolve() in seen:  # the same file named twice (a folder and a file in it)
                continue
            seen.add(path.resolve())
            output = relative.with_suffix(".png")
            number = 1
            while output in taken:
                output = relative.with_name(relative.name + ("" if number == 1 else f"_{number}") + ".png")
                number += 1
            taken.add(output)
            items.append(InputFile(path=path, output=output))
    return items, missing


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
    output exists loads nothing); cache it if it is expensive. A file that cannot be read,
    is too large, or fails to restore (bad input, out of memory, cannot be written) is a
    failed result and the run goes on; any other error (weights missing, a bug) propagates.
    Photos without a face are written unchanged (status ``no_face``). ``compare`` (e.g. an
    ``osdface.compare.BesideWriter``) is called with (input, result, output) after each write.
    """
    import torch

    from osdface.imageio import ImageTooLargeError, UnreadableImageError

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
                _save_png(restored.image, target)
                if compare is not None:
                    compare(item.path, restored, target)
            except (UnreadableImageError, ImageTooLargeError) as exc:
                result = FileResult(
                    input=item.path, status="failed", error=_without_name(str(exc), item.path)
                )
            except (ValueError, OSError, torch.OutOfMemoryError) as exc:
                result = FileResult(input=item.path, status="failed", error=f"{type(exc).__name__}: {exc}")
            else:
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


def _without_name(message: str, path: Path) -> str:
    """Reading errors start with the file name, which the report already shows."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _save_png(image, target: Path) -> None:
    """Write atomically: an interrupted run never leaves a partial file that a rerun would
    then skip as done."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.part")
    try:
        image.save(partial, format="PNG")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class RestoreCommand:
    """The command's settings, converted from the argparse namespace at the boundary."""

    inputs: tuple[Path, ...]
    output_dir: Path
    options: RestoreOptions
    overwrite: bool = False
    use_parse: bool = False
    weights: str | None = None
    base_model: str | None = None
    device: str | None = None
    dtype: str | None = None
    facexlib_dir: Path | None = None
    compare: tuple[str, ...] = ()
    background: str = "none"
    fidelity: float = 0.5

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> RestoreCommand:
        from osdface.faces import RestoreOptions

        options = RestoreOptions(
            aligned=args.aligned,
            only_center_face=args.only_center_face,
            min_face_size=args.min_face_size,
            max_faces=args.max_faces,
            prompt=args.prompt,
            color_fix=None if args.color_fix == "none" else args.color_fix,
            upscale=args.upscale,
            batch_size=args.batch_size,
            seed=args.seed,
            max_pixels=round(args.max_megapixels * 1e6),
        )
        return cls(
            inputs=tuple(Path(p) for p in args.inputs),
            output_dir=Path(args.output),
            options=options,
            overwrite=args.overwrite,
            use_parse=args.parse_mask,
            weights=args.weights,
            base_model=args.base_model,
            device=args.device,
            dtype=args.dtype,
            facexlib_dir=Path(args.facexlib_dir) if args.facexlib_dir else None,
            **_peer_settings(args),  # osdface.peers_cli: --compare, --background, --codeformer-w
        )

    def load_restorer(self) -> FaceRestorer:
        import torch

        from osdface import OSDFacePipeline
        from osdface.distributed import process_group
        from osdface.faces import FaceRestorer
        from osdface.facexlib_weights import FacexlibWeights
        from osdface.upscale import load_background

        # scale-out (osdface.distributed): a process started by `accelerate launch` uses the
        # device the launcher gave it (one GPU each), unless --device says otherwise
        launched = process_group().device
        device = torch.device(self.device or launched or ("cuda" if torch.cuda.is_available() else "cpu"))
        # end scale-out
        dtype_name = self.dtype or ("float16" if device.type == "cuda" else "float32")
        dtype = getattr(torch, dtype_name)
        from osdface.cpu_tuning import check_cpu_dtype

        check_cpu_dtype(device, dtype)  # warns: bfloat16 without native CPU support is slow
        pipeline = OSDFacePipeline.from_pretrained(weights=self.weights, base_model=self.base_model)
        if (pipeline.device, pipeline.dtype) != (device, dtype):  # loaded on the CPU in float32
            pipeline = pipeline.to(device, dtype)
        restorer = FaceRestorer(
            pipeline,
            options=self.options,
            use_parse=self.use_parse,
            weights=FacexlibWeights.from_env(local_dir=self.facexlib_dir),
            device=device,
            background=load_background(self.background, device=device),
        )
        if not self.options.aligned:
            _ = restorer.detector  # loads RetinaFace now: a missing file is reported before any work
        return restorer

    def run(self) -> int:
        from tqdm import tqdm

        from osdface.hub import WeightsUnavailableError

        todo, missing = collect_inputs(self.inputs, self.output_dir)
        # scale-out (osdface.distributed): under `accelerate launch` each process restores its
        # share of the inputs; the results are gathered, in input order, for the main process
        from osdface.distributed import process_group

        group = process_group()
        found_any = bool(todo or missing)
        # Decided on the whole list, so every process agrees: when anything needs restoring,
        # each loads the models up front, and a missing file stops them all alike instead of
        # leaving the others waiting at the gather below.
        needs_models = any(
            self.overwrite or not (Path(self.output_dir) / item.output).exists() for item in todo
        )
        todo = group.shard(todo)
        # end scale-out
        restorer: FaceRestorer | None = None

        def get_restorer() -> FaceRestorer:
            nonlocal restorer
            if restorer is None:
                restorer = self.load_restorer()
            return restorer

        from osdface import progress

        # The bar advances per restored face (a photo may hold many); files are counted alongside.
        with (
            tqdm(unit="face", desc="restore", file=sys.stderr, disable=not group.is_main) as bar,
            progress.tracking(progress.FaceCounter(bar.update)),
        ):
            files_done = 0

            def on_result(result: FileResult) -> None:
                nonlocal files_done
                if result.status == "failed":
                    bar.write(f"FAILED {result.input}: {result.error}", file=sys.stderr)
                files_done += 1
                bar.set_postfix_str(f"file {files_done}/{len(todo)}")

            try:
                if needs_models:
                    progress.attach(get_restorer().pipeline)
                compare = beside_writer(self, get_restorer) if self.compare and needs_models else None
                results = restore_files(
                    get_restorer,
                    todo,
                    self.output_dir,
                    self.options,
                    overwrite=self.overwrite,
                    on_result=on_result,
                    compare=compare,
                )
            except WeightsUnavailableError as exc:
                bar.close()
                print(f"error: {exc}", file=sys.stderr)
                return 2
        results = group.gather(results)  # scale-out: every process's results, in input order
        summary = BatchSummary.of([*missing, *results])
        if group.is_main:  # scale-out: only the main process reports
            print(summary.report())
        if not found_any:
            if group.is_main:
                print("no input images found", file=sys.stderr)
            return 1
        return summary.exit_status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="restore every face of photos (files or folders) with OSDFace",
        description="Restore every face of photos (files or folders) into an output folder, as PNG.",
        epilog=(
            "examples:\n"
            "  osdface restore photos/ -o restored/        # whole photos\n"
            "  osdface restore faces/ -o out/ --aligned    # 512x512 aligned faces\n"
            "exit status: 0 all done, 1 some input failed, 2 nothing could run (e.g. weights missing)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    parser.add_argument("-o", "--output", required=True, help="output folder (relative paths are kept; PNG)")
    parser.add_argument("--overwrite", action="store_true", help="restore again when the output exists")
    parser.add_argument("--aligned", action="store_true", help="inputs are already 512x512 aligned faces")
    parser.add_argument(
        "--prompt", default=None, help="condition on this SD 2.1 text prompt instead of the VRE (ablation)"
    )
    parser.add_argument(
        "--color-fix",
        choices=COLOR_FIXES,
        default="none",
        help="colour correction of the restored faces (default: none)",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default=None,
        help="pipeline dtype (default: float16 on cuda, else float32)",
    )
    parser.add_argument("--batch-size", type=int, default=4, help="faces per pipeline call (default: 4)")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the VAE posterior sample, face i gets seed + i (default: 0)",
    )
    parser.add_argument(
        "--upscale",
        type=float,
        default=1.0,
        help="scale of the whole output photo, 1 to 8; the background is Lanczos-resampled (default: 1)",
    )
    parser.add_argument(
        "--only-center-face", action="store_true", help="restore only the face nearest the centre"
    )
    parser.add_argument(
        "--min-face-size",
        type=float,
        default=16.0,
        help="ignore faces whose box is smaller than this many pixels (default: 16)",
    )
    parser.add_argument(
        "--max-faces",
        type=int,
        default=None,
        help="restore at most this many faces, the largest (default: all)",
    )
    parser.add_argument(
        "--parse-mask",
        action="store_true",
        help="paste with facexlib's face-parsing mask (needs its weights)",
    )
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=50.0,
        help="refuse input images with more megapixels (default: 50)",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="OSDFace weights: Hub repo id or folder (default: OSDFACE_WEIGHTS, else alecccdd/OSDFace)",
    )
    parser.add_argument(
        "--base-model",
        default=None,
        help="SD 2.1 base model: Hub repo id or folder (default: OSDFACE_BASE_MODEL, else the mirror in osdface.hub)",
    )
    parser.add_argument(
        "--facexlib-dir",
        default=None,
        help="folder holding facexlib's weight files (else OSDFACE_FACEXLIB_DIR)",
    )
    add_peer_arguments(parser)
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    try:
        command = RestoreCommand.from_namespace(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return command.run()
