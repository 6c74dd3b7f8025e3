"""``osdface restore``: restore every face of photos (files and folders) into an output folder.

    osdface restore photos/ -o restored/        # whole photos: detect, align, restore, paste back
    osdface restore faces/ -o out/ --aligned    # inputs are already 512x512 aligned faces
    osdface restore clip.mp4 -o out/            # clips: every face tracked, restored, audio copied

Folders are searched recursively for image files and their relative paths are kept; outputs
are PNG files (``a/b.jpg`` -> ``restored/a/b.png``), clips MP4 (``osdface.video``). An output
made from the same input is skipped unless ``--overwrite``; another file in the output folder
is never overwritten (``osdface.faces.output_names``). A file that cannot be used or written
is reported with its reason and skipped; the exit status is 1 when any input failed, 2 when
nothing could run (weights missing, bad arguments, an output folder that cannot be written).
The work itself is ``osdface.faces.batch``; this module parses and prints.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

# The models' packages load when the command runs (osdface.lazy): `osdface --help` stays instant.
import osdface
import osdface.faces
import osdface.pipeline
import osdface.restorers
import osdface.video
from osdface.choices import COLOR_FIX_NAMES, ColorFix
from osdface.commands.model_options import ModelOptions, add_model_arguments
from osdface.commands.restorer_options import add_restorer_arguments, beside_writer, restorer_settings
from osdface.commands.video_options import ClipSettings, add_video_arguments
from osdface.faces.batch import BatchSummary, FileResult, collect_inputs, restore_files
from osdface.faces.options import MAX_SEED, RestoreOptions
from osdface.files import check_writable_folder
from osdface.images.reading import LARGEST_READABLE_PIXELS
from osdface.runtime import progress
from osdface.runtime.cuda_diagnosis import CudaUnavailableError, check_requested_device
from osdface.runtime.devices import resolve_device, resolve_dtype
from osdface.runtime.distributed import process_group
from osdface.video.clip_batch import collect_clips, is_clip, restore_clips
from osdface.weights.facexlib_files import FacexlibWeights
from osdface.weights.hub import WeightsUnavailableError

if TYPE_CHECKING:
    from osdface.faces import FaceRestorer
    from osdface.video import ClipRestorer, VideoResult

# Pillow opens no image above this (osdface.images.reading.LARGEST_READABLE_PIXELS): a higher
# --max-megapixels would be overruled by Pillow, with a message that does not name the option.
MAX_MEGAPIXELS = LARGEST_READABLE_PIXELS // 1_000_000


@dataclass(frozen=True)
class RestoreCommand:
    """The command's settings, converted from the argparse namespace at the boundary."""

    inputs: tuple[Path, ...]
    output_dir: Path
    options: RestoreOptions
    model: ModelOptions = ModelOptions()
    overwrite: bool = False
    use_parse: bool = False
    compare: tuple[str, ...] = ()
    background: str = "none"
    fidelity: float = 0.5
    clips: ClipSettings = ClipSettings()
    # Faces per pipeline call in clips; None: by device (osdface.video.clip_batch_size).
    clip_batch_size: int | None = None

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> RestoreCommand:
        options = RestoreOptions(
            aligned=args.aligned,
            only_center_face=args.only_center_face,
            min_face_size=args.min_face_size,
            max_faces=args.max_faces,
            prompt=args.prompt,
            color_fix=ColorFix.argument(args.color_fix),
            upscale=args.upscale,
            batch_size=4 if args.batch_size is None else args.batch_size,  # 0 is refused, not the default
            seed=args.seed,
            max_pixels=round(args.max_megapixels * 1e6),
        )
        return cls(
            inputs=tuple(Path(p) for p in args.inputs),
            output_dir=Path(args.output),
            options=options,
            model=ModelOptions.from_namespace(args),
            overwrite=args.overwrite,
            use_parse=args.parse_mask,
            clips=ClipSettings.from_namespace(args),
            clip_batch_size=args.batch_size,
            **restorer_settings(
                args
            ),  # osdface.commands.restorer_options: --restorers, --background, --codeformer-w
        )

    def load_restorer(self) -> FaceRestorer:
        # under `accelerate launch` each process uses the device the launcher gave it
        launched = process_group().device
        if launched is None:  # accelerate gives each process a device it has checked
            problem = check_requested_device(self.model.device)  # raises for --device cuda
            if problem is not None:
                print(f"warning: {problem.message()}", file=sys.stderr)
        device = resolve_device(self.model.device, launched=launched)
        dtype = resolve_dtype(self.model.dtype, device)
        osdface.pipeline.check_cpu_dtype(device, dtype)  # warns: bfloat16 without native CPU support is slow
        pipeline = osdface.OSDFacePipeline.from_pretrained(
            weights=self.model.weights,
            base_model=self.model.base_model,
            revision=self.model.revision,
            base_revision=self.model.base_revision,
        )
        if (pipeline.device, pipeline.dtype) != (device, dtype):  # loaded on the CPU in float32
            pipeline = pipeline.to(device, dtype)
        restorer = osdface.faces.FaceRestorer(
            pipeline,
            options=self.options,
            use_parse=self.use_parse,
            weights=FacexlibWeights.from_env(local_dir=self.model.facexlib_dir),
            device=device,
            background=osdface.restorers.load_background(self.background, device=device),
        )
        if not self.options.aligned:
            _ = restorer.detector  # loads RetinaFace now: a missing file is reported before any work
        return restorer

    def load_clip_restorer(self, restorer: FaceRestorer) -> ClipRestorer:
        """The clips' restorer around the photos' one; ``--restorers`` restore the same tracked
        faces into NAME.KEY.mp4 (a restorer whose weights are missing is reported and left out)."""
        others = {}
        if self.compare:
            restorers = osdface.restorers.RestorerSet(
                device=restorer.device, options={"fidelity": self.fidelity}
            )
            models, errors = restorers.get(self.compare)
            for key, reason in errors.items():
                print(f"warning: --restorers {key} is skipped: {reason}", file=sys.stderr)
            others = {key: osdface.restorers.FaceModelPipeline(model) for key, model in models.items()}
        batch_size = self.clip_batch_size or osdface.video.clip_batch_size(restorer.device)
        options = osdface.video.VideoOptions(
            faces=replace(self.options, batch_size=batch_size),
            tracking=self.clips.tracking,
            side_by_side=self.clips.side_by_side,
        )
        return osdface.video.ClipRestorer(restorer, options, others=others)

    def run(self) -> int:
        # A clip named on the command line is a clip, not an image that fails to decode.
        photos = [path for path in self.inputs if not (path.is_file() and is_clip(path))]
        left_out: list[Path] = []  # images under the output folder: earlier outputs, never inputs
        todo, missing = collect_inputs(photos, self.output_dir, beside_keys=self.compare, left_out=left_out)
        clips = collect_clips(self.inputs, self.output_dir, suffix=self.clips.suffix)
        if clips and self.options.aligned:
            print("error: --aligned applies to aligned face images, not to clips", file=sys.stderr)
            return 2
        # Under `accelerate launch` each process restores its share of the inputs; the results
        # are gathered, in input order, for the main process, which alone reports.
        group = process_group()
        # Output names depend on the files in the output folder: every process names them
        # before any of them writes one, so that they all agree.
        group.barrier()
        found_any = bool(todo or missing or clips)
        if (todo or clips) and not self._output_writable():
            return 2
        # Decided on the whole list, so every process agrees: when anything needs restoring,
        # each loads the models up front, and a missing file stops them all alike instead of
        # leaving the others waiting at the gather.
        needs_models = any(
            self.overwrite or not os.path.exists(self.output_dir / item.output) for item in [*todo, *clips]
        )
        results = self._restore(group.shard(todo), needs_models, show=group.is_main)
        if results is None:
            return 2
        clip_results: list[FileResult] = []
        if clips:  # every process has the same list, so all of them gather below
            clip_results = self._restore_clips(group.shard(clips), show=group.is_main)
            if clip_results is None:
                return 2
        summary = BatchSummary.of([*missing, *group.gather(results)])
        clip_summary = BatchSummary.of(group.gather(clip_results)) if clips else None
        if group.is_main:
            if todo or missing or not clips:
                print(summary.report())
            if clip_summary is not None:
                print(clip_summary.report("clip"))
            self._report_left_out(left_out, found_any)
        if not found_any:
            return 1
        return max(summary.exit_status, clip_summary.exit_status if clip_summary else 0)

    def _output_writable(self) -> bool:
        """Whether the output folder can be written, checked before any model loads (a
        folder that cannot be written used to stop the run at its first output)."""
        try:
            check_writable_folder(self.output_dir)
        except OSError as exc:
            print(f"error: cannot write to {self.output_dir}: {exc.strerror or exc}", file=sys.stderr)
            return False
        return True

    def _report_left_out(self, left_out: list[Path], found_any: bool) -> None:
        """Say why images were not taken: they lie inside the output folder (``-o`` names the
        input folder or one above it), or say that nothing was found."""
        if left_out and not found_any:
            print(
                f"no input images or clips found: the {len(left_out)} image(s) found lie inside the "
                f"output folder {self.output_dir}, whose files are never inputs; give another folder with -o",
                file=sys.stderr,
            )
        elif left_out and self._input_folder_inside_output():
            print(
                f"note: {len(left_out)} image(s) inside the output folder {self.output_dir} were left out "
                "(its files are never inputs)",
                file=sys.stderr,
            )
        elif not found_any:
            print("no input images or clips found", file=sys.stderr)

    def _input_folder_inside_output(self) -> bool:
        """An input folder is the output folder or lies inside it: what is left out there may
        be photos, not earlier outputs (those of ``-o photos/restored`` need no note)."""
        output = self.output_dir.resolve()
        return any(path.is_dir() and path.resolve().is_relative_to(output) for path in self.inputs)

    def _restore(self, todo, needs_models: bool, *, show: bool) -> list[FileResult] | None:
        """This process's share, with a progress bar per restored face (a photo may hold many)
        and files counted alongside; None when the weights are missing (reported)."""
        restorer: FaceRestorer | None = None

        def get_restorer() -> FaceRestorer:
            nonlocal restorer
            if restorer is None:
                restorer = self.load_restorer()
            return restorer

        with (
            tqdm(unit="face", desc="restore", file=sys.stderr, disable=not show or not todo) as bar,
            progress.tracking(progress.FaceCounter(bar.update)),
        ):
            done = 0

            def on_result(result: FileResult) -> None:
                nonlocal done
                if result.status == "failed":
                    bar.write(f"FAILED {result.input}: {result.error}", file=sys.stderr)
                done += 1
                bar.set_postfix_str(f"file {done}/{len(todo)}")

            try:
                if needs_models:
                    progress.attach(get_restorer().pipeline)
                compare = beside_writer(self, get_restorer) if self.compare and needs_models else None
                return restore_files(
                    get_restorer,
                    todo,
                    self.output_dir,
                    self.options,
                    overwrite=self.overwrite,
                    on_result=on_result,
                    compare=compare,
                )
            except (WeightsUnavailableError, CudaUnavailableError) as exc:
                bar.close()
                print(f"error: {exc}", file=sys.stderr)
                return None

    def _restore_clips(self, clips, *, show: bool) -> list[FileResult] | None:
        """This process's share of the clips, with a progress bar per frame; each clip's report
        (faces, tracks, flicker, time per stage) is printed as it finishes."""
        restorer: ClipRestorer | None = None

        def get_restorer() -> ClipRestorer:
            nonlocal restorer
            if restorer is None:
                restorer = self.load_clip_restorer(self.load_restorer())
            return restorer

        with tqdm(unit="frame", desc="clips", file=sys.stderr, disable=not show) as bar:

            def on_frame(done: int, total: int | None) -> None:
                if bar.total != total:
                    bar.reset(total=total)
                bar.n = done
                bar.refresh()

            def on_result(result: FileResult, video: VideoResult | None) -> None:
                if result.status == "failed":
                    bar.write(f"FAILED {result.input}: {result.error}", file=sys.stderr)
                elif video is not None:
                    bar.write(video.report(), file=sys.stderr)

            try:
                return restore_clips(
                    get_restorer,
                    clips,
                    self.output_dir,
                    overwrite=self.overwrite,
                    on_result=on_result,
                    on_frame=on_frame,
                )
            except (WeightsUnavailableError, CudaUnavailableError) as exc:
                bar.close()
                print(f"error: {exc}", file=sys.stderr)
                return None


# --------------------------------------------------------------------------- the parser


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="restore every face of photos (files or folders) with OSDFace",
        description="Restore every face of photos and clips (files or folders) into an output folder: photos "
        "as PNG, clips as MP4 (H.264, the audio copied).",
        epilog=(
            "examples:\n"
            "  osdface restore photos/ -o restored/        # whole photos\n"
            "  osdface restore faces/ -o out/ --aligned    # 512x512 aligned faces\n"
            "  osdface restore clip.mp4 -o out/ --side-by-side   # a clip, and input|output beside it\n"
            "exit status: 0 all done, 1 some input failed, 2 nothing could run (e.g. weights missing)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", help="image files, clips and/or folders (searched recursively)")
    parser.add_argument("-o", "--output", required=True, help="output folder (relative paths are kept; PNG)")
    parser.add_argument(
        "--overwrite", action="store_true", help="restore again when an input's own output exists"
    )
    parser.add_argument(
        "--max-megapixels",
        type=_megapixels,
        default=50.0,
        help=f"refuse input images with more megapixels: above 0 and at most {MAX_MEGAPIXELS}, the "
        "largest image Pillow opens (default: 50)",
    )
    _add_restore_arguments(parser)
    _add_face_arguments(parser)
    add_model_arguments(parser)
    add_restorer_arguments(parser)
    add_video_arguments(parser)
    parser.set_defaults(func=_main)


def _add_restore_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("restoration")
    group.add_argument("--aligned", action="store_true", help="inputs are already 512x512 aligned faces")
    group.add_argument(
        "--prompt", default=None, help="condition on this SD 2.1 text prompt instead of the VRE (ablation)"
    )
    group.add_argument(
        "--color-fix",
        choices=COLOR_FIX_NAMES,
        default=ColorFix.NONE.value,
        help="colour correction of the restored faces (default: none)",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="faces per pipeline call (default: 4 for photos; for clips 8 on a GPU, 2 on a CPU)",
    )
    group.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="seed of the VAE posterior sample, 0 to 2**63 - 1; face i gets seed + i (in clips: track i) "
        "(default: 0)",
    )
    group.add_argument(
        "--upscale",
        type=float,
        default=1.0,
        help="scale of the whole output photo, 1 to 8; the background is Lanczos-resampled (default: 1)",
    )


def _add_face_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("faces in whole photos")
    group.add_argument(
        "--only-center-face",
        action="store_true",
        help="restore only the face nearest the centre, chosen among all the faces found (before "
        "--max-faces, which then changes nothing)",
    )
    group.add_argument(
        "--min-face-size",
        type=float,
        default=16.0,
        help="ignore faces whose box is smaller than this many pixels (default: 16)",
    )
    group.add_argument(
        "--max-faces",
        type=int,
        default=None,
        help="restore at most this many faces, the largest (default: all); with --only-center-face "
        "the centre face is restored whatever its size",
    )
    group.add_argument(
        "--parse-mask",
        action="store_true",
        help="paste with facexlib's face-parsing mask (needs its weights)",
    )


def _megapixels(text: str) -> float:
    """--max-megapixels: a finite number in (0, MAX_MEGAPIXELS]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value <= MAX_MEGAPIXELS:  # NaN fails both comparisons
        raise argparse.ArgumentTypeError(
            f"must be above 0 and at most {MAX_MEGAPIXELS} (the largest image Pillow opens), got {text}"
        )
    return value


def _seed(text: str) -> int:
    """--seed: a whole number in [0, MAX_SEED] (``RestoreOptions`` checks the same)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_SEED} (2**63 - 1), got {text}")
    return value


def _main(args: argparse.Namespace) -> int:
    try:
        command = RestoreCommand.from_namespace(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return command.run()
