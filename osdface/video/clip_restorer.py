"""Restore every face of a video clip, steady from frame to frame.

``ClipRestorer.restore(source, target)`` streams the clip through five steps:

1. decode a frame (``osdface.video.container.read_frames``: upright RGB, its timestamp);
2. detect faces every ``detect_every`` frames (the whole-photo restorer's detector and face
   selection) and track them (``osdface.video.tracking``): ids kept across frames, landmarks
   steadied by a One Euro filter;
3. align each face and restore the faces of several frames in one pipeline call
   (``batch_size`` faces), each seeded by its track, so a face's VAE noise is the same in
   every frame;
4. paste the faces back as for photos (``FaceRestorer.paste``);
5. encode with the input's timestamps (``VideoWriter``: H.264 in MP4 by default, the audio
   copied, or re-encoded where the container refuses it), and measure flicker
   (``osdface.video.flicker``).

Frames wait in memory only until their faces are restored (until ``batch_size`` faces are
queued, at most ``MAX_WAITING_FRAMES`` frames), so a long clip takes no more memory than a short
one. Detections and restored faces are kept in a
``WorkFolder`` next to the output so an interrupted run resumes where it stopped. A clip in
which no face is ever found is copied through unchanged. Other restorers (``others``) restore
the same tracked faces, each into its own clip.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from osdface.errors import ImageError, VideoError
from osdface.faces.options import RestoreOptions
from osdface.faces.restorer import FaceRestorer, face_generators, is_gray, keep_gray
from osdface.faces.template import align_face
from osdface.images.conversion import to_pil
from osdface.video.container import VideoFrame, VideoInfo, VideoLimits, probe, read_frames
from osdface.video.flicker import FlickerMeter, FlickerReport
from osdface.video.resume import WorkFolder, model_identity
from osdface.video.tracking import FaceTracker, TrackedFace, TrackerSettings
from osdface.video.writer import VideoWriter, copy_streams, side_by_side, side_by_side_size

PRIMARY = "osdface"
# Frames held at most while their faces wait for a batch to fill (a face followed by a long
# stretch without faces would otherwise keep every frame of that stretch in memory).
MAX_WAITING_FRAMES = 16
STAGES = ("decode", "detect", "track", "align", "restore", "paste", "encode")


@dataclass(frozen=True)
class VideoOptions:
    """What ``ClipRestorer`` does with a clip.

    faces: the whole-photo options used for each frame (``upscale``, ``min_face_size``,
        ``max_faces``, ``batch_size``, ``prompt``, ``color_fix``); ``seed`` seeds track i
        with ``seed + i`` (a clip is always seeded: unseeded noise would flicker).
    tracking: detection interval, track keeping and the landmark filter.
    side_by_side: also write ``NAME.side_by_side.mp4``: the input and the restored clip.
    limits: refuse clips over these (checked from the header before decoding).
    resume: keep detections and restored faces beside the output so a rerun continues.
    """

    faces: RestoreOptions = field(default_factory=lambda: RestoreOptions(seed=0))
    tracking: TrackerSettings = field(default_factory=TrackerSettings)
    side_by_side: bool = False
    limits: VideoLimits | None = None
    resume: bool = True

    def __post_init__(self) -> None:
        if self.faces.aligned:
            raise ValueError("a clip is restored as whole frames: aligned=True does not apply")
        if self.faces.seed is None:
            object.__setattr__(self, "faces", replace(self.faces, seed=0))


@dataclass
class VideoResult:
    """``outputs``: the written clips by restorer (``osdface`` first), plus ``side_by_side``;
    ``frames``: frames written; ``faces``: faces restored over all frames; ``tracks``: faces
    followed; ``no_face_found``: the clip was copied through; ``flicker``: the primary output's;
    ``resumed_frames``: frames whose detections came from an interrupted run; ``timings``:
    seconds per stage (``STAGES``) and ``total``; ``audio_reencoded``: the codecs of the audio
    tracks re-encoded to AAC, as the output container could not hold them as they are."""

    source: Path
    outputs: dict[str, Path]
    info: VideoInfo
    frames: int = 0
    faces: int = 0
    tracks: int = 0
    no_face_found: bool = False
    flicker: FlickerReport | None = None
    resumed_frames: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    note: str | None = None
    audio_reencoded: list[str] = field(default_factory=list)

    def report(self) -> str:
        name = self.source.name
        if self.no_face_found:
            return f"{name}: no face in {self.frames} frames; " + (self.note or "copied through unchanged")
        seconds = self.timings.get("total", 0.0)
        fps = self.frames / seconds if seconds > 0 else float("nan")
        lines = [
            f"{name}: {self.frames} frames, {self.faces} faces restored in {self.tracks} track(s), "
            f"{fps:.2f} frames/s" + (f", {self.resumed_frames} frames resumed" if self.resumed_frames else "")
        ]
        if self.flicker is not None:
            lines.append(f"  {self.flicker.line()}")
        if self.audio_reencoded:
            lines.append(
                f"  audio re-encoded to AAC ({', '.join(self.audio_reencoded)} cannot be copied into it)"
            )
        spent = sum(self.timings.get(stage, 0.0) for stage in STAGES)
        if spent > 0:
            shares = ", ".join(
                f"{stage} {100 * self.timings.get(stage, 0.0) / spent:.0f}%" for stage in STAGES
            )
            lines.append(f"  time per stage: {shares}")
        return "\n".join(lines)


@dataclass
class _Frame:
    """A decoded frame waiting for its faces. ``image``: (H, W, 3) RGB uint8 upright."""

    frame: VideoFrame
    faces: list[TrackedFace]
    crops: list[Image.Image]
    affines: list[np.ndarray]
    restored: dict[str, list[Image.Image | None]]

    def ready(self) -> bool:
        return all(face is not None for faces in self.restored.values() for face in faces)


def clip_batch_size(device: object) -> int:
    """Faces per pipeline call in clips when none is asked for: a GPU restores a batch of 8
    faces (from several frames) in little more time than one; a CPU gains nothing from larger
    batches, which only hold more frames in memory."""
    kind = getattr(device, "type", str(device))
    return {"cuda": 8, "mps": 4}.get(kind, 2)


def side_by_side_path(target: Path) -> Path:
    return target.with_name(f"{target.stem}.side_by_side{target.suffix}")


def same_file_error(source: Path) -> VideoError:
    """The error for an output that is the input itself: writing it would destroy the clip
    being read."""
    return VideoError(
        "the output would overwrite the input clip",
        source=source.name,
        fix="choose another output folder (-o) or --video-format",
    )


def other_path(target: Path, key: str) -> Path:
    return target.with_name(f"{target.stem}.{key}{target.suffix}")


class ClipRestorer:
    """Restore clips with ``restorer`` (a ``FaceRestorer``: its pipeline, detector and paste);
    ``others``: more pipelines (same call signature, e.g. ``FaceModelPipeline(gfpgan)``) that
    restore the same faces into ``NAME.KEY.mp4``; ``degrade(image, frame_index)``: applied to
    each decoded frame first (the app's turbulence), the frame the restorers then see."""

    def __init__(
        self,
        restorer: FaceRestorer,
        options: VideoOptions | None = None,
        *,
        others: Mapping[str, Any] | None = None,
        degrade: Callable[[np.ndarray, int], np.ndarray] | None = None,
    ):
        self.restorer = restorer
        self.options = options or VideoOptions()
        self.others = dict(others or {})
        self.degrade = degrade

    def restore(
        self,
        source: str | Path,
        target: str | Path,
        *,
        on_frame: Callable[[int, int | None], None] | None = None,
    ) -> VideoResult:
        """Restore ``source`` into ``target`` (see the module docstring). ``on_frame(done,
        total)`` after each written frame (``total`` from the header, None if unknown).
        Raises ``VideoError`` for a clip that cannot be used (nothing is left behind)."""
        started = time.perf_counter()
        source, target = Path(source), Path(target)
        outputs = {PRIMARY: target, **{key: other_path(target, key) for key in self.others}}
        if self.options.side_by_side:
            outputs["side_by_side"] = side_by_side_path(target)
        if source.resolve() in {path.resolve() for path in outputs.values()}:
            raise same_file_error(source)
        info = probe(source, self.options.limits)
        result = VideoResult(source=source, outputs=outputs, info=info)
        work = WorkFolder(target, self._work_key(source, info)) if self.options.resume else None
        try:
            if work is not None:
                work.open()
            self._run(source, info, outputs, result, work, on_frame)
        except ImageError:
            if work is not None:  # a clip that cannot be used leaves nothing behind
                work.remove()
            raise
        finally:
            if work is not None:
                work.close()
        if result.tracks == 0:
            self._copy_through(source, target, outputs, result)
        if work is not None:
            work.remove()
        result.timings["total"] = time.perf_counter() - started
        return result

    # ---------------------------------------------------------------- the loop

    def _run(self, source, info, outputs, result, work, on_frame) -> None:
        options = self.options.faces
        pipelines = {PRIMARY: self.restorer.pipeline, **self.others}
        tracker = FaceTracker(self.options.tracking, max_faces=options.max_faces)
        meter = FlickerMeter()
        timings = {stage: 0.0 for stage in STAGES}
        scale = options.upscale
        # The size paste_faces gives the frames: int(side * upscale).
        size = (int(info.display_size[0] * scale), int(info.display_size[1] * scale))
        sizes = dict.fromkeys(pipelines, size)
        if self.options.side_by_side:
            sizes["side_by_side"] = side_by_side_size(info.display_size, size)
        pending: deque[_Frame] = deque()
        queued = 0
        # On an error every writer opened so far removes its partial file (one that fails to
        # open must not leave the earlier ones open), and the decoder's file is closed.
        with ExitStack() as stack:
            writers = {
                key: stack.enter_context(VideoWriter(outputs[key], info, size=sizes[key], audio_from=source))
                for key in sizes
            }
            frames = read_frames(source, limits=self.options.limits)
            stack.callback(frames.close)
            tick = time.perf_counter()
            for frame in frames:
                timings["decode"] += time.perf_counter() - tick
                waiting = self._prepare(frame, info, tracker, work, pipelines, result, timings)
                pending.append(waiting)
                queued += sum(face is None for face in waiting.restored[PRIMARY])
                if queued >= options.batch_size or (queued and len(pending) >= MAX_WAITING_FRAMES):
                    self._restore_pending(pending, pipelines, work, timings)
                    queued = 0
                self._emit_ready(pending, writers, meter, result, timings, on_frame)
                tick = time.perf_counter()
            self._restore_pending(pending, pipelines, work, timings)
            self._emit_ready(pending, writers, meter, result, timings, on_frame)
        result.audio_reencoded = writers[PRIMARY].audio_reencoded
        result.tracks = tracker.tracks_started
        result.flicker = meter.report()
        result.timings.update(timings)

    def _prepare(self, frame, info, tracker, work, pipelines, result, timings) -> _Frame:
        """Detect (or take saved detections), track and align one frame's faces; restored faces
        saved by an interrupted run are filled in."""
        options = self.options.faces
        if self.degrade is not None:
            frame = replace(frame, image=self.degrade(frame.image, frame.index))
        every = self.options.tracking.detect_every
        detections = None
        if frame.index % every == 0:
            detections = work.detections(frame.index) if work is not None else None
            if detections is not None:
                result.resumed_frames += 1
            else:
                tick = time.perf_counter()
                detections = self.restorer.detect(frame.image, options).faces
                timings["detect"] += time.perf_counter() - tick
                if work is not None:
                    work.save_detections(frame.index, detections)
        tick = time.perf_counter()
        faces = tracker.update(_seconds(frame, info), detections)
        timings["track"] += time.perf_counter() - tick
        tick = time.perf_counter()
        aligned = [align_face(frame.image, face.landmarks) for face in faces]  # (crop RGB uint8, affine)
        timings["align"] += time.perf_counter() - tick
        restored: dict[str, list[Image.Image | None]] = {}
        for key in pipelines:
            restored[key] = [
                work.face(key, frame.index, face.track_id) if work is not None else None for face in faces
            ]
        return _Frame(
            frame=frame,
            faces=faces,
            crops=[to_pil(crop) for crop, _ in aligned],
            affines=[affine for _, affine in aligned],
            restored=restored,
        )

    def _restore_pending(self, pending, pipelines, work, timings) -> None:
        """Restore every face still missing in ``pending``, ``batch_size`` at a time, with each
        pipeline; each face seeded by its track."""
        options = self.options.faces
        for key, pipeline in pipelines.items():
            todo = [
                (waiting, i)
                for waiting in pending
                for i, face in enumerate(waiting.restored[key])
                if face is None
            ]
            for start in range(0, len(todo), options.batch_size):
                chunk = todo[start : start + options.batch_size]
                crops = [waiting.crops[i] for waiting, i in chunk]
                generators = face_generators(
                    options.seed, [waiting.faces[i].track_id for waiting, i in chunk]
                )
                tick = time.perf_counter()
                faces = self.restorer.run_pipeline(crops, generators, options, {}, pipeline=pipeline)
                timings["restore"] += time.perf_counter() - tick
                for (waiting, i), face in zip(chunk, faces):
                    face = keep_gray([face], is_gray(waiting.frame.image))[0]
                    waiting.restored[key][i] = face
                    if work is not None:
                        work.save_face(key, waiting.frame.index, waiting.faces[i].track_id, face)

    def _emit_ready(self, pending, writers, meter, result, timings, on_frame) -> None:
        """Paste, encode and measure the frames at the front whose faces are all restored."""
        options = self.options.faces
        while pending and pending[0].ready():
            waiting = pending.popleft()
            frame = waiting.frame
            outputs: dict[str, np.ndarray] = {}
            tick = time.perf_counter()
            for key, faces in waiting.restored.items():
                if waiting.faces:
                    outputs[key] = self.restorer.paste(frame.image, faces, waiting.affines, options, {})
                else:
                    outputs[key] = self.restorer.resample(frame.image, options, {})
            timings["paste"] += time.perf_counter() - tick
            tick = time.perf_counter()
            for key, image in outputs.items():
                writers[key].write(image, frame.pts, frame.time_base)
            if "side_by_side" in writers:
                writers["side_by_side"].write(
                    side_by_side(frame.image, outputs[PRIMARY]), frame.pts, frame.time_base
                )
            timings["encode"] += time.perf_counter() - tick
            meter.add(frame.image, outputs[PRIMARY], [(face.track_id, face.box) for face in waiting.faces])
            result.frames += 1
            result.faces += len(waiting.faces)
            if on_frame is not None:
                on_frame(result.frames, result.info.frames)

    # ---------------------------------------------------------------- helpers

    def _copy_through(
        self, source: Path, target: Path, outputs: dict[str, Path], result: VideoResult
    ) -> None:
        """No face anywhere: the clip itself, unchanged, instead of a re-encoded copy."""
        result.no_face_found = True
        try:
            copy_streams(source, target)
        except VideoError as exc:  # e.g. an AVI's codec that the chosen container cannot hold
            result.note = f"written re-encoded, as its streams cannot be copied as they are ({exc.reason})"
        for key, path in outputs.items():
            if key != PRIMARY:
                path.unlink(missing_ok=True)
        result.outputs = {PRIMARY: target}

    def _work_key(self, source: Path, info: VideoInfo) -> dict[str, Any]:
        stat = source.stat()
        return {
            "source": str(source.resolve()),
            "bytes": stat.st_size,
            "modified": stat.st_mtime_ns,
            "options": repr(self.options),
            # Faces saved by other weights, another dtype or restorer settings must not be reused.
            "restorers": {
                key: model_identity(pipeline)
                for key, pipeline in {PRIMARY: self.restorer.pipeline, **self.others}.items()
            },
        }


def _seconds(frame: VideoFrame, info: VideoInfo) -> float:
    """The frame's time: its timestamp, or its index over the average rate when it has none."""
    if frame.pts is not None:
        return float(frame.pts * frame.time_base)
    rate = float(info.average_rate) if info.average_rate else 25.0
    return frame.index / rate
