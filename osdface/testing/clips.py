"""Small real clips for the video tests: encoded with PyAV's own encoders (libx264, VP9, AAC,
Opus), with the features phone and web clips have: an audio track, variable frame rate,
rotation metadata (a display matrix), odd sizes and ``+faststart``.

``draw(index)`` gives the picture as it is meant to be SEEN (upright); with ``rotation`` the clip
stores it turned the other way plus a display matrix that turns it back, as a phone held
upright does, so a reader that applies the rotation gets ``draw(index)`` back (up to the codec's
loss).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from osdface.video.libav import open_av

# (container format, video encoder, audio encoder) for each extension.
_ENCODERS = {
    ".mp4": ("mp4", "libx264", "aac"),
    ".mov": ("mov", "libx264", "aac"),
    ".mkv": ("matroska", "libx264", "libopus"),
    ".webm": ("webm", "libvpx-vp9", "libopus"),
    ".avi": ("avi", "libx264", "libmp3lame"),
}
_SAMPLE_RATE = 48_000


def pattern(index: int, size: tuple[int, int]) -> np.ndarray:
    """The default picture: a gradient, a white square that moves one step a frame, and a red
    block at the top left (so a turned or mirrored frame shows). (H, W, 3) RGB uint8."""
    width, height = size
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = (x * 0.5 + 40).astype(np.uint8)
    image[..., 1] = (y * 0.6 + 30).astype(np.uint8)
    image[..., 2] = ((x + y) * 0.25 + 60).astype(np.uint8)
    side = max(4, min(width, height) // 4)
    left = (index * 3) % max(1, width - side)
    top = height // 2 - side // 2
    image[top : top + side, left : left + side] = 255
    image[: height // 4, : width // 4] = (230, 20, 20)
    return image


def make_clip(
    path: str | os.PathLike,
    *,
    frames: int = 12,
    size: tuple[int, int] = (96, 64),
    fps: int = 12,
    pts: Sequence[int] | None = None,
    time_base: Fraction = Fraction(1, 1000),
    audio: bool = True,
    audio_codec: str | None = None,
    rotation: int = 0,
    codec: str | None = None,
    draw: Callable[[int], np.ndarray] | None = None,
    faststart: bool = False,
    live: bool = False,
    audio_seconds: float | None = None,
) -> Path:
    """Write a clip of ``frames`` frames to ``path`` (the container from its extension: .mp4,
    .mov, .mkv, .webm, .avi); return the path.

    ``size``: (width, height) as displayed. ``pts``: each frame's timestamp in ``time_base``
    (irregular steps make a variable-frame-rate clip); ``None``: ``fps`` frames a second
    (time base ``1/fps``). ``rotation``: degrees the display turns the stored picture
    clockwise (0, 90, 180, 270). ``audio``: a sine tone as long as the video, in the
    extension's usual codec (``audio_codec`` to choose another). ``codec``: the video encoder
    (default: the extension's; libx264 writes an odd size in 4:4:4, which 4:2:0 cannot hold). ``draw``: index -> (H, W, 3) RGB uint8 upright picture.
    ``live``: a .webm or .mkv whose header has no duration, as a browser's MediaRecorder writes.
    ``audio_seconds``: the tone's length when it should not match the video's.
    """
    path = Path(path)
    format_name, default_codec, default_audio = _ENCODERS[path.suffix.lower()]
    if pts is None:
        pts, time_base = list(range(frames)), Fraction(1, fps)
    if len(pts) != frames:
        raise ValueError(f"{len(pts)} timestamps for {frames} frames")
    draw = draw or (lambda index: pattern(index, size))
    options = {"movflags": "+faststart"} if faststart and format_name in ("mp4", "mov") else {}
    if live:
        options["live"] = "1"
    with open_av(str(path), "w", format=format_name, options=options) as output:
        video = output.add_stream(codec or default_codec, rate=fps)
        # the display turns the stored picture clockwise, so it is stored turned the other way
        video.width, video.height = size if rotation % 180 == 0 else size[::-1]
        # H.264 in 4:2:0 cannot code an odd side; 4:4:4 can (what a clip cut from a screen has)
        odd = (size[0] | size[1]) & 1 and video.codec_context.name == "libx264"
        video.pix_fmt = "yuv444p" if odd else "yuv420p"
        video.time_base = time_base
        video.codec_context.time_base = time_base
        if rotation:
            video.set_display_rotation(-rotation)  # PyAV's angle is counter-clockwise
        sound = output.add_stream(audio_codec or default_audio, rate=_SAMPLE_RATE) if audio else None
        for index, stamp in enumerate(pts):
            stored = np.rot90(draw(index), k=rotation // 90)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(stored), format="rgb24")
            frame.pts, frame.time_base = stamp, time_base
            output.mux(video.encode(frame))
        output.mux(video.encode())
        if sound is not None:
            seconds = float((pts[-1] + (pts[-1] - pts[0]) / max(1, frames - 1) or 1) * time_base)
            _write_tone(output, sound, audio_seconds or max(seconds, 0.1))
    return path


def _write_tone(output: av.container.OutputContainer, sound: av.audio.stream.AudioStream, seconds: float):
    """A 440 Hz stereo tone of ``seconds``, in 1024-sample frames (PyAV re-blocks them to the
    encoder's frame size)."""
    total = int(seconds * _SAMPLE_RATE)
    for start in range(0, total, 1024):
        count = min(1024, total - start)
        t = (np.arange(start, start + count) / _SAMPLE_RATE).astype(np.float32)
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = _SAMPLE_RATE, start, Fraction(1, _SAMPLE_RATE)
        output.mux(sound.encode(frame))
    output.mux(sound.encode())


def make_audio_file(path: str | os.PathLike, *, seconds: float = 0.5) -> Path:
    """An audio-only file (a tone, no video stream) in the extension's container."""
    path = Path(path)
    format_name, _, audio_codec = _ENCODERS[path.suffix.lower()]
    with open_av(str(path), "w", format=format_name) as output:
        _write_tone(output, output.add_stream(audio_codec, rate=_SAMPLE_RATE), seconds)
    return path


def replace_codec_tag(path: str | os.PathLike, old: bytes = b"avc1", new: bytes = b"zzzz") -> Path:
    """Rename the video codec in an MP4's sample description (``stsd``) so that no decoder
    matches it: the fixture for a clip in a codec this FFmpeg cannot decode."""
    path = Path(path)
    data = path.read_bytes()
    # the brand list in ``ftyp`` names avc1 too: patch the entry inside the sample description
    entry = data.find(old, data.find(b"stsd"))
    if data.find(b"stsd") < 0 or entry < 0:
        raise ValueError(f"{path.name}: no {old!r} sample entry to replace")
    path.write_bytes(data[:entry] + new + data[entry + len(old) :])
    return path
