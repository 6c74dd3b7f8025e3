"""The app's Video tab (the logic; the widgets are in ``osdface.app.clip_tab``).

A clip is checked from its container's header before anything is decoded (duration, frame
size; limits higher on a GPU than on a CPU, stated on the page), its first frame is searched
for faces (on the CPU: on ZeroGPU that fixes the GPU time to ask for before a GPU is held),
then ``osdface.video.ClipRestorer`` restores it: faces tracked, landmarks steadied, every face
seeded by its track, the audio copied. Turbulence, when asked, is drawn independently for each
frame (seed + frame index): each frame is a new short exposure, not a continuous evolution of
the same air, which real turbulence would be.

Three steps like ``Studio``: ``prepare`` (CPU), ``run`` (GPU; writes the clips into the
request's own folder) and the outcome's Markdown. No per-request state is kept on the object.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from osdface import lazy, video
from osdface import restorers as other_restorers
from osdface.app.imaging import add_turbulence
from osdface.app.models import Part
from osdface.app.requests import RequestError, ServiceUnavailableError, check_turbulence_settings
from osdface.app.service import Studio
from osdface.choices import ColorFix
from osdface.errors import ImageError
from osdface.restorers.specs import RESTORERS

np = lazy.module("numpy")

# Seconds of GPU time per face and frame (batched), and the ZeroGPU request's base and cap.
GPU_SECONDS_PER_FACE_FRAME = 0.25
GPU_BASE_SECONDS = 20
GPU_MAX_SECONDS = 120
WITHOUT_VRE = "no_vre"


@dataclass(frozen=True)
class ClipLimits:
    """What one request may ask: checked from the header (seconds, pixels) and the first frame
    (faces: more are left out, the largest kept)."""

    seconds: float
    width: int
    height: int
    faces: int

    def text(self) -> str:
        return f"{self.seconds:g} s, {self.width}x{self.height} pixels, {self.faces} face(s)"


# A CPU restores a face in about half a minute with the full model: a clip of a few seconds is
# already a long wait, so the page says how long before it starts.
CPU_LIMITS = ClipLimits(seconds=4, width=1280, height=720, faces=2)
GPU_LIMITS = ClipLimits(seconds=20, width=1920, height=1080, faces=4)


@dataclass(frozen=True)
class ClipRequest:
    """One press of "Restore clip". ``video``: the uploaded file's path (None: nothing)."""

    video: str | os.PathLike | None
    turbulence: bool = False
    propagation_length: float = 30000.0
    seed: int = 0
    side_by_side: bool = True
    ablation: bool = False
    restorers: tuple[str, ...] = ()
    color_fix: str = "none"

    def check(self) -> None:
        if self.video is None:
            raise RequestError("No clip: upload or record a video first (MP4, MOV, WebM, MKV or AVI).")
        check_turbulence_settings(self.propagation_length, self.seed)
        unknown = [key for key in self.restorers if key not in RESTORERS]
        if unknown:
            raise RequestError(f"Unknown restorer(s) {', '.join(unknown)}: use {', '.join(RESTORERS)}.")


@dataclass
class PreparedClip:
    request: ClipRequest
    info: Any  # osdface.video.VideoInfo
    faces: int  # faces to restore, from the first frame (at least 1 for the estimate)
    faces_found: int
    frames: int
    started: float = field(default_factory=time.perf_counter)

    @property
    def passes(self) -> int:
        return 1 + int(self.request.ablation) + len(self.request.restorers)


@dataclass
class ClipOutcome:
    """The written clips (None where not asked) and the report."""

    restored: Path
    side_by_side: Path | None
    without_vre: Path | None
    others: dict[str, Path]
    report: str


class PromptPipeline:
    """The OSDFace pipeline conditioned on a text prompt instead of the VRE (the ablation),
    with the call signature of a pipeline."""

    def __init__(self, pipeline: Any, prompt: str = ""):
        self.pipeline = pipeline
        self.prompt = prompt

    def __call__(self, images, prompt=None, color_fix=None, generator=None):
        return self.pipeline(images, prompt=self.prompt, color_fix=color_fix, generator=generator)


class ClipStudio:
    """The Video tab's steps on a ``Studio``'s models (see the module docstring)."""

    def __init__(self, studio: Studio, restorers: Callable[[], Any] | None = None):
        self.studio = studio
        # () -> an osdface.restorers.RestorerSet: the photo tab's, loaded once for both tabs.
        self._restorers = restorers or (lambda: other_restorers.RestorerSet(device=studio.device))

    @property
    def on_gpu(self) -> bool:
        return self.studio.settings.zero_gpu or (self.studio.available and self.studio.device.type != "cpu")

    def limits(self) -> ClipLimits:
        return GPU_LIMITS if self.on_gpu else CPU_LIMITS

    def prepare(self, request: ClipRequest) -> PreparedClip:
        """Check the request and the clip's header, count the faces of its first frame."""
        request.check()
        if self.studio.pipeline is None or self.studio.restorer is None:
            missing = self.studio.models.why_missing(Part.PIPELINE) or self.studio.models.why_missing(
                Part.DETECTOR
            )
            raise ServiceUnavailableError(f"Restoring clips is unavailable: {missing}")
        if request.ablation and self.studio.models.why_missing(Part.ABLATION):
            raise ServiceUnavailableError(
                f"The without-VRE clip is unavailable: {self.studio.models.why_missing(Part.ABLATION)} "
                "Switch off 'Also without VRE'."
            )
        limits = self.limits()
        try:
            info = video.probe(request.video, video.VideoLimits(max_seconds=limits.seconds))
            _check_size(info, limits)
            first = next(video.read_frames(request.video), None)
        except ImageError as exc:
            raise RequestError(exc.message(with_source=False)) from exc
        if first is None:
            raise RequestError("The clip has no frame that can be decoded: record or export it again.")
        image = self._degrade(request)(first.image, 0)
        found = len(self.studio.restorer.detect(image, self._options(request, limits)).faces)
        frames = _frame_budget(info, limits)
        return PreparedClip(
            request, info, faces=max(1, min(found, limits.faces)), faces_found=found, frames=frames
        )

    def gpu_seconds(self, prepared: PreparedClip) -> int:
        """ZeroGPU's ``duration``: grows with frames x faces x restorers."""
        work = prepared.frames * prepared.faces * prepared.passes
        return min(GPU_MAX_SECONDS, math.ceil(GPU_BASE_SECONDS + GPU_SECONDS_PER_FACE_FRAME * work))

    def estimate_seconds(self, prepared: PreparedClip, seconds_per_face: float) -> float:
        return prepared.frames * prepared.faces * prepared.passes * seconds_per_face

    def run(self, prepared: PreparedClip, folder: Path, on_frame=None) -> ClipOutcome:
        """Restore the clip into ``folder`` (the request's own). Holds the GPU on ZeroGPU."""
        request = prepared.request
        limits = self.limits()
        target = folder / "restored.mp4"
        others: dict[str, Any] = {}
        if request.ablation:
            others[WITHOUT_VRE] = PromptPipeline(self.studio.pipeline, "")
        if request.restorers:
            models, errors = self.restorers().get(request.restorers)
            if errors:
                raise ServiceUnavailableError(
                    "; ".join(f"{RESTORERS[key].label}: {reason}" for key, reason in errors.items())
                )
            others.update({key: other_restorers.FaceModelPipeline(model) for key, model in models.items()})
        options = video.VideoOptions(
            faces=replace(
                self._options(request, limits), batch_size=video.clip_batch_size(self.studio.device)
            ),
            side_by_side=request.side_by_side,
            # Checked again while decoding: a browser's recording has no duration in its header.
            limits=video.VideoLimits(max_seconds=limits.seconds),
            resume=False,  # a request's folder is its own and is not revisited
        )
        restorer = video.ClipRestorer(
            self.studio.restorer, options, others=others, degrade=self._degrade(request)
        )
        folder.mkdir(parents=True, exist_ok=True)  # now: a request refused above leaves no folder
        try:
            result = restorer.restore(request.video, target, on_frame=on_frame)
        except ImageError as exc:  # e.g. a clip damaged after the frames the header promised
            raise RequestError(exc.message(with_source=False)) from exc
        outputs = result.outputs
        return ClipOutcome(
            restored=outputs[video.PRIMARY],
            side_by_side=outputs.get("side_by_side"),
            without_vre=outputs.get(WITHOUT_VRE),
            others={key: path for key, path in outputs.items() if key in RESTORERS},
            report=clip_markdown(prepared, result),
        )

    def restorers(self) -> Any:
        return self._restorers()

    def _options(self, request: ClipRequest, limits: ClipLimits):
        base = self.studio.restorer.options
        return replace(
            base,
            max_faces=limits.faces,
            color_fix=ColorFix.argument(request.color_fix),
            seed=int(request.seed),
            upscale=1.0,
            max_pixels=None,
            max_output_pixels=None,
        )

    @staticmethod
    def _degrade(request: ClipRequest):
        """(frame (H, W, 3) RGB uint8, frame index) -> the frame the model sees."""
        if not request.turbulence:
            return lambda image, index: image
        length, seed = request.propagation_length, int(request.seed)
        return lambda image, index: add_turbulence(image, length, seed + index)


def _frame_budget(info: Any, limits: ClipLimits) -> int:
    """Frames to plan the GPU time for: the header's count or duration; a header without
    either (a browser's WebM recording) may run up to the duration limit, so that is planned
    for, at its frame rate (30 frames/s when it names none)."""
    rate = float(info.average_rate or 30)
    if info.frames:
        return info.frames
    if info.duration:
        return max(1, round(info.duration * rate))
    return max(1, math.ceil(limits.seconds * rate))


def _check_size(info: Any, limits: ClipLimits) -> None:
    width, height = sorted(info.display_size, reverse=True)
    if width > limits.width or height > limits.height:
        raise RequestError(
            f"The clip is {info.display_size[0]}x{info.display_size[1]} pixels; this app restores clips up to "
            f"{limits.width}x{limits.height} (either orientation). Scale it down first."
        )


def clip_markdown(prepared: PreparedClip, result: Any) -> str:
    """The report under the clips: frames, faces and tracks, flicker, time per stage."""
    if result.no_face_found:
        # The note says why the clip could not be copied as it is (and so was re-encoded).
        how = result.note or "returned unchanged"
        return f"No face was found in any of the {result.frames} frames: the clip is {how}."
    lines = [f"**{result.frames} frames**, {result.faces} faces restored in {result.tracks} track(s)."]
    if prepared.faces_found > prepared.faces:
        lines.append(
            f"The first frame has {prepared.faces_found} faces: the {prepared.faces} largest are restored."
        )
    if result.flicker is not None and result.flicker.pairs:
        flicker = result.flicker
        lines.append(
            f"Flicker added inside the faces: {flicker.added:.2f} (mean |restored change - input change| between "
            f"frames, 0-255; the faces themselves change by {flicker.input:.2f})."
        )
    total = result.timings.get("total", 0.0)
    stages = ", ".join(f"{stage} {result.timings.get(stage, 0.0):.1f} s" for stage in video.STAGES)
    lines.append(f"{total:.1f} s in all ({result.frames / max(total, 1e-9):.2f} frames/s): {stages}.")
    return "\n\n".join(lines)
