"""The input's audio in a restored clip: each track copied packet for packet (bit for bit) when
the output container takes it, else decoded and re-encoded (AAC for .mp4, .mov and .mkv).

Whether a container takes a track is asked of FFmpeg's muxer itself, with the track's first
packet written to an output in memory: the muxers' codec lists say yes to tracks they then
refuse (PCM from an AVI or a Matroska file has no channel layout, which MP4 needs; MOV refuses
Opus), and a camcorder's AVI should still come out as an .mp4 with its sound.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import av

from osdface.errors import VideoError
from osdface.video.libav import open_av


class AudioTracks:
    """A clip's audio streams, muxed into an output in time order as the video advances, so
    the muxer interleaves them without holding a whole track (see the module docstring)."""

    def __init__(self, source: Path):
        self.source = source
        try:
            self._input = open_av(str(source), "r")
        except av.error.FFmpegError as error:
            raise VideoError(
                f"could not read the audio ({error.strerror or type(error).__name__})",
                source=source.name,
                fix="copy or download the clip again",
            ) from error
        self._sources = list(self._input.streams.audio)
        self.codecs = [stream.codec_context.codec.canonical_name for stream in self._sources]
        self.reencoded: list[str] = []  # the codecs of the tracks re-encoded, for the report
        self._targets: dict[int, av.stream.Stream] = {}
        self._decoders: dict[int, av.audio.stream.AudioStream] = {}  # source index -> re-encoded track
        self._packets: Iterator[av.Packet] = iter(())
        self._pending: av.Packet | None = None

    def add_streams(self, output: av.container.OutputContainer, muxer: str, reencode_to: str | None) -> None:
        """Add a track to ``output`` for each audio stream: a copy when ``muxer`` takes it, else
        one encoded with ``reencode_to``; with ``reencode_to=None`` such a track is refused."""
        for stream, codec in zip(self._sources, self.codecs):
            if muxer_takes(muxer, self.source, stream.index):
                self._targets[stream.index] = output.add_stream_from_template(stream)
                continue
            if reencode_to is None:
                raise VideoError(
                    f"{codec} audio cannot be stored in a {muxer} file",
                    source=self.source.name,
                    fix="choose another output container (--video-format mkv holds any audio)",
                )
            context = stream.codec_context
            self._targets[stream.index] = output.add_stream(
                reencode_to, rate=context.sample_rate, layout=f"{context.channels}c"
            )
            self._decoders[stream.index] = stream
            self.reencoded.append(codec)
        self._packets = self._input.demux(self._sources) if self._sources else iter(())

    def mux_until(self, output: av.container.OutputContainer, seconds: float | None) -> None:
        """Mux the packets that start at or before ``seconds`` (``None``: all that are left,
        and the re-encoders flushed)."""
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                break
            if packet.size == 0:
                continue  # demux's end-of-stream marker
            stamp = packet.dts if packet.dts is not None else packet.pts
            if seconds is not None and stamp is not None and float(stamp * packet.time_base) > seconds:
                self._pending = packet
                return
            index = packet.stream.index
            target = self._targets[index]
            if index in self._decoders:
                for frame in self._decoders[index].decode(packet):
                    output.mux(target.encode(frame))
            else:
                packet.stream = target
                output.mux(packet)
        if seconds is None:
            for index, decoder in self._decoders.items():
                for frame in decoder.decode(None):
                    output.mux(self._targets[index].encode(frame))
                output.mux(self._targets[index].encode(None))
            self._decoders = {}

    def close(self) -> None:
        self._pending = None
        self._input.close()


def muxer_takes(muxer: str, source: Path, index: int) -> bool:
    """Whether FFmpeg's ``muxer`` writes stream ``index`` of ``source`` as it is: its header and
    first packet, into memory (see the module docstring)."""
    with open_av(str(source), "r") as inputs:
        stream = inputs.streams[index]
        first = next((packet for packet in inputs.demux(stream) if packet.size), None)
        output = open_av(io.BytesIO(), "w", format=muxer)
        try:
            copied = output.add_stream_from_template(stream)
            output.start_encoding()
            if first is not None:
                first.stream = copied
                output.mux(first)
            output.close()
        except (av.error.FFmpegError, ValueError):
            # the refusal is the answer; closing the half-written output may fail again
            with contextlib.suppress(av.error.FFmpegError, ValueError):
                output.close()
            return False
    return True
