"""Writing clips: a read-and-write round trip keeps the frame count, the timestamps (variable
frame rate), the rotation and the audio packets bit for bit; the default output plays in a
browser; odd sizes; an audio codec the container cannot hold; nothing half-written is left."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from osdface.errors import VideoError
from osdface.testing.clips import make_clip, pattern
from osdface.video import VideoWriter, copy_streams, output_format, probe, read_frames, side_by_side

VFR_PTS = [0, 40, 100, 130, 200, 260, 300, 400, 410, 420, 500, 600]  # milliseconds, irregular


def restore(source: Path, target: Path, **options) -> None:
    """The restoration loop without the restoring: every frame read and written back."""
    with VideoWriter(target, probe(source), audio_from=source, **options) as writer:
        for frame in read_frames(source):
            writer.write(frame.image, frame.pts, frame.time_base)


def packets(path: Path, kind: str) -> list[tuple[bytes, Fraction | None]]:
    """(bytes, presentation time) of every packet of the first ``kind`` stream."""
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [
            (bytes(p), None if p.pts is None else p.pts * p.time_base)
            for p in container.demux(stream)
            if p.size
        ]


def times(path: Path) -> list[Fraction]:
    return [frame.pts * frame.time_base for frame in read_frames(path)]


def top_level_boxes(path: Path) -> list[str]:
    data, boxes, offset = path.read_bytes(), [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        offset += size or len(data)
    return boxes


@pytest.mark.parametrize(
    ("name", "rotation"), [("out.mp4", 90), ("out.mov", 0), ("out.mkv", 270), ("out.webm", 180)]
)
def test_a_round_trip_keeps_frames_timestamps_rotation_and_audio_bytes(tmp_path, name, rotation):
    source = make_clip(tmp_path / f"in{Path(name).suffix}", rotation=rotation, pts=VFR_PTS)
    target = tmp_path / name
    restore(source, target)
    before, after = probe(source), probe(target)
    assert (after.rotation, after.width, after.height) == (before.rotation, before.width, before.height)
    assert times(target) == times(source) == [Fraction(p, 1000) for p in VFR_PTS]
    assert packets(target, "audio") == packets(source, "audio")
    # what is shown matches: same orientation, same colours (up to the second encode's loss)
    for a, b in zip(read_frames(source), read_frames(target)):
        assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() < 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, name])  # no temp left


def test_the_default_output_plays_in_a_browser(tmp_path):
    source = make_clip(tmp_path / "in.mov", frames=4)
    target = tmp_path / "out.mp4"
    restore(source, target)
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert container.format.name.startswith("mov,mp4")
    boxes = top_level_boxes(target)
    assert boxes[0] == "ftyp" and boxes.index("moov") < boxes.index("mdat")  # +faststart


def test_odd_sizes_are_padded_to_even_for_h264_and_kept_for_vp9(tmp_path):
    source = make_clip(tmp_path / "odd.mp4", size=(321, 241), frames=3, audio=False)
    assert probe(source).display_size == (321, 241)
    restore(source, tmp_path / "out.mp4")
    restore(source, tmp_path / "out.webm")
    assert probe(tmp_path / "out.mp4").display_size == (322, 242)
    assert probe(tmp_path / "out.webm").display_size == (321, 241)
    for original, padded in zip(read_frames(source), read_frames(tmp_path / "out.mp4")):
        assert np.abs(padded.image[:241, :321].astype(int) - original.image.astype(int)).mean() < 3
        # the added column repeats the last one: no dark line at the edge
        assert np.abs(padded.image[:241, 321].astype(int) - padded.image[:241, 320].astype(int)).mean() < 6


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_odd_sized_rotated_clips_are_padded_at_the_bottom_and_right_as_displayed(tmp_path, rotation):
    source = make_clip(tmp_path / "in.mp4", frames=2, size=(63, 97), rotation=rotation, audio=False)
    restore(source, tmp_path / "out.mp4")
    assert probe(tmp_path / "out.mp4").display_size == (64, 98)
    for original, padded in zip(read_frames(source), read_frames(tmp_path / "out.mp4")):
        assert np.abs(padded.image[:97, :63].astype(int) - original.image.astype(int)).mean() < 3


def test_an_upscaled_side_by_side_clip_keeps_its_timestamps(tmp_path):
    source = make_clip(tmp_path / "in.mp4", pts=VFR_PTS, rotation=90)
    info = probe(source)
    width, height = info.display_size
    target = tmp_path / "compare.mp4"
    with VideoWriter(target, info, size=(4 * width, 2 * height), audio_from=source) as writer:
        for frame in read_frames(source):
            restored = np.repeat(np.repeat(frame.image, 2, axis=0), 2, axis=1)
            writer.write(side_by_side(frame.image, restored), frame.pts, frame.time_base)
    assert probe(target).display_size == (4 * width, 2 * height)
    assert times(target) == times(source)


def test_side_by_side_scales_the_left_image_to_the_right_ones_height():
    left, right = np.zeros((10, 16, 3), np.uint8), np.full((20, 30, 3), 255, np.uint8)
    both = side_by_side(left, right)
    assert both.shape == (20, 62, 3) and both.dtype == np.uint8
    assert (both[:, :32] == 0).all() and (both[:, 32:] == 255).all()


def test_frames_without_timestamps_follow_the_average_rate(tmp_path):
    source = make_clip(tmp_path / "in.mp4", frames=5, audio=False)
    info = probe(source)
    with VideoWriter(tmp_path / "out.mp4", info) as writer:
        for frame in read_frames(source):
            writer.write(frame.image, None)
    assert times(tmp_path / "out.mp4") == [Fraction(i, 12) for i in range(5)]


def test_audio_the_container_cannot_hold_is_refused_before_anything_is_written(tmp_path):
    source = make_clip(tmp_path / "in.mp4", frames=2)  # AAC
    with pytest.raises(VideoError, match="aac audio cannot be stored in .webm") as caught:
        VideoWriter(tmp_path / "out.webm", probe(source), audio_from=source)
    assert ".mkv" in caught.value.fix
    assert [p.name for p in tmp_path.iterdir()] == ["in.mp4"]
    with pytest.raises(VideoError, match="aac"):
        output_format(tmp_path / "out.webm", audio_codec="aac")
    assert output_format(tmp_path / "out.webm", audio_codec="opus").video_codec == "libvpx-vp9"
    assert output_format(tmp_path / "out.mkv", audio_codec="aac").container == "matroska"


@pytest.mark.parametrize(
    ("name", "audio_codec", "target"),
    [("cam.avi", "pcm_s16le", "out.mp4"), ("cam.mkv", "pcm_s16le", "out.mp4"), ("web.webm", None, "out.mov")],
)
def test_audio_the_container_refuses_as_it_is_is_reencoded_to_aac(tmp_path, name, audio_codec, target):
    """A camcorder's PCM (no channel layout in AVI or Matroska: MP4 and MOV refuse it), and
    Opus, which MOV refuses: the clip still comes out with its sound, as AAC."""
    source = make_clip(tmp_path / name, frames=6, audio_codec=audio_codec)
    with VideoWriter(tmp_path / target, probe(source), audio_from=source) as writer:
        for frame in read_frames(source):
            writer.write(frame.image, frame.pts, frame.time_base)
    assert writer.audio_reencoded == [probe(source).audio_codec]
    assert probe(tmp_path / target).audio_codec == "aac"
    with av.open(str(tmp_path / target)) as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.channels, stream.codec_context.sample_rate) == (2, 48_000)
        assert float(stream.duration * stream.time_base) == pytest.approx(0.5, abs=0.05)
    assert len(list(read_frames(tmp_path / target))) == 6


def test_audio_the_container_takes_is_not_reencoded(tmp_path):
    source = make_clip(tmp_path / "in.mkv", frames=3)  # Opus, which MP4 holds
    with VideoWriter(tmp_path / "out.mp4", probe(source), audio_from=source) as writer:
        for frame in read_frames(source):
            writer.write(frame.image, frame.pts, frame.time_base)
    assert writer.audio_reencoded == []
    assert [data for data, _ in packets(tmp_path / "out.mp4", "audio")] == [
        data for data, _ in packets(source, "audio")
    ]


def test_avi_and_unknown_extensions_are_not_written(tmp_path):
    with pytest.raises(VideoError, match="AVI stores a constant frame rate") as caught:
        output_format(tmp_path / "out.avi")
    assert ".mp4" in caught.value.fix
    with pytest.raises(VideoError, match=".gif is not a video container"):
        output_format(tmp_path / "out.gif")


def test_a_failed_write_leaves_no_file_and_the_old_target_untouched(tmp_path):
    source = make_clip(tmp_path / "in.mp4", frames=4)
    target = tmp_path / "out.mp4"
    target.write_bytes(b"the previous result")
    with pytest.raises(RuntimeError, match="restoration failed"):
        with VideoWriter(target, probe(source), audio_from=source) as writer:
            for frame in read_frames(source):
                writer.write(frame.image, frame.pts, frame.time_base)
                raise RuntimeError("restoration failed")
    assert target.read_bytes() == b"the previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


def test_a_truncated_input_stops_the_write_and_leaves_nothing(tmp_path):
    source = make_clip(tmp_path / "in.mp4", frames=40, faststart=True)
    data = source.read_bytes()
    source.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="truncated"):
        restore(source, tmp_path / "out.mp4")
    assert [p.name for p in tmp_path.iterdir()] == ["in.mp4"]


def test_a_wrong_image_size_is_a_programming_error(tmp_path):
    source = make_clip(tmp_path / "in.mp4", frames=2, audio=False)
    with VideoWriter(tmp_path / "out.mp4", probe(source)) as writer:
        with pytest.raises(ValueError, match=r"expected a \(64, 96, 3\) uint8 image"):
            writer.write(np.zeros((64, 95, 3), np.uint8), 0, Fraction(1, 12))
        writer.abort()
    assert [p.name for p in tmp_path.iterdir()] == ["in.mp4"]


@pytest.mark.parametrize("name", ["copy.mp4", "copy.mkv"])
def test_copy_streams_remuxes_every_packet_unchanged(tmp_path, name):
    source = make_clip(tmp_path / "in.mp4", rotation=90, pts=VFR_PTS)
    target = copy_streams(source, tmp_path / name)
    for kind in ("video", "audio"):
        assert [data for data, _ in packets(target, kind)] == [data for data, _ in packets(source, kind)]
    if name.endswith(".mp4"):
        assert times(target) == times(source)
    else:
        # Matroska starts no stream before zero: AAC's priming packet (-1024 samples) moves every
        # stream by the same 21 ms, so the sync and the frame intervals are kept
        shift = {b - a for a, b in zip(times(source), times(target))}
        assert shift == {Fraction(21, 1000)}
    assert probe(target).rotation == 90


def test_a_full_range_bt709_clip_keeps_its_colours_and_tags(tmp_path):
    """Phones tag their clips (full range, BT.709): read with the clip's own matrix and range,
    written back with the same ones and the same tags, the colours stay put."""
    source = tmp_path / "phone.mp4"
    with av.open(str(source), "w") as output:
        stream = output.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        context = stream.codec_context
        context.color_range, context.colorspace, context.color_primaries, context.color_trc = 2, 1, 1, 1
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(pattern(index, (96, 64)), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace=1, dst_color_range=2)
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    restore(source, tmp_path / "out.mp4")
    after = probe(tmp_path / "out.mp4")
    assert (after.color_range, after.colorspace, after.color_primaries, after.color_trc) == (2, 1, 1, 1)
    for frame in read_frames(tmp_path / "out.mp4"):
        assert np.abs(frame.image.astype(int) - pattern(frame.index, (96, 64)).astype(int)).mean() < 4
