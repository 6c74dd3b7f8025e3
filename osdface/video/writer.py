"""Writing clips: restored frames encoded with the input's timestamps, rotation and colour tags,
the input's audio copied (or re-encoded where the container refuses it), and the file renamed into place only when complete.

Decisions (the README's video section says the same to users):

* Container from the target's extension: .mp4 (the default, H.264 with ``+faststart`` so a
  browser starts playing before the whole file arrives), .mov and .mkv (H.264), .webm (VP9).
  .avi is refused: it stores a constant frame rate (a variable one would be lost) and browsers do
  not play it.
* Odd sizes: H.264 in 4:2:0 (the pixel format every browser plays) codes width and height in
  steps of two, even in its cropping window, so an odd side is padded to even by repeating the
  last row or column (no black line; every input pixel kept). VP9 keeps odd sizes exactly.
* Rotation: the output gets the input's display matrix and the upright images are turned back
  before encoding, so its stored pixels and its matrix match the input's.
* Audio (``osdface.video.audio``): copied packet for packet when the container takes it; else
  re-encoded to AAC in .mp4, .mov and .mkv (a camcorder's PCM in an AVI, Opus to .mov), as an
  untouched copy is then impossible and a clip without its sound is worse. WebM holds only Opus
  and Vorbis: other audio raises ``VideoError`` naming the codec and the container that can,
  before anything is written.
* Timestamps: the frames keep their pts. MP4 and MOV store them exactly; Matroska and WebM count
  in milliseconds (finer timestamps are rounded there) and start no stream before zero, so audio
  that does (AAC's priming packet from an MP4, -21 ms) moves every stream by the same amount:
  the sync and the frame intervals are kept.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from osdface.errors import VideoError
from osdface.files import atomic_path
from osdface.video.audio import AudioTracks
from osdface.video.container import VideoInfo
from osdface.video.libav import open_av

# extension -> (FFmpeg muxer, video encoder, audio codecs it holds or None = any: re-encoded
# to _REENCODED_AUDIO when the muxer refuses a track as it is)
_FORMATS = {
    ".mp4": ("mp4", "libx264", None),
    ".mov": ("mov", "libx264", None),
    ".mkv": ("matroska", "libx264", None),
    ".webm": ("webm", "libvpx-vp9", frozenset({"opus", "vorbis"})),
}
_REENCODED_AUDIO = "aac"
# copy_streams keeps every frame's timestamp as stored, so AVI can be copied through.
_COPY_MUXERS = {**{suffix: spec[0] for suffix, spec in _FORMATS.items()}, ".avi": "avi"}
# The largest side each encoder takes (x264 and libvpx refuse more, with a bare "external
# library" error).
_MAX_SIDE = {"libx264": 16384, "libvpx-vp9": 16384}
_DEFAULT_CRF = {"libx264": 18, "libvpx-vp9": 30}  # visually lossless for x264, a close match for VP9
_COPIED_TYPES = ("video", "audio", "subtitle")


@dataclass(frozen=True)
class OutputFormat:
    """How a target path is written (``output_format``)."""

    container: str  # FFmpeg muxer name
    video_codec: str  # encoder name
    pix_fmt: str = "yuv420p"
    options: dict[str, str] = field(default_factory=dict)  # muxer options

    @property
    def even_size(self) -> bool:
        """Whether the encoder needs even sides in 4:2:0 (libx264 does, VP9 does not)."""
        return self.video_codec == "libx264"


def output_format(
    path: str | os.PathLike, *, audio_codec: str | None = None, codec: str | None = None
) -> OutputFormat:
    """The container and encoder for ``path``'s extension; ``VideoError`` when the extension is
    not one we write or ``audio_codec`` (the input's, e.g. ``VideoInfo.audio_codec``) cannot be
    stored in that container, copied or re-encoded (see the module docstring)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        why = (
            "AVI stores a constant frame rate (timestamps would be lost) and browsers do not play it"
            if suffix == ".avi"
            else f"{suffix or 'no extension'} is not a video container we write"
        )
        raise VideoError(why, source=path.name, fix="name the output .mp4 (or .mov, .mkv, .webm)")
    muxer, encoder, audio_codecs = _FORMATS[suffix]
    if audio_codec is not None and audio_codecs is not None and audio_codec not in audio_codecs:
        raise VideoError(
            f"{audio_codec} audio cannot be stored in {suffix} without re-encoding it",
            source=path.name,
            fix="name the output .mkv (it holds any audio) or .mp4",
        )
    options = {"movflags": "+faststart"} if muxer in ("mp4", "mov") else {}
    return OutputFormat(container=muxer, video_codec=codec or encoder, options=options)


class VideoWriter:
    """Encode upright frames to ``path`` (a context manager; see the module docstring).

    ``info``: the input's ``probe`` (time base, rate, rotation, colour tags). ``size``: the upright
    (width, height) of the images given, default ``info.display_size`` (times the upscale for an
    upscaled clip). ``codec``/``crf``: default the container's encoder and its near-lossless
    quality. ``audio_from``: a clip whose audio streams are copied (usually the input), or
    re-encoded where the container cannot hold them as they are (``audio_reencoded`` names them).

    The file is written beside ``path`` under a hidden name and renamed onto it on a clean exit;
    on an error (or ``abort()``) it is deleted, and ``path`` is left as it was.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        info: VideoInfo,
        *,
        size: tuple[int, int] | None = None,
        codec: str | None = None,
        crf: int | None = None,
        audio_from: str | os.PathLike | None = None,
    ):
        self.path = Path(path)
        self.info = info
        self.size = tuple(size or info.display_size)
        self.frames_written = 0
        self._last_pts: int | None = None
        self._audio = AudioTracks(Path(audio_from)) if audio_from is not None else None
        self._files = contextlib.ExitStack()
        try:
            self.format = output_format(self.path, codec=codec)
            for audio_codec in self._audio.codecs if self._audio else ():
                output_format(self.path, audio_codec=audio_codec, codec=codec)
            partial = self._files.enter_context(atomic_path(self.path))
            self._output = open_av(
                str(partial), "w", format=self.format.container, options=self.format.options
            )
            self._stream = self._add_video_stream(crf)
            if self._audio:
                reencode_to = _REENCODED_AUDIO if _FORMATS[self.path.suffix.lower()][2] is None else None
                self._audio.add_streams(self._output, self.format.container, reencode_to)
            self._output.start_encoding()
        except BaseException as error:
            self._abort(error)
            _raise_as_video_error(error, self.path)

    def _add_video_stream(self, crf: int | None) -> av.video.stream.VideoStream:
        info, encoder = self.info, self.format.video_codec
        crf = _DEFAULT_CRF.get(encoder, 23) if crf is None else crf
        options = {"crf": str(crf)} | ({"b": "0", "row-mt": "1"} if encoder == "libvpx-vp9" else {})
        stream = self._output.add_stream(encoder, rate=info.average_rate or 25, options=options)
        width, height = self.size if info.rotation % 180 == 0 else self.size[::-1]
        if self.format.even_size:
            width, height = width + width % 2, height + height % 2
        largest = _MAX_SIDE.get(encoder)
        if largest is not None and max(width, height) > largest:
            raise VideoError(
                f"the frames would be {width}x{height} pixels; {encoder} encodes at most {largest} per side",
                source=self.path.name,
                fix="lower --upscale (or leave out --side-by-side, which doubles the width)",
            )
        stream.width, stream.height, stream.pix_fmt = width, height, self.format.pix_fmt
        stream.time_base = stream.codec_context.time_base = info.time_base
        context = stream.codec_context
        context.colorspace, context.color_range = info.colorspace, info.color_range
        context.color_primaries, context.color_trc = info.color_primaries, info.color_trc
        if info.rotation:
            stream.set_display_rotation(-info.rotation)  # PyAV's angle is counter-clockwise
        return stream

    @property
    def audio_reencoded(self) -> list[str]:
        """The codecs of the audio tracks re-encoded (the container could not hold them)."""
        return list(self._audio.reencoded) if self._audio else []

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is None:
            self.close()
        else:
            self._abort(error)

    def write(self, image: np.ndarray, pts: int | None, time_base: Fraction | None = None) -> None:
        """Encode one upright ``(H, W, 3) RGB uint8`` image (``size``) at ``pts`` in ``time_base``
        (the input frame's; default the stream's). ``pts=None`` (or one not after the last)
        becomes the next frame at the clip's average rate, so the frame count never changes."""
        width, height = self.size
        if image.shape != (height, width, 3) or image.dtype != np.uint8:
            raise ValueError(
                f"expected a ({height}, {width}, 3) uint8 image, got {image.shape} {image.dtype}"
            )
        # Padded while upright, so the added row and column end up at the bottom and right as
        # displayed, whatever the rotation: the picture keeps its place.
        upright = _pad_to_even(image) if self.format.even_size else image
        stored = np.rot90(upright, k=self.info.rotation // 90)  # back to the input's stored turn
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(stored), format="rgb24")
        frame = frame.reformat(
            format=self.format.pix_fmt,
            dst_colorspace=_swscale_matrix(self.info.colorspace),
            dst_color_range=self.info.color_range or None,
        )
        frame.pts, frame.time_base = self._next_pts(pts, time_base), self.info.time_base
        try:
            self._output.mux(self._stream.encode(frame))
            if self._audio:
                self._audio.mux_until(self._output, float(frame.pts * self.info.time_base))
        except av.error.FFmpegError as error:
            _raise_as_video_error(error, self.path)
        self.frames_written += 1

    def _next_pts(self, pts: int | None, time_base: Fraction | None) -> int:
        own = self.info.time_base
        if pts is not None and time_base is not None and time_base != own:
            pts = round(pts * time_base / own)
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            rate = self.info.average_rate
            step = max(1, round(1 / (rate * own))) if rate else 1
            pts = 0 if self._last_pts is None else self._last_pts + step
        self._last_pts = pts
        return pts

    def close(self) -> None:
        """Flush the encoder, copy the rest of the audio, close and rename onto ``path``."""
        try:
            self._output.mux(self._stream.encode())
            if self._audio:
                self._audio.mux_until(self._output, None)
                self._audio.close()
            self._output.close()
        except BaseException as error:
            self._abort(error)
            _raise_as_video_error(error, self.path)
        self._files.close()  # renames the finished file onto the target

    def abort(self) -> None:
        """Stop without a file: close everything and delete the partial output."""
        self._abort(RuntimeError("aborted"))

    def _abort(self, error: BaseException) -> None:
        # The original error is what the caller needs; a second one from closing a half-written
        # container would only hide it.
        with contextlib.suppress(av.error.FFmpegError, OSError):
            if getattr(self, "_output", None) is not None:
                self._output.close()
        if self._audio:
            self._audio.close()
        self._files.__exit__(type(error), error, error.__traceback__)


def copy_streams(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Remux ``source``'s video, audio and subtitle streams into ``target`` unchanged (a clip
    with no faces to restore); data streams (timecodes, camera metadata) are left out. The
    container is the target's extension's (.mp4, .mov, .mkv, .webm, .avi); atomic."""
    source, target = Path(source), Path(target)
    muxer = _COPY_MUXERS.get(target.suffix.lower())
    if muxer is None:
        raise VideoError(
            f"{target.suffix or 'no extension'} is not a video container we write",
            source=target.name,
            fix="name the output .mp4, .mov, .mkv, .webm or .avi",
        )
    options = {"movflags": "+faststart"} if muxer in ("mp4", "mov") else {}
    try:
        with open_av(str(source), "r") as inputs, atomic_path(target) as partial:
            with open_av(str(partial), "w", format=muxer, options=options) as output:
                copied = [s for s in inputs.streams if s.type in _COPIED_TYPES]
                targets = {s.index: output.add_stream_from_template(s) for s in copied}
                for packet in inputs.demux(copied):
                    if packet.size:
                        packet.stream = targets[packet.stream.index]
                        output.mux(packet)
    except (av.error.FFmpegError, ValueError) as error:
        _raise_as_video_error(error, target)
    return target


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left`` scaled to ``right``'s height (aspect kept) then ``right``: for comparing the
    input with the restored (upscaled) frame. (H, W, 3) RGB uint8 in and out."""
    height = right.shape[0]
    if left.shape[0] != height:
        width = side_by_side_size(left.shape[1::-1], right.shape[1::-1])[0] - right.shape[1]
        left = np.asarray(Image.fromarray(left).resize((width, height), Image.Resampling.LANCZOS))
    return np.concatenate([left, right], axis=1)


def side_by_side_size(left: tuple[int, int], right: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of ``side_by_side`` of images of these (width, height): the writer is
    opened with it before the first frame, so both must round the left width the same way."""
    width = left[0] if left[1] == right[1] else max(1, round(left[0] * right[1] / left[1]))
    return width + right[0], right[1]


def _pad_to_even(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> even sides, the last row/column repeated (see the module docstring)."""
    height, width = image.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return image
    return np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def _swscale_matrix(colorspace: int) -> int | None:
    """The input's AVColorSpace as swscale's matrix, or None (FFmpeg's default, the same one the
    reader used) for values swscale does not name: unspecified, reserved, RGB."""
    return colorspace if colorspace in (1, 4, 5, 6, 7, 9) else None


def _raise_as_video_error(error: BaseException, path: Path) -> None:
    """Raise FFmpeg's and PyAV's errors (a ``ValueError`` for a codec the container refuses) as
    a ``VideoError`` naming the file; anything else (ours, an interrupt) unchanged."""
    if isinstance(error, VideoError) or not isinstance(error, av.error.FFmpegError | ValueError):
        raise error
    raise VideoError(
        f"could not write the clip ({getattr(error, 'strerror', None) or error})",
        source=path.name,
        fix="check the output folder has room and the name ends in .mp4, .mov, .mkv or .webm",
    ) from error
