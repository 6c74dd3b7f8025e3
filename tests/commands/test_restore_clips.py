"""``osdface restore`` on clips: the tiny test weights, a stand-in detector (facexlib's
RetinaFace needs real weights to find a face), real H.264 clips with audio."""

from __future__ import annotations

import av
import numpy as np
import pytest
from helpers.clips import MovingPortrait, PortraitFinder
from helpers.faces import RecordingPipeline, portrait
from PIL import Image

from osdface.cli import main
from osdface.errors import VideoError
from osdface.faces import FaceRestorer
from osdface.faces.facexlib_models import RetinaFaceDetector
from osdface.testing.clips import make_clip
from osdface.video import ClipRestorer, read_frames
from osdface.video.clip_batch import collect_clips, restore_clips

FRAMES = 4


def audio_packets(path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


@pytest.fixture
def finder(monkeypatch) -> PortraitFinder:
    finder = PortraitFinder()
    monkeypatch.setattr(RetinaFaceDetector, "load", classmethod(lambda cls, *args, **kwargs: finder))
    return finder


def test_collect_clips_keeps_relative_paths_and_the_chosen_container(tmp_path):
    (tmp_path / "in" / "trip").mkdir(parents=True)
    for name in ("a.mov", "trip/b.webm", "trip/b.mkv", "photo.jpg", ".hidden.mp4"):
        (tmp_path / "in" / name).write_bytes(b"x")
    found = collect_clips([tmp_path / "in"], tmp_path / "out")
    assert [(item.path.name, str(item.output)) for item in found] == [
        ("a.mov", "a.mp4"),
        ("b.mkv", "trip/b.mp4"),
        ("b.webm", "trip/b.webm.mp4"),
    ]
    assert [str(i.output) for i in collect_clips([tmp_path / "in" / "a.mov"], tmp_path, suffix=".mkv")] == [
        "a.mkv"
    ]


def test_collect_clips_restores_a_clip_once_and_gives_same_named_clips_their_own_outputs(tmp_path):
    for folder in ("d1", "d2", "d3", "clips"):
        (tmp_path / folder).mkdir()
    for folder in ("d1", "d2", "d3"):
        (tmp_path / folder / "a.mov").write_bytes(b"x")
    (tmp_path / "clips" / "b.mp4").write_bytes(b"x")
    found = collect_clips([tmp_path / f"d{i}" / "a.mov" for i in (1, 2, 3)], tmp_path / "out")
    assert [str(item.output) for item in found] == ["a.mp4", "a.mov.mp4", "a.mov_2.mp4"]
    found = collect_clips([tmp_path / "clips", tmp_path / "clips" / "b.mp4"], tmp_path / "out")
    assert [(item.path.name, str(item.output)) for item in found] == [("b.mp4", "b.mp4")]


def test_a_clip_is_never_written_over_itself(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=2)
    before = clip.read_bytes()
    items = collect_clips([clip], tmp_path)
    for overwrite in (False, True):
        [result] = restore_clips(
            lambda: pytest.fail("nothing to restore"), items, tmp_path, overwrite=overwrite
        )
        assert result.status == "failed" and "would overwrite the input clip" in result.error
    with pytest.raises(VideoError, match="would overwrite the input clip"):
        ClipRestorer(FaceRestorer(RecordingPipeline(), PortraitFinder())).restore(clip, tmp_path / "clip.mp4")
    assert clip.read_bytes() == before


@pytest.mark.slow
def test_the_command_restores_a_clip_and_a_photo_and_reports_a_broken_clip(
    tiny_hub, finder, tmp_path, capsys
):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    clip = make_clip(inputs / "clip.mp4", frames=FRAMES, fps=25, size=(320, 240), draw=MovingPortrait().draw)
    Image.fromarray(portrait("grace_hopper")).save(inputs / "photo.png")
    (inputs / "broken.mov").write_text("not a video")
    args = ["restore", str(inputs), "-o", str(out), "--side-by-side", "--device", "cpu", "--dtype", "float32"]
    args += ["--weights", tiny_hub.weights_repo, "--base-model", tiny_hub.base_repo]
    assert main(args) == 1  # the broken clip failed; the rest was done
    printed = capsys.readouterr()
    assert "1 image(s) processed, 1 face(s) restored" in printed.out
    assert (
        f"1 clip(s) processed, {FRAMES} face(s) restored, 0 without a face, 0 skipped (output exists), 1 failed"
        in printed.out
    )
    assert "FAILED" in printed.out and "broken.mov" in printed.out
    assert f"clip.mp4: {FRAMES} frames, {FRAMES} faces restored in 1 track(s)" in printed.err
    assert "flicker:" in printed.err and "time per stage: decode" in printed.err
    frames = [frame.image for frame in read_frames(out / "clip.mp4")]
    originals = [frame.image for frame in read_frames(clip)]
    assert len(frames) == FRAMES and frames[0].shape == (240, 320, 3)
    assert np.abs(frames[0].astype(int) - originals[0]).mean() > 1.0  # the random model changed the face
    assert audio_packets(out / "clip.mp4") == audio_packets(clip)
    assert next(read_frames(out / "clip.side_by_side.mp4")).image.shape == (240, 640, 3)
    assert Image.open(out / "photo.png").size == (512, 600)
    assert finder.calls == FRAMES + 1  # every frame, and the photo
    assert not (out / "clip.mp4.partial").exists()
    # Run again: the outputs exist, nothing is redone.
    assert main(args) == 1
    assert "skipped (output exists)" in capsys.readouterr().out


def test_aligned_mode_refuses_clips(tmp_path, capsys):
    clip = make_clip(tmp_path / "clip.mp4", frames=2)
    assert main(["restore", str(clip), "-o", str(tmp_path / "out"), "--aligned"]) == 2
    assert "--aligned applies to aligned face images, not to clips" in capsys.readouterr().err
