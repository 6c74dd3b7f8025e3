"""``osdface restore``'s outputs: their names across runs (each records its input), long file
names, output folders that cannot be written, and inputs left out for lying in the output
folder. The command runs in-process with a stand-in restorer (identity pipeline, no face
detected), so everything above the model is the real code."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from helpers.faces import FixedDetector, identity_pipeline
from PIL import Image

from osdface.cli import main
from osdface.commands.restore import RestoreCommand
from osdface.faces import FaceRestorer, RestoreOptions
from osdface.faces.batch import InputFile, collect_inputs, restore_files
from osdface.faces.output_names import SOURCE_KEY, recorded_source
from osdface.files import atomic_path, save_png_atomic

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 160, 0)


@pytest.fixture
def stand_in(monkeypatch) -> list[int]:
    """``osdface restore`` with an identity pipeline and no face: photos are written unchanged.
    The list counts the loads of the restorer."""
    loads: list[int] = []

    def load(command: RestoreCommand) -> FaceRestorer:
        loads.append(1)
        return FaceRestorer(identity_pipeline(), FixedDetector([]), options=command.options)

    monkeypatch.setattr(RestoreCommand, "load_restorer", load)
    return loads


def save(path: Path, colour: tuple[int, int, int], **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 32), colour).save(path, **params)
    return path


def colour_of(path: Path) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(Image.open(path).convert("RGB"))[0, 0])


def outputs(folder: Path) -> dict[str, tuple[int, ...]]:
    return {p.name: colour_of(p) for p in sorted(folder.iterdir()) if p.is_file()}


# --------------------------------------------------------------------------- names across runs


def test_a_photo_added_later_with_the_same_stem_is_restored_and_nothing_is_redone(tmp_path, stand_in, capsys):
    # The reviewer's two runs: a.jpg added after a.png had been restored used to take out/a.png
    # ("skipped", never restored) while a.png was restored a second time into a.png.png.
    photos, out = tmp_path / "photos", tmp_path / "out"
    save(photos / "a.png", RED)
    assert main(["restore", str(photos), "-o", str(out)]) == 0
    assert outputs(out) == {"a.png": RED}
    assert recorded_source(out / "a.png") == "a.png"
    save(photos / "a.jpg", BLUE, quality=100)
    capsys.readouterr()
    assert main(["restore", str(photos), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 image(s) processed" in printed and "1 skipped (output exists)" in printed
    written = outputs(out)
    assert set(written) == {"a.png", "a.jpg.png"}
    assert written["a.png"] == RED and written["a.jpg.png"][2] > 200  # the blue photo is in an output
    assert recorded_source(out / "a.jpg.png") == "a.jpg"
    # A third run finds both done, loads nothing and renames nothing.
    loads = len(stand_in)
    assert main(["restore", str(photos), "-o", str(out)]) == 0
    assert "2 skipped (output exists)" in capsys.readouterr().out and len(stand_in) == loads
    assert set(outputs(out)) == {"a.png", "a.jpg.png"}


def test_the_first_output_keeps_its_input_whichever_stem_came_first(tmp_path, stand_in, capsys):
    # The other order: a.jpg restored alone owns a.png; a.png added later gets a.png.png, and
    # --overwrite restores each into its own output, never into the other's.
    photos, out = tmp_path / "photos", tmp_path / "out"
    save(photos / "a.jpg", BLUE, quality=100)
    assert main(["restore", str(photos), "-o", str(out)]) == 0
    save(photos / "a.png", RED)
    assert main(["restore", str(photos), "-o", str(out), "--overwrite"]) == 0
    written = outputs(out)
    assert set(written) == {"a.png", "a.png.png"}
    assert written["a.png"][2] > 200 and written["a.png.png"] == RED
    assert (recorded_source(out / "a.png"), recorded_source(out / "a.png.png")) == ("a.jpg", "a.png")


def test_names_in_one_run_do_not_depend_on_sorting_and_files_not_ours_are_kept(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    for name in ("a.jpg", "a.png", "b.jpg", "c.jpg"):
        save(photos / name, RED)
    save(out / "b.png", GREEN)  # a file without a record: not b.jpg's, never overwritten nor done
    save_png_atomic(np.zeros((4, 4, 3), np.uint8), out / "c.png", text={SOURCE_KEY: "c.jpeg"})
    items, _ = collect_inputs([photos], out)
    assert {i.path.name: i.output.as_posix() for i in items} == {
        "a.jpg": "a.jpg.png",  # an input already named .png keeps its name
        "a.png": "a.png",
        "b.jpg": "b.jpg.png",
        "c.jpg": "c.jpg.png",  # c.png was made from another file
    }
    results = restore_files(
        lambda: FaceRestorer(identity_pipeline(), FixedDetector([])),
        items,
        out,
        RestoreOptions(),
        overwrite=True,
    )
    assert all(r.status == "no_face" for r in results)
    assert colour_of(out / "b.png") == GREEN and recorded_source(out / "c.png") == "c.jpeg"


def test_the_record_is_read_from_the_header_for_any_file_name(tmp_path):
    name = "photo \udcff été.jpg"  # a byte that is not UTF-8, as Linux file names may hold
    target = save_png_atomic(np.zeros((8, 8, 3), np.uint8), tmp_path / "out.png", text={SOURCE_KEY: name})
    assert recorded_source(target) == name
    assert Image.open(target).size == (8, 8)
    assert recorded_source(save(tmp_path / "plain.png", RED)) is None
    assert recorded_source(save(tmp_path / "plain.jpg", RED)) is None
    assert recorded_source(tmp_path / "absent.png") is None and recorded_source(tmp_path) is None


# --------------------------------------------------------------------------- writing outputs


def test_a_long_legal_file_name_is_restored_and_the_temporary_name_stays_short(tmp_path, stand_in):
    # 70 CJK characters (214 bytes with .jpg; the limit is 255): the temporary file of the old
    # atomic_path was 46 bytes longer than the target, and the whole batch stopped there.
    photos, out = tmp_path / "photos", tmp_path / "out"
    long_name = "写真" * 35 + ".jpg"
    save(photos / long_name, RED)
    save(photos / "龍_after.jpg", BLUE)
    assert main(["restore", str(photos), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(["写真" * 35 + ".png", "龍_after.png"])
    with atomic_path(out / ("x" * 250 + ".png")) as partial:
        assert len(partial.name) == len(".osdface-") + 12 + len(".part")
        partial.write_bytes(b"")
    assert (out / ("x" * 250 + ".png")).is_file()


def test_an_output_that_cannot_be_written_fails_that_file_and_the_batch_goes_on(tmp_path, stand_in, capsys):
    # x.png and x.jpg with a 250-byte stem: x.png keeps its name, and x.jpg's full name
    # (258 bytes) is longer than the file system takes. That file fails, named with the reason
    # and the fix; the others are written (the OSError used to stop the run with a traceback).
    photos, out = tmp_path / "photos", tmp_path / "out"
    stem = "x" * 250
    save(photos / f"{stem}.jpg", BLUE)
    save(photos / f"{stem}.png", RED)
    save(photos / "z.jpg", GREEN)
    items, _ = collect_inputs([photos], out)
    results = restore_files(
        lambda: FaceRestorer(identity_pipeline(), FixedDetector([])), items, out, RestoreOptions()
    )
    assert [r.status for r in results] == ["failed", "no_face", "no_face"]
    assert results[0].error == (
        f"cannot write the output {out / (stem + '.jpg.png')}: File name too long. "
        "Fix: rename the input to a shorter name, or restore it into a folder of its own"
    )
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}.png", "z.png"]  # no temporary file left
    # The command reports it like any other failed file: exit status 1, the batch complete.
    assert main(["restore", str(photos), "-o", str(tmp_path / "again")]) == 1
    printed = capsys.readouterr().out
    assert "2 image(s) processed" in printed and "1 failed" in printed and "File name too long" in printed


@pytest.mark.parametrize("kind", ["file", "under a file"])
def test_an_output_folder_that_cannot_be_written_exits_2_before_any_model_loads(
    tmp_path, stand_in, capsys, kind
):
    photo = save(tmp_path / "p.png", RED)
    (tmp_path / "out.txt").write_text("not a folder")
    out = tmp_path / "out.txt" if kind == "file" else tmp_path / "out.txt" / "restored"
    assert main(["restore", str(photo), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    reason = "it is a file, not a folder" if kind == "file" else os.strerror(errno.ENOTDIR)
    assert f"error: cannot write to {out}: {reason}" in err and "Traceback" not in err
    assert stand_in == []  # refused before the models


# --------------------------------------------------------------------------- what is an input


def test_folders_pick_up_avif_photos(tmp_path, stand_in, capsys):
    phone, out = tmp_path / "phone", tmp_path / "out"
    save(phone / "IMG_0001.avif", RED)
    save(phone / "IMG_0002.jpg", BLUE)
    assert main(["restore", str(phone), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["IMG_0001.png", "IMG_0002.png"]
    assert "2 image(s) processed" in capsys.readouterr().out


def test_inputs_inside_the_output_folder_are_left_out_with_the_reason(tmp_path, stand_in, capsys):
    photos = tmp_path / "photos"
    for number in range(3):
        save(photos / f"IMG_{number}.jpg", RED)
    assert main(["restore", str(photos), "-o", str(photos)]) == 1
    err = capsys.readouterr().err
    assert (
        f"no input images or clips found: the 3 image(s) found lie inside the output folder {photos}, "
        "whose files are never inputs; give another folder with -o"
    ) in err
    # Another input beside them: the run goes on, and says what it left out.
    other = save(tmp_path / "other.jpg", BLUE)
    assert main(["restore", str(photos), str(other), "-o", str(photos)]) == 0
    printed = capsys.readouterr()
    assert "1 image(s) processed" in printed.out
    assert f"note: 3 image(s) inside the output folder {photos} were left out" in printed.err
    # An output folder inside the input folder holds outputs: leaving them out needs no note.
    assert main(["restore", str(photos), "-o", str(photos / "restored")]) == 0
    assert main(["restore", str(photos), "-o", str(photos / "restored")]) == 0
    assert "note:" not in capsys.readouterr().err
    left_out: list[Path] = []
    items, _ = collect_inputs([photos], photos / "restored", left_out=left_out)
    assert len(items) == 4 and sorted(p.name for p in left_out) == [f"IMG_{n}.png" for n in range(3)] + [
        "other.png"
    ]


def test_restore_files_names_the_input_in_each_output(tmp_path):
    save(tmp_path / "face.jpg", RED)
    results = restore_files(
        lambda: FaceRestorer(identity_pipeline(), FixedDetector([])),
        [InputFile(tmp_path / "face.jpg", Path("face.png"))],
        tmp_path / "out",
        RestoreOptions(),
    )
    assert results[0].status == "no_face"
    assert Image.open(tmp_path / "out" / "face.png").info[SOURCE_KEY] == "face.jpg"


def test_aligned_faces_too_small_for_the_pipeline_fail_per_file(tmp_path, stand_in, capsys):
    faces, out = tmp_path / "faces", tmp_path / "out"
    dot = save(faces / "dot.png", RED)
    Image.new("RGB", (1, 1), RED).save(dot)
    Image.new("RGB", (64, 64), BLUE).save(faces / "face.png")
    assert main(["restore", str(faces), "-o", str(out), "--aligned"]) == 1
    assert f"FAILED {dot}: the face is only 1x1 pixels; at least 32 are needed" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["face.png"]
