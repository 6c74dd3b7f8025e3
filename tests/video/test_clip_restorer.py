"""Clips restored end to end with stand-ins for the model and the detector: frames, timestamps
and audio kept, faces tracked and seeded per track, flicker measured, resumable, copied through
without faces, bad clips refused with nothing left behind."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from helpers.clips import MovingPortrait, PortraitFinder
from helpers.faces import RecordingPipeline

from osdface.errors import ImageError, VideoError
from osdface.faces import FaceRestorer, RestoreOptions
from osdface.testing.clips import make_clip
from osdface.video import ClipRestorer, VideoLimits, VideoOptions, probe, read_frames
from osdface.video.clip_restorer import MAX_WAITING_FRAMES
from osdface.video.resume import WORK_SUFFIX
from osdface.video.smoothing import OneEuroSettings
from osdface.video.tracking import TrackerSettings

FRAMES = 10


def packets(path, kind: str) -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == kind]
        if not streams:
            return []
        return [(p.pts, bytes(p)) for p in container.demux(streams[0]) if p.size]


def video_pts(path) -> list[int | None]:
    return [frame.pts for frame in read_frames(path)]


def clip_of(tmp_path, name="clip.mp4", frames=FRAMES, **options):
    return make_clip(tmp_path / name, frames=frames, size=(320, 240), draw=MovingPortrait().draw, **options)


def restorer(pipeline=None, detector=None, **video_options) -> ClipRestorer:
    faces = FaceRestorer(pipeline or RecordingPipeline(), detector or PortraitFinder())
    options = VideoOptions(faces=RestoreOptions(seed=7, batch_size=3), **video_options)
    return ClipRestorer(faces, options)


def test_a_clip_keeps_its_frames_timestamps_and_audio(tmp_path):
    # variable frame rate: irregular steps in a 1/1000 time base
    stamps = [0, 40, 80, 150, 190, 230, 300, 340, 420, 460]
    source = clip_of(tmp_path, pts=stamps, time_base=Fraction(1, 1000))
    pipeline = RecordingPipeline(lambda face: 255 - face)
    result = restorer(pipeline).restore(source, tmp_path / "out" / "clip.mp4")
    target = result.outputs["osdface"]
    assert result.frames == FRAMES and result.faces == FRAMES and result.tracks == 1
    assert video_pts(target) == video_pts(source)
    assert packets(target, "audio") == packets(source, "audio") != []
    assert sum(pipeline.batches) == FRAMES and max(pipeline.batches) <= 3  # faces of several frames per call
    # the face changed, the canvas did not
    before, after = next(read_frames(source)).image, next(read_frames(target)).image
    assert np.abs(after[60:180, 30:150].astype(int) - before[60:180, 30:150]).mean() > 40
    assert np.abs(after[:, 260:].astype(int) - before[:, 260:]).mean() < 3
    assert not (tmp_path / "out" / ("clip.mp4" + WORK_SUFFIX)).exists()
    assert "10 frames, 10 faces restored in 1 track(s)" in result.report()
    assert "flicker:" in result.report() and "time per stage" in result.report()


def test_every_face_of_a_track_gets_the_same_seed(tmp_path):
    pipeline = RecordingPipeline()
    restorer(pipeline).restore(clip_of(tmp_path, audio=False), tmp_path / "out.mp4")
    seeds = [seed for batch in pipeline.seeds for seed in batch]
    assert seeds == [7] * FRAMES  # seed 7 + track 0, in every frame


# Measured: 2.4x still, 1.5x moving (20 frames at 25 frames/s, 1.5 px of landmark noise).
@pytest.mark.parametrize(("step", "factor"), [(0, 2.0), (2, 1.3)])
def test_smoothing_lowers_the_flicker_of_a_jittery_detector(tmp_path, step, factor):
    """The stand-in model draws a pattern fixed to the aligned face: every jitter of the landmarks
    moves the pattern in the frame, as a real restorer's details move with the crop. A still face
    (step 0) and one moving 2 pixels a frame."""

    yy, xx = np.mgrid[0:512, 0:512]
    waves = 50 * np.sin(2 * np.pi * xx / 40) * np.sin(2 * np.pi * yy / 40)

    def grid(face):  # smooth, so the change grows with the shift (a sharp grid saturates)
        return np.clip(face + waves[..., None], 0, 255).astype(np.uint8)

    source = make_clip(
        tmp_path / "clip.mp4", frames=20, fps=25, size=(320, 240), draw=MovingPortrait(step).draw, audio=False
    )
    figures = {}
    for smooth in (True, False):
        tracking = TrackerSettings(smoothing=OneEuroSettings(enabled=smooth))
        clip = restorer(RecordingPipeline(grid), PortraitFinder(jitter=1.5), tracking=tracking)
        figures[smooth] = clip.restore(source, tmp_path / f"smooth_{smooth}.mp4").flicker
    assert figures[True].pairs == figures[False].pairs == 19
    assert figures[True].added * factor < figures[False].added, figures


def test_an_interrupted_clip_resumes_without_restoring_finished_frames(tmp_path):
    source = clip_of(tmp_path)
    whole = restorer().restore(source, tmp_path / "whole.mp4")

    class Interrupted(Exception):
        pass

    restored = []

    def stops_in_the_third_batch(face):  # the same pipeline class: its faces may be resumed
        restored.append(face)
        if len(restored) > 6:
            raise Interrupted
        return face

    target = tmp_path / "resumed.mp4"
    with pytest.raises(Interrupted):
        restorer(RecordingPipeline(stops_in_the_third_batch)).restore(source, target)
    assert not target.exists() and (tmp_path / ("resumed.mp4" + WORK_SUFFIX)).is_dir()

    finder, pipeline = PortraitFinder(), RecordingPipeline()
    resumed = restorer(pipeline, finder).restore(source, target)
    assert sum(pipeline.batches) == FRAMES - 6  # two batches of 3 faces were saved
    assert finder.calls == FRAMES - resumed.resumed_frames and resumed.resumed_frames >= 6
    assert not (tmp_path / ("resumed.mp4" + WORK_SUFFIX)).exists()
    first = [frame.image for frame in read_frames(whole.outputs["osdface"])]
    second = [frame.image for frame in read_frames(target)]
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_a_clip_without_faces_is_copied_through(tmp_path):
    source = make_clip(tmp_path / "empty.mp4", frames=6, size=(96, 64))
    pipeline = RecordingPipeline()
    result = restorer(pipeline, lambda image: []).restore(
        source,
        tmp_path / "out.mp4",
    )
    assert result.no_face_found and result.frames == 6 and pipeline.batches == []
    assert packets(tmp_path / "out.mp4", "video") == packets(source, "video")
    assert packets(tmp_path / "out.mp4", "audio") == packets(source, "audio")
    assert "copied through" in result.report()


def test_a_face_seen_in_one_frame_is_restored_there_and_coasts(tmp_path):
    source = clip_of(tmp_path, frames=6, audio=False)
    finder = PortraitFinder()
    once = lambda image: finder(image) if finder.calls == 0 else (finder.__setattr__("calls", 1) or [])  # noqa: E731
    pipeline = RecordingPipeline()
    tracking = TrackerSettings(coast_frames=1)
    result = restorer(pipeline, once, tracking=tracking).restore(source, tmp_path / "out.mp4")
    assert result.frames == 6 and result.tracks == 1 and result.faces == 2  # seen once, coasted once


def test_side_by_side_and_other_restorers(tmp_path):
    source = clip_of(tmp_path, frames=4)
    inverted = RecordingPipeline(lambda face: 255 - face)
    clip = restorer(side_by_side=True)
    clip.others = {"inverted": inverted}
    result = clip.restore(source, tmp_path / "out.mp4")
    assert set(result.outputs) == {"osdface", "inverted", "side_by_side"}
    assert result.outputs["inverted"].name == "out.inverted.mp4"
    assert next(read_frames(result.outputs["side_by_side"])).image.shape == (240, 640, 3)
    assert sum(inverted.batches) == 4
    for path in result.outputs.values():
        assert packets(path, "audio") == packets(source, "audio")


@pytest.mark.parametrize("content", [b"not a video at all", b""])
def test_a_file_that_is_not_a_clip_leaves_nothing_behind(tmp_path, content):
    source = tmp_path / "clip.mp4"
    source.write_bytes(content)
    with pytest.raises(ImageError) as error:
        restorer().restore(source, tmp_path / "out" / "clip.mp4")
    assert "clip.mp4" in str(error.value)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_truncated_clip_fails_and_leaves_nothing_behind(tmp_path):
    source = clip_of(tmp_path, frames=FRAMES)
    data = source.read_bytes()
    source.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ImageError):
        restorer().restore(source, out / "clip.mp4")
    assert list(out.iterdir()) == []


def test_a_phone_clip_keeps_its_rotation_and_an_odd_size_is_kept_upright(tmp_path):
    """Stored sideways with a display matrix (a phone held upright), 321x241 as displayed."""

    def draw(index):
        frame = np.zeros((241, 321, 3), np.uint8)
        frame[:240, :320] = MovingPortrait().draw(index)
        return frame

    source = make_clip(tmp_path / "phone.mp4", frames=4, fps=25, size=(321, 241), rotation=90, draw=draw)
    result = restorer(RecordingPipeline(lambda face: 255 - face)).restore(source, tmp_path / "out.mp4")
    info_in, info_out = probe(source), probe(result.outputs["osdface"])
    assert (info_in.rotation, info_out.rotation) == (90, 90)
    assert info_out.display_size[0] >= 321 and info_out.display_size[1] >= 241
    frame = next(read_frames(result.outputs["osdface"])).image
    assert frame.shape[:2] == (info_out.display_size[1], info_out.display_size[0])
    assert result.faces == 4  # the face was found in the upright frames


def test_upscale_enlarges_every_frame(tmp_path):
    source = clip_of(tmp_path, frames=2, audio=False)
    faces = FaceRestorer(RecordingPipeline(), PortraitFinder())
    clip = ClipRestorer(faces, VideoOptions(faces=RestoreOptions(seed=0, upscale=1.5)))
    result = clip.restore(source, tmp_path / "big.mp4")
    assert probe(result.outputs["osdface"]).display_size == (480, 360)
    assert [frame.image.shape for frame in read_frames(result.outputs["osdface"])] == [(360, 480, 3)] * 2


def test_frames_are_written_as_they_come_not_held(tmp_path):
    """A face in the first frame only, then 40 frames without one: the face's batch never fills,
    yet frames are written with at most MAX_WAITING_FRAMES waiting."""
    finder = PortraitFinder()

    def detector(image):  # the face in the first frame only
        if finder.calls == 0:
            return finder(image)
        finder.calls += 1
        return []

    source = make_clip(
        tmp_path / "long.mp4", frames=41, fps=25, size=(320, 240), draw=MovingPortrait().draw, audio=False
    )
    waiting = []
    clip = restorer(RecordingPipeline(), detector, tracking=TrackerSettings(coast_frames=0))
    result = clip.restore(
        source, tmp_path / "out.mp4", on_frame=lambda done, total: waiting.append(finder.calls - done)
    )
    assert result.frames == 41 and result.faces == 1
    assert max(waiting) <= MAX_WAITING_FRAMES


def test_limits_hold_for_a_recording_without_a_duration(tmp_path):
    """A browser's recording says neither its length nor its frame count: the limits are
    checked while decoding, and nothing is left behind."""
    source = clip_of(tmp_path, name="recorded.webm", frames=8, live=True, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    clip = restorer(limits=VideoLimits(max_frames=5))
    with pytest.raises(VideoError, match="max_frames=5"):
        clip.restore(source, out / "clip.mp4")
    assert list(out.iterdir()) == []


def test_side_by_side_with_an_upscale_that_does_not_divide_the_height(tmp_path):
    """320x239 at 1.5: the restored frames are 480x358, the input beside them 320 * 358 / 239
    = 479 wide, 959 in all (H.264 pads it to 960); a film crop like 1280x537 does the same."""
    source = make_clip(
        tmp_path / "crop.mp4",
        frames=2,
        size=(320, 239),
        draw=lambda i: MovingPortrait().draw(i)[:239],
        audio=False,
    )
    faces = FaceRestorer(RecordingPipeline(), PortraitFinder())
    clip = ClipRestorer(faces, VideoOptions(faces=RestoreOptions(seed=0, upscale=1.5), side_by_side=True))
    result = clip.restore(source, tmp_path / "out.mp4")
    assert result.faces == 2
    assert [f.image.shape[:2] for f in read_frames(result.outputs["side_by_side"])] == [(358, 960)] * 2


def test_a_frame_too_large_to_encode_is_refused_and_every_writer_closes(tmp_path):
    """1040x16 at 8x: the restored clip (8320x128) opens, the side-by-side one (16640x128) is
    over x264's 16384: the first writer must not stay open with its partial file."""
    source = make_clip(tmp_path / "strip.mp4", frames=2, size=(1040, 16))
    out = tmp_path / "out"
    faces = FaceRestorer(RecordingPipeline(), lambda image: [])
    options = VideoOptions(faces=RestoreOptions(seed=0, upscale=8), side_by_side=True, resume=False)
    with pytest.raises(VideoError, match=r"16640x128 pixels; libx264 encodes at most 16384") as caught:
        ClipRestorer(faces, options).restore(source, out / "clip.mp4")
    assert "--upscale" in caught.value.fix
    assert sorted(p.name for p in out.iterdir()) == []  # while the traceback still holds the writers


def test_a_work_folder_whose_source_json_is_damaged_is_started_afresh(tmp_path):
    source = clip_of(tmp_path, frames=3, audio=False)
    work = tmp_path / ("out.mp4" + WORK_SUFFIX)
    work.mkdir()
    (work / "source.json").write_text('{\n "bytes": 12')  # a run killed while writing it
    result = restorer().restore(source, tmp_path / "out.mp4")
    assert result.frames == 3 and result.resumed_frames == 0 and not work.exists()


def test_faces_saved_by_other_weights_are_not_reused(tmp_path):
    """Interrupted with one model's weights, resumed with another's: every face is restored
    again, by the second."""
    source = clip_of(tmp_path, frames=6, audio=False)
    target = tmp_path / "out.mp4"

    class Interrupted(Exception):
        pass

    finder = PortraitFinder()

    def stops_at_frame_4(image):
        if finder.calls == 4:
            raise Interrupted
        return finder(image)

    first = RecordingPipeline(lambda face: 255 - face)
    first.weights = "org/model-a"
    with pytest.raises(Interrupted):
        restorer(first, stops_at_frame_4).restore(source, target)
    assert sum(first.batches) == 3  # one batch saved
    second = RecordingPipeline()
    second.weights = "org/model-b"
    result = restorer(second).restore(source, target)
    assert sum(second.batches) == 6 and result.faces == 6
