"""Reading clips: the header (``probe``), checked against limits before anything is decoded, and
the frames, streamed one at a time as upright ``(H, W, 3) RGB uint8`` images (``read_frames``).

Every problem is a ``VideoError`` (an ``ImageError``) with the reason and the fix: not a media
file, no video stream, a codec this FFmpeg cannot decode, damaged or truncated data, a clip over
a limit.

Rotation: phones store the picture sideways and a display matrix that turns it upright.
``VideoInfo.rotation`` is the angle the display turns the stored picture CLOCKWISE (0, 90, 180,
270; a phone held upright records 90), the sense of FFmpeg's old ``rotate`` tag and of EXIF.
PyAV 18 does not expose a stream's display matrix, only a decoded frame's, so ``probe`` decodes
the first frame for it, after the limits are checked (that decode also proves the codec works).

Timestamps: each frame keeps its ``pts`` in the stream's ``time_base`` (a variable frame rate
stays as it is), except AVI, whose timestamps are chunk numbers in decode order (wrong once
B-frames reorder them): the n-th frame shown gets the n-th smallest packet timestamp, so the
empty chunks a camera writes for skipped frames (a pause) keep their time. AVI's header counts
those empty chunks as frames, so its count is not held against the frames decoded.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from osdface.errors import VideoError
from osdface.video.libav import open_av

# Containers whose timestamps are chunk numbers in decode order (see the module docstring).
_CHUNK_NUMBERED_FORMATS = {"avi"}
# What a limit's error suggests, by limit.
_LIMIT_FIXES = {
    "max_seconds": "cut the clip into shorter parts (or raise the duration limit)",
    "max_pixels": "downscale the clip first (or raise the resolution limit)",
    "max_frames": "cut the clip into shorter parts (or raise the frame limit)",
}


@dataclass(frozen=True)
class VideoLimits:
    """Limits checked from the header before decoding; ``None`` = no limit."""

    max_seconds: float | None = None
    max_pixels: int | None = None  # width * height of a frame
    max_frames: int | None = None


@dataclass(frozen=True)
class VideoInfo:
    """What the container's header says about a clip's first video stream (``probe``)."""

    path: Path
    format_name: str  # FFmpeg's demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str  # video codec, e.g. "h264"
    width: int  # as stored
    height: int
    rotation: int  # clockwise degrees the display turns the stored picture: 0, 90, 180, 270
    frames: int | None  # the header's count, else duration * average_rate rounded, else None
    duration: float | None  # seconds
    average_rate: Fraction | None
    time_base: Fraction
    audio_codec: str | None  # the first audio stream's codec; None = no audio
    # The stream's colour tags (FFmpeg's AVColorSpace, AVColorRange, primaries, transfer): the
    # writer converts with the same matrix and range and writes the same tags.
    colorspace: int = 2  # 2 = unspecified
    color_range: int = 0  # 0 = unspecified, 1 = limited (TV), 2 = full (JPEG)
    color_primaries: int = 2
    color_trc: int = 2
    # Whether ``duration`` is the video stream's own; False: the container's, which is the
    # longest stream's (sound that runs on after the picture ends).
    duration_of_video: bool = True

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as displayed, after the rotation."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)

    @property
    def exact_frame_count(self) -> bool:
        """Whether ``frames`` is the container's count of pictures (MP4, MOV), not estimated
        (AVI's count includes the empty chunks of skipped frames)."""
        return self.frames is not None and self.format_name.split(",")[0] == "mov"


@dataclass(frozen=True)
class VideoFrame:
    index: int  # 0-based, in the decoder's output (display) order
    pts: int | None
    time_base: Fraction
    image: np.ndarray  # (H, W, 3) RGB uint8, upright (the rotation applied)

    @property
    def seconds(self) -> float | None:
        return None if self.pts is None else float(self.pts * self.time_base)


def probe(path: str | os.PathLike, limits: VideoLimits | None = None) -> VideoInfo:
    """Read ``path``'s header into a ``VideoInfo``; raise ``VideoError`` when it is not a media
    file, has no video stream, has a codec without a decoder here, or is over ``limits`` (checked
    before any decoding). Figures the header lacks (a WebM's frame count) are not checked here:
    ``read_frames(path, limits=...)`` checks them while decoding."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        info = _header_info(path, container, stream)
        check_limits(info, limits)
        first = _first_frame(container, stream, path)
    rotation = _clockwise(first.rotation)
    return replace(info, rotation=rotation)


def check_limits(info: VideoInfo, limits: VideoLimits | None) -> None:
    """Raise ``VideoError`` naming the first limit ``info`` is over, the clip's figure and the fix."""
    if limits is None:
        return
    checks = [
        ("max_pixels", info.width * info.height, f"{info.width}x{info.height} pixels"),
        ("max_seconds", info.duration, f"{info.duration:.1f} s" if info.duration else ""),
        ("max_frames", info.frames, f"{info.frames} frames"),
    ]
    for name, figure, shown in checks:
        limit = getattr(limits, name)
        if limit is not None and figure is not None and figure > limit:
            raise VideoError(
                f"the clip is over the limit {name}={limit}: it has {shown}",
                source=info.path.name,
                fix=_LIMIT_FIXES[name],
            )


def read_frames(
    path: str | os.PathLike, start: int = 0, *, limits: VideoLimits | None = None
) -> Iterator[VideoFrame]:
    """Decode ``path``'s first video stream one frame at a time (only the frame being yielded
    is held), from frame ``start`` (the frames before it are decoded and dropped: seeking lands on
    key frames, so this is the exact way).

    Damaged data raises ``VideoError`` when it is reached, after the frames before it were
    yielded; so does a file that ends before the header's frame count (MP4, MOV), and a clip
    that goes over ``limits``' frames or seconds (for headers that do not say)."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"  # frame threads: the decode keeps up with the restoration
        info = _header_info(path, container, stream)
        check_limits(info, limits)
        stamps = [] if info.format_name in _CHUNK_NUMBERED_FORMATS else None
        expected = info.frames if info.exact_frame_count else None
        first_seconds = last_seconds = None
        origin = None
        for index, frame in enumerate(_decode(container, stream, path, expected, stamps)):
            pts, time_base = frame.pts, frame.time_base or stream.time_base
            if stamps is not None:
                # The decoder has every packet shown up to this frame: the smallest stamp left
                # is this frame's. Counted from the first, as B-frames delay them all by one.
                stamp = heapq.heappop(stamps) if stamps else index
                origin = stamp if origin is None else origin
                pts, time_base = stamp - origin, stream.time_base
            last_seconds = None if pts is None else float(pts * time_base)
            if first_seconds is None:
                first_seconds = last_seconds
            # A clip's length runs from its first frame: WebM and MP4 cut from longer
            # recordings start well after zero.
            elapsed = None if last_seconds is None else last_seconds - (first_seconds or 0.0)
            _check_running_limits(info, limits, index, elapsed)
            if index >= start:
                yield VideoFrame(index, pts, time_base, _upright(frame))
        if expected is None:
            _check_ending(info, last_seconds)


def _check_running_limits(
    info: VideoInfo, limits: VideoLimits | None, index: int, seconds: float | None
) -> None:
    if limits is None:
        return
    if limits.max_frames is not None and index >= limits.max_frames:
        check_limits(replace(info, frames=index + 1), limits)
    if limits.max_seconds is not None and seconds is not None and seconds > limits.max_seconds:
        check_limits(replace(info, duration=seconds), limits)


def _check_ending(info: VideoInfo, last_seconds: float | None) -> None:
    """For containers without a frame count (Matroska, WebM), where FFmpeg reads a cut file to
    its end without an error: the last frame must start within a second (and two frames) of the
    video's duration. Looser would miss a cut in the last second; tighter would flag a clip
    whose last frame is held long. Not checked against the container's duration when other
    streams could have set it: audio often outlasts the picture."""
    if info.duration is None or last_seconds is None or not info.duration_of_video:
        return
    slack = 1.0 + 2 / float(info.average_rate or 1)
    if info.duration - last_seconds > slack:
        raise VideoError(
            f"the clip ends at {last_seconds:.2f} s; its header says {info.duration:.2f} s (a truncated file?)",
            source=info.path.name,
            fix="copy or download the clip again; a partial upload or download ends early",
        )


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise VideoError("no such file", source=str(path), fix="check the path")
    try:
        return open_av(str(path), "r")
    except av.error.FFmpegError as error:
        raise VideoError(
            f"not a readable video file ({_ffmpeg_reason(error)}; empty, truncated or not a video)",
            source=path.name,
            fix="give an MP4, MOV, MKV, WebM or AVI clip; if it is one, copy or download it again",
        ) from error


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
        raise VideoError(
            f"no video stream (the file holds {kinds})",
            source=path.name,
            fix="give a clip with pictures; an audio file or a subtitle file has none",
        )
    stream = streams[0]
    # PyAV gives a stream whose codec FFmpeg does not know no codec context at all
    codec = stream.codec_context.codec.canonical_name if stream.codec_context is not None else None
    if codec is None or not _has_decoder(codec):
        what = f"has no decoder for the video codec {codec!r}" if codec else "does not know the video codec"
        raise VideoError(
            f"PyAV's FFmpeg {what}",
            source=path.name,
            fix="convert the clip to H.264 first, e.g. `ffmpeg -i IN -c:v libx264 -c:a copy OUT.mp4`",
        )
    return stream


def _has_decoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "r")
    except av.codec.codec.UnknownCodecError:
        return False
    return True


def _header_info(path: Path, container: av.container.InputContainer, stream) -> VideoInfo:
    """The header's figures (rotation 0 until a frame is decoded)."""
    context = stream.codec_context
    time_base = stream.time_base or Fraction(1, 1_000_000)
    duration = float(stream.duration * time_base) if stream.duration else _duration_tag(stream)
    duration_of_video = duration is not None or len(container.streams) == 1
    if duration is None and container.duration:
        duration = container.duration / av.time_base
    rate = stream.average_rate or stream.guessed_rate or None
    frames = stream.frames or (round(duration * rate) if duration and rate else None)
    audio = container.streams.audio
    return VideoInfo(
        path=path,
        format_name=container.format.name,
        codec=context.codec.canonical_name,
        width=context.width,
        height=context.height,
        rotation=0,
        frames=frames,
        duration=duration,
        average_rate=rate,
        time_base=time_base,
        audio_codec=audio[0].codec_context.codec.canonical_name if audio and audio[0].codec_context else None,
        colorspace=int(context.colorspace),
        color_range=int(context.color_range),
        color_primaries=int(context.color_primaries),
        color_trc=int(context.color_trc),
        duration_of_video=duration_of_video,
    )


def _duration_tag(stream) -> float | None:
    """Matroska's per-stream ``DURATION`` tag ("HH:MM:SS.nnnnnnnnn"), which FFmpeg and
    mkvmerge write: the header's own duration is the longest stream's."""
    text = stream.metadata.get("DURATION")
    if not text:
        return None
    try:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:  # a tag written by hand; the container's duration is used instead
        return None


def _first_frame(container, stream, path: Path) -> av.VideoFrame:
    for frame in _decode(container, stream, path):
        return frame
    raise VideoError(
        "the video stream has no pictures that decode (empty or truncated)",
        source=path.name,
        fix="copy or download the clip again",
    )


def _decode(
    container, stream, path: Path, expected_packets: int | None = None, stamps: list[int] | None = None
) -> Iterator[av.VideoFrame]:
    """The stream's frames; FFmpeg's errors become ``VideoError`` naming the frame reached. With
    ``expected_packets`` (the header's count), a file that ends short raises too: FFmpeg only
    warns when the data runs out. Packets, not frames, are counted: an edit list can hide frames
    from the decoder's output, but their packets are still read. ``stamps``: a heap that gets
    each packet's pts before its frames are yielded."""
    decoded = packets_read = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets, None)
            if packet is not None and packet.size == 0:
                continue  # demux's own end-of-stream marker: the decoder is flushed with None below
            frames = stream.decode(packet)
        except av.error.FFmpegError as error:
            raise VideoError(
                f"the video data is damaged after frame {decoded} ({_ffmpeg_reason(error)})",
                source=path.name,
                fix="copy or download the clip again; if it plays elsewhere, re-encode it to H.264 MP4",
            ) from error
        packets_read += packet is not None
        if stamps is not None and packet is not None and packet.pts is not None:
            heapq.heappush(stamps, packet.pts)
        for frame in frames:
            decoded += 1
            yield frame
        if packet is None:
            break
    if expected_packets is not None and packets_read < expected_packets:
        raise VideoError(
            f"the clip ends after {decoded} frames; its header promises {expected_packets} (a truncated file?)",
            source=path.name,
            fix="copy or download the clip again; a partial upload or download ends early",
        )


def _upright(frame: av.VideoFrame) -> np.ndarray:
    """The frame as displayed: (H, W, 3) RGB uint8, the display matrix's rotation applied,
    converted with the stream's own matrix and range (an untagged stream: FFmpeg's default)."""
    rgb = frame.to_ndarray(format="rgb24", src_color_range=int(frame.color_range) or None)
    turns = _clockwise(frame.rotation) // 90
    # np.rot90 turns counter-clockwise for a positive k
    return np.ascontiguousarray(np.rot90(rgb, k=-turns)) if turns else rgb


def _clockwise(counter_clockwise: float) -> int:
    """FFmpeg's counter-clockwise display angle -> clockwise degrees in {0, 90, 180, 270}."""
    return int(round(-counter_clockwise / 90)) % 4 * 90


def _ffmpeg_reason(error: av.error.FFmpegError) -> str:
    return error.strerror or type(error).__name__
