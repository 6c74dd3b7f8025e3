"""``osdface restore``: collecting inputs, the per-file work (``restore_files``) with stand-in
models, and the command itself on the two portraits with the tiny test weights."""

from __future__ import annotations

import io
import math
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.faces import PortraitDetector, identity_pipeline, portrait, psnr
from PIL import Image

from osdface.cli import main
from osdface.commands.restore import MAX_MEGAPIXELS
from osdface.faces import FaceRestorer, RestoreOptions
from osdface.faces.batch import BatchSummary, FileResult, InputFile, collect_inputs, restore_files
from osdface.faces.options import MAX_SEED
from osdface.faces.output_names import beside_name
from osdface.faces.restorer import face_generators
from osdface.images.reading import LARGEST_READABLE_PIXELS


def write_photos(root: Path) -> dict[str, Path]:
    """photos/astronaut.png, photos/family/grace_hopper.jpg, a blank photo, a broken file,
    an empty file, a note and a hidden file."""
    (root / "family").mkdir(parents=True)
    paths = {
        "astronaut": root / "astronaut.png",
        "grace_hopper": root / "family" / "grace_hopper.jpg",
        "blank": root / "family" / "blank.png",
        "broken": root / "broken.jpg",
        "empty": root / "family" / "empty.png",
    }
    Image.fromarray(portrait("astronaut")).save(paths["astronaut"])
    Image.fromarray(portrait("grace_hopper")).save(paths["grace_hopper"], quality=95)
    Image.new("RGB", (64, 48), (200, 180, 160)).save(paths["blank"])
    paths["broken"].write_text("not an image")
    paths["empty"].write_bytes(b"")
    (root / "notes.txt").write_text("ignored: not an image extension")
    (root / ".hidden.png").write_bytes(paths["astronaut"].read_bytes())
    return paths


def test_collect_inputs_keeps_relative_paths_and_skips_what_is_not_input(tmp_path):
    photos = tmp_path / "photos"
    paths = write_photos(photos)
    (photos / "restored").mkdir()
    Image.new("RGB", (8, 8)).save(photos / "restored" / "old_output.png")  # an output folder inside
    (photos / "astronaut.jpg").write_bytes(b"x")  # would collide with astronaut.png's output
    items, missing = collect_inputs([photos, paths["astronaut"], tmp_path / "nowhere"], photos / "restored")
    assert [(i.path.relative_to(photos).as_posix(), i.output.as_posix()) for i in items] == [
        ("astronaut.jpg", "astronaut.jpg.png"),  # astronaut.png, already a PNG, keeps its name
        ("astronaut.png", "astronaut.png"),
        ("broken.jpg", "broken.png"),
        ("family/blank.png", "family/blank.png"),
        ("family/empty.png", "family/empty.png"),
        ("family/grace_hopper.jpg", "family/grace_hopper.png"),
    ]  # astronaut.png named again on its own is not restored twice
    assert missing == [
        FileResult(input=tmp_path / "nowhere", status="failed", error="no such file or folder")
    ]


def test_an_output_never_replaces_an_input(tmp_path):
    # "osdface restore photos/face.png -o photos --overwrite" used to write over the photo
    # (and without --overwrite to skip it as "output exists").
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(portrait("astronaut")).save(photos / "face.png")
    Image.fromarray(portrait("astronaut")).save(photos / "face.jpg", quality=95)
    original = (photos / "face.png").read_bytes()
    items, missing = collect_inputs([photos / "face.png"], photos)
    assert missing == [] and [i.output.as_posix() for i in items] == ["face.png.png"]
    # face.jpg's output would be face.png, the other input: it keeps its full name too.
    both, _ = collect_inputs([photos / "face.jpg", photos / "face.png"], photos)
    assert [i.output.as_posix() for i in both] == ["face.jpg.png", "face.png.png"]
    # The output folder given as a relative path that names the same folder.
    relative, _ = collect_inputs([photos / "face.png"], photos / "sub" / "..")
    assert [i.output.as_posix() for i in relative] == ["face.png.png"]

    results = restore_files(
        lambda: FaceRestorer(identity_pipeline(), PortraitDetector()),
        items,
        photos,
        RestoreOptions(),
        overwrite=True,
    )
    assert [(r.status, r.output) for r in results] == [("restored", photos / "face.png.png")]
    assert (photos / "face.png").read_bytes() == original


def test_beside_names_of_restorers_never_clash_with_another_output_or_an_input(tmp_path):
    # --restorers gfpgan: a.png's beside file a.gfpgan.png was also the input a.gfpgan.png's output.
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "a.gfpgan.png", "b.png"):
        (photos / name).write_bytes(b"")
    items, _ = collect_inputs([photos], tmp_path / "out", beside_keys=("gfpgan", "codeformer"))
    outputs = [i.output for i in items]
    written = [*outputs, *(beside_name(o, k) for o in outputs for k in ("gfpgan", "codeformer"))]
    assert len(set(written)) == len(written)
    assert [o.as_posix() for o in outputs] == ["a.gfpgan.png", "a.png.png", "b.png"]
    # Written into the inputs' own folder: no beside file lands on an input either.
    here, _ = collect_inputs([photos], photos, beside_keys=("gfpgan",))
    beside_files = {photos / beside_name(i.output, "gfpgan") for i in here}
    assert not beside_files & {photos / n for n in ("a.png", "a.gfpgan.png", "b.png")}
    assert not {photos / i.output for i in here} & {photos / n for n in ("a.png", "a.gfpgan.png", "b.png")}


def test_restore_files_writes_skips_and_reports_each_failure(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    paths = write_photos(photos)
    items, _ = collect_inputs([photos], out)
    loads = []

    def get_restorer() -> FaceRestorer:
        loads.append(1)
        return FaceRestorer(identity_pipeline(), PortraitDetector())

    seen: list[FileResult] = []
    results = restore_files(get_restorer, items, out, RestoreOptions(), on_result=seen.append)
    assert seen == results and len(loads) == 1
    by_name = {r.input.name: r for r in results}
    assert by_name["astronaut.png"].status == "restored" and by_name["astronaut.png"].faces == 1
    assert by_name["grace_hopper.jpg"].output == out / "family" / "grace_hopper.png"
    assert by_name["blank.png"].status == "no_face" and by_name["blank.png"].faces == 0
    assert by_name["broken.jpg"].status == "failed" and "not an image" in by_name["broken.jpg"].error
    assert by_name["empty.png"].status == "failed" and "empty" in by_name["empty.png"].error
    for name in ("astronaut", "grace_hopper"):
        written = np.asarray(Image.open(by_name[paths[name].name].output))
        original = np.asarray(Image.open(paths[name]).convert("RGB"))
        assert written.shape == original.shape and psnr(written, original) > 35.0
    blank = np.asarray(Image.open(paths["blank"]))
    np.testing.assert_array_equal(np.asarray(Image.open(out / "family" / "blank.png")), blank)  # unchanged
    assert not list(out.rglob("*.part"))

    summary = BatchSummary.of(results)
    assert (summary.images, summary.faces, summary.no_face, summary.skipped) == (3, 2, 1, 0)
    assert [p.name for p, _ in summary.failures] == ["broken.jpg", "empty.png"]
    assert summary.exit_status == 1
    report = summary.report()
    assert "3 image(s) processed, 2 face(s) restored, 1 without a face" in report and "2 failed" in report
    assert f"FAILED {paths['broken']}: not an image" in report

    # A second run skips every written output and loads nothing.
    good = [i for i in items if i.path.name not in ("broken.jpg", "empty.png")]
    again = restore_files(get_restorer, good, out, RestoreOptions())
    assert [r.status for r in again] == ["skipped"] * 3 and len(loads) == 1
    assert BatchSummary.of(again).exit_status == 0
    # --overwrite restores again, with the options given (here: upscale 2).
    redone = restore_files(get_restorer, good[:1], out, RestoreOptions(upscale=2), overwrite=True)
    assert redone[0].status == "restored" and Image.open(redone[0].output).size == (1024, 1024)


def test_restore_files_reports_a_too_large_image_and_goes_on(tmp_path):
    Image.fromarray(portrait("astronaut")).save(tmp_path / "a.png")
    Image.fromarray(portrait("grace_hopper")).save(tmp_path / "b.png")
    items = [InputFile(tmp_path / "a.png", Path("a.png")), InputFile(tmp_path / "b.png", Path("b.png"))]
    options = RestoreOptions(max_pixels=300_000)  # 512x512 passes, 512x600 does not
    results = restore_files(
        lambda: FaceRestorer(identity_pipeline(), PortraitDetector()), items, tmp_path / "o", options
    )
    assert [r.status for r in results] == ["restored", "failed"]
    assert "512x600" in results[1].error and "megapixels" in results[1].error


def test_restore_files_reports_a_file_with_a_broken_header_and_goes_on(tmp_path):
    # Pillow's PPM plugin raises ValueError (not OSError) for a header cut short: the run
    # used to stop there with a traceback.
    Image.fromarray(portrait("astronaut")).save(tmp_path / "a_good.png")
    (tmp_path / "b_bad.ppm").write_bytes(b"P6\n")
    Image.fromarray(portrait("grace_hopper")).save(tmp_path / "c_good.png")
    items, _ = collect_inputs([tmp_path], tmp_path / "out")
    results = restore_files(
        lambda: FaceRestorer(identity_pipeline(), PortraitDetector()),
        items,
        tmp_path / "out",
        RestoreOptions(),
    )
    assert [(r.input.name, r.status) for r in results] == [
        ("a_good.png", "restored"),
        ("b_bad.ppm", "failed"),
        ("c_good.png", "restored"),
    ]
    assert "broken image header (ValueError: Reached EOF while reading header)" in results[1].error


def test_errors_other_than_bad_inputs_stop_the_run(tmp_path):
    Image.fromarray(portrait("astronaut")).save(tmp_path / "a.png")

    class Exploding:
        def __call__(self, images, **options):
            raise KeyError("a bug, not a bad input")

    with pytest.raises(KeyError):
        restore_files(
            lambda: FaceRestorer(Exploding(), PortraitDetector()),
            [InputFile(tmp_path / "a.png", Path("a.png"))],
            tmp_path / "o",
            RestoreOptions(),
        )


def test_console_script_is_installed():
    run = subprocess.run(
        [str(Path(sys.executable).parent / "osdface"), "restore", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    for flag in (
        "--aligned",
        "--overwrite",
        "--prompt",
        "--color-fix",
        "--device",
        "--dtype",
        "--batch-size",
        "--facexlib-dir",
    ):
        assert flag in run.stdout


def test_missing_weights_exit_2_with_the_reason(tmp_path, capsys):
    Image.fromarray(portrait("astronaut")).save(tmp_path / "a.png")
    status = main(
        ["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--weights", "osdface-test/absent"]
    )
    assert status == 2
    assert "osdface-test/absent" in capsys.readouterr().err
    assert not (tmp_path / "out" / "a.png").exists()


def test_bad_option_values_exit_2(tmp_path, capsys):
    status = main(["restore", str(tmp_path), "-o", str(tmp_path / "o"), "--upscale", "0.5"])
    assert status == 2 and "upscale" in capsys.readouterr().err
    # 0 used to become the default batch size, and NaN passed the size check (NaN < 0 is false).
    status = main(["restore", str(tmp_path), "-o", str(tmp_path / "o"), "--batch-size", "0"])
    assert status == 2 and "batch_size must be at least 1, got 0" in capsys.readouterr().err
    status = main(["restore", str(tmp_path), "-o", str(tmp_path / "o"), "--min-face-size", "nan"])
    assert status == 2 and "min_face_size must be a number >= 0, got nan" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (
            "--max-megapixels",
            "inf",
            "must be above 0 and at most 178 (the largest image Pillow opens), got inf",
        ),
        (
            "--max-megapixels",
            "nan",
            "must be above 0 and at most 178 (the largest image Pillow opens), got nan",
        ),
        (
            "--max-megapixels",
            "-5",
            "must be above 0 and at most 178 (the largest image Pillow opens), got -5",
        ),
        ("--max-megapixels", "0", "must be above 0 and at most 178 (the largest image Pillow opens), got 0"),
        (
            "--max-megapixels",
            "300",
            "must be above 0 and at most 178 (the largest image Pillow opens), got 300",
        ),
        ("--max-megapixels", "lots", "not a number: 'lots'"),
        ("--seed", "-1", f"must be from 0 to {2**63 - 1} (2**63 - 1), got -1"),
        ("--seed", str(2**64 - 1), f"must be from 0 to {2**63 - 1} (2**63 - 1), got {2**64 - 1}"),
        ("--seed", "1.5", "not a whole number: '1.5'"),
    ],
)
def test_option_values_are_refused_at_parsing_naming_the_option(tmp_path, capsys, option, value, message):
    # inf was a traceback (OverflowError), nan a message without the option, -5 failed every
    # file, 300 was overruled by Pillow's own limit, and a seed of 2**64 - 1 overflowed at the
    # second face (seed + 1).
    with pytest.raises(SystemExit) as exited:
        main(["restore", str(tmp_path), "-o", str(tmp_path / "o"), option, value])
    assert exited.value.code == 2
    assert f"argument {option}: {message}" in capsys.readouterr().err


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares a size and holds no pixels: enough for Image.open."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IEND", b"")


def test_the_largest_accepted_max_megapixels_is_one_pillow_opens():
    # An image just within the largest --max-megapixels passes Pillow's decompression-bomb check,
    # so a limit the option accepts is honoured; one megapixel more would not be.
    assert MAX_MEGAPIXELS == 178 and MAX_MEGAPIXELS * 1_000_000 <= LARGEST_READABLE_PIXELS
    side = math.isqrt(MAX_MEGAPIXELS * 1_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        assert Image.open(io.BytesIO(png_header(side, side))).size == (side, side)
        with pytest.raises(Image.DecompressionBombError):
            Image.open(io.BytesIO(png_header(side, side + 2 * side // MAX_MEGAPIXELS)))


def test_the_largest_seed_works_for_every_face():
    generators = face_generators(MAX_SEED, range(50))
    assert len(generators) == 50 and generators[-1].initial_seed() == MAX_SEED + 49
    for seed in (-1, MAX_SEED + 1, 1.5, True):
        with pytest.raises(ValueError, match="seed must be None or an int from 0 to"):
            RestoreOptions(seed=seed)


# --------------------------------------------------------------------------- with the tiny weights


@pytest.mark.slow
def test_cli_aligned_mode_on_the_two_portraits(tiny_hub, aligned_faces, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["restore", str(aligned_faces), "-o", str(out), "--aligned", "--weights", tiny_hub.weights_repo]
    args += ["--base-model", tiny_hub.base_repo, "--device", "cpu", "--dtype", "float32", "--batch-size", "1"]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert (
        "2 image(s) processed, 2 face(s) restored, 0 without a face, 0 skipped (output exists), 0 failed"
        in printed.out
    )
    assert "restore" in printed.err  # the progress bar
    for name in ("astronaut", "grace_hopper"):
        restored = np.asarray(Image.open(out / f"{name}.png"))
        original = np.asarray(Image.open(aligned_faces / f"{name}.png"))
        assert restored.shape == (512, 512, 3)
        assert np.abs(restored.astype(int) - original).mean() > 1.0  # the random model changed it
    # Run again: everything is skipped, nothing is loaded.
    assert main(args) == 0
    assert "2 skipped (output exists)" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")
def test_cli_whole_photo_mode_with_random_detector_weights(tiny_hub, tmp_path, capsys):
    """The default detector path end to end: RetinaFace ResNet-50 weights (random, so what it
    finds is arbitrary) from --facexlib-dir, the tiny pipeline, outputs at relative paths."""
    from facexlib.detection.retinaface import RetinaFace

    facexlib_dir = tmp_path / "facexlib"
    facexlib_dir.mkdir()
    torch.manual_seed(0)
    detector = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))
    torch.save(detector.state_dict(), facexlib_dir / "detection_Resnet50_Final.pth")
    photos, out = tmp_path / "photos", tmp_path / "out"
    paths = write_photos(photos)
    paths["blank"].unlink()
    args = ["restore", str(photos), "-o", str(out), "--facexlib-dir", str(facexlib_dir), "--max-faces", "1"]
    args += ["--weights", tiny_hub.weights_repo, "--base-model", tiny_hub.base_repo, "--device", "cpu"]
    assert main(args) == 1  # the broken and the empty file failed; the run went on
    printed = capsys.readouterr()
    assert "2 image(s) processed" in printed.out and "2 failed" in printed.out
    assert f"FAILED {paths['broken']}: not an image" in printed.out
    assert f"FAILED {paths['empty']}: empty file" in printed.out
    assert Image.open(out / "astronaut.png").size == (512, 512)
    assert Image.open(out / "family" / "grace_hopper.png").size == (512, 600)
