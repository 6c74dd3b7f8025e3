"""Reading clips made with the real encoders: the header (rotation, variable frame rate, audio,
limits), upright frames with their timestamps, and a clear ``VideoError`` for each bad input."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from osdface.errors import ImageError, VideoError
from osdface.testing.clips import make_audio_file, make_clip, pattern, replace_codec_tag
from osdface.video import VideoLimits, probe, read_frames

VFR_PTS = [0, 40, 100, 130, 200, 260, 300, 400, 410, 420, 500, 600]  # milliseconds, irregular


def mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_probe_reads_the_header_of_a_phone_like_clip(tmp_path):
    path = make_clip(tmp_path / "phone.mp4", size=(96, 64), rotation=90, pts=VFR_PTS)
    info = probe(path)
    assert info.format_name.startswith("mov,mp4")
    assert (info.codec, info.audio_codec) == ("h264", "aac")
    # stored sideways, shown upright
    assert (info.width, info.height, info.rotation, info.display_size) == (64, 96, 90, (96, 64))
    assert info.frames == 12 and info.exact_frame_count
    assert info.duration == pytest.approx(0.6, abs=0.05)
    assert info.time_base == Fraction(1, 16000)  # MP4 keeps 1/1000 exactly, scaled by 2**4


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_frames_come_upright_whatever_the_rotation(tmp_path, rotation):
    path = make_clip(tmp_path / f"r{rotation}.mp4", frames=3, rotation=rotation)
    assert probe(path).rotation == rotation
    for frame in read_frames(path):
        assert frame.image.shape == (64, 96, 3) and frame.image.dtype == np.uint8
        # the red block stays top left: a turned frame would move it
        assert mean_error(frame.image, pattern(frame.index, (96, 64))) < 4


def test_frames_keep_variable_timestamps_and_start_skips_exactly(tmp_path):
    path = make_clip(tmp_path / "vfr.mkv", pts=VFR_PTS)
    frames = list(read_frames(path))
    assert [f.index for f in frames] == list(range(12))
    assert [f.pts * f.time_base for f in frames] == [Fraction(p, 1000) for p in VFR_PTS]
    later = list(read_frames(path, start=5))
    assert [f.index for f in later] == list(range(5, 12))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames[5:], later))


@pytest.mark.parametrize(
    ("name", "codec", "audio"),
    [
        ("c.mov", "h264", "aac"),
        ("c.mkv", "h264", "opus"),
        ("c.webm", "vp9", "opus"),
        ("c.avi", "h264", "mp3"),
    ],
)
def test_every_container_people_have_is_read(tmp_path, name, codec, audio):
    path = make_clip(tmp_path / name, frames=6)
    info = probe(path)
    assert (info.codec, info.audio_codec, info.display_size) == (codec, audio, (96, 64))
    frames = list(read_frames(path))
    assert len(frames) == 6
    # AVI's timestamps are frame numbers (B-frames reorder them): they come out in order
    assert [f.pts for f in frames] == sorted(f.pts for f in frames)


def test_a_clip_without_audio_says_so(tmp_path):
    assert probe(make_clip(tmp_path / "mute.mp4", frames=2, audio=False)).audio_codec is None


@pytest.mark.parametrize(
    ("limits", "named", "figure"),
    [
        (VideoLimits(max_seconds=0.5), "max_seconds=0.5", "1.0 s"),
        (VideoLimits(max_pixels=96 * 64 - 1), "max_pixels=6143", "96x64 pixels"),
        (VideoLimits(max_frames=11), "max_frames=11", "12 frames"),
    ],
)
def test_limits_are_checked_from_the_header_with_the_figure_and_the_fix(tmp_path, limits, named, figure):
    path = make_clip(tmp_path / "long.mp4")
    with pytest.raises(VideoError) as caught:
        probe(path, limits)
    assert named in caught.value.reason and figure in caught.value.reason
    assert caught.value.fix
    with pytest.raises(VideoError):
        next(read_frames(path, limits=limits))  # no frame is decoded
    probe(path, VideoLimits(max_seconds=1.5, max_pixels=96 * 64, max_frames=12))


def test_a_text_file_named_mp4_is_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are not moving pictures\n")
    with pytest.raises(VideoError, match="not a readable video file") as caught:
        probe(path)
    assert isinstance(caught.value, ImageError)  # batch commands report it and go on
    assert "MP4" in caught.value.fix


def test_an_audio_file_has_no_video_stream(tmp_path):
    with pytest.raises(VideoError, match=r"no video stream \(the file holds audio\)"):
        probe(make_audio_file(tmp_path / "song.mp4"))


def test_a_missing_file(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        probe(tmp_path / "gone.mp4")


def test_a_codec_without_a_decoder_is_named(tmp_path):
    path = replace_codec_tag(make_clip(tmp_path / "odd-codec.mp4", frames=2))
    with pytest.raises(VideoError, match="does not know the video codec") as caught:
        probe(path)
    assert "libx264" in caught.value.fix


def test_a_truncated_mp4_yields_its_frames_then_says_where_it_ends(tmp_path):
    path = make_clip(tmp_path / "cut.mp4", frames=40, faststart=True)  # the index first, as uploads are
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert probe(path).frames == 40  # the header is whole
    reached = []
    with pytest.raises(VideoError, match=r"ends after \d+ frames; its header promises 40") as caught:
        for frame in read_frames(path):
            reached.append(frame.index)
    assert 10 < len(reached) < 40 and str(len(reached)) in caught.value.reason
    assert "again" in caught.value.fix


def test_a_truncated_mp4_without_its_index_cannot_be_opened(tmp_path):
    path = make_clip(tmp_path / "cut.mp4", frames=40)  # the index (moov) last, as encoders write it
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="not a readable video file"):
        probe(path)


@pytest.mark.parametrize("name", ["cut.mkv", "cut.webm"])
def test_a_truncated_matroska_clip_is_found_by_its_duration(tmp_path, name):
    path = make_clip(tmp_path / name, frames=40)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"the clip ends at [\d.]+ s; its header says 3.3\d s"):
        list(read_frames(path))


def test_a_clip_without_a_duration_is_held_to_the_limits_while_decoding(tmp_path):
    """A browser's recording (live WebM) says neither its duration nor its frame count."""
    path = make_clip(tmp_path / "recorded.webm", frames=16, fps=2, live=True, audio=False)
    info = probe(path, VideoLimits(max_seconds=4, max_frames=5))  # nothing to check yet
    assert (info.duration, info.frames) == (None, None)
    with pytest.raises(VideoError, match="max_frames=5: it has 6 frames"):
        list(read_frames(path, limits=VideoLimits(max_frames=5)))
    with pytest.raises(VideoError, match=r"max_seconds=4: it has 4.5 s"):
        list(read_frames(path, limits=VideoLimits(max_seconds=4)))


def test_the_running_duration_counts_from_the_first_frame(tmp_path):
    """A recording cut from a longer one starts at 10 s: 2.5 s long, not 12.5 s."""
    stamps = [10_000 + 500 * i for i in range(6)]
    path = make_clip(tmp_path / "cut.webm", frames=6, pts=stamps, live=True, audio=False)
    assert len(list(read_frames(path, limits=VideoLimits(max_seconds=4)))) == 6


@pytest.mark.parametrize("name", ["long-sound.mkv", "long-sound.webm"])
def test_sound_that_outlasts_the_picture_is_not_a_truncated_matroska_clip(tmp_path, name):
    """1 s of video, 3 s of audio: Matroska's header gives the longest stream's duration; the
    video's own is its DURATION tag."""
    path = make_clip(tmp_path / name, frames=12, audio_seconds=3.0)
    info = probe(path)
    assert info.duration == pytest.approx(1.0, abs=0.01) and info.frames == 12
    assert len(list(read_frames(path))) == 12


def test_an_avi_with_a_pause_keeps_it_and_is_not_taken_for_truncated(tmp_path):
    """A camera that skips frames (a pause) stores them as empty chunks, which the header
    counts and FFmpeg never returns: 1 s missing between the 5th and 6th frames."""
    stamps = [0, 1, 2, 3, 4, 15, 16, 17, 18, 19]
    path = make_clip(
        tmp_path / "paused.avi", frames=10, pts=stamps, time_base=Fraction(1, 10), fps=10, audio=False
    )
    seconds = [frame.seconds for frame in read_frames(path)]
    assert len(seconds) == 10 and seconds[0] == 0
    # B-frames put the empty chunks one frame late in decode order: the pause moves by a frame
    assert sorted(np.round(np.diff(seconds), 6)) == [0.1] * 8 + [1.1]


def test_a_truncated_avi_is_still_refused(tmp_path):
    """Its frame count no longer tells: the index, written last, is what is missing."""
    path = make_clip(tmp_path / "cut.avi", frames=40, audio=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="truncated"):
        list(read_frames(path))


def test_a_half_read_clip_never_waits_on_pythons_log_callback(tmp_path):
    """torchvision's import sets PyAV's log level, which installs a log callback that needs the
    GIL: a frame-threaded VP9 decoder freed part-way (the generator dropped after one frame)
    then joined its threads while one of them waited for the GIL, and the tests hung for good.
    Every open puts back the callback that needs no Python."""
    import av
    import torchvision  # noqa: F401  (its import sets the level)

    av.logging.set_level(av.logging.ERROR)
    source = make_clip(tmp_path / "live.webm", frames=6, fps=2, live=True, audio=False)
    frames = read_frames(source)
    assert next(frames).index == 0
    assert av.logging.get_level() is None
    frames.close()
