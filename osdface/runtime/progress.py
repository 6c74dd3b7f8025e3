"""Progress of a restoration by stage and face, with an estimate of the time left.

The pipeline's modules get forward hooks once (``attach``); each hook tells the listener of
the *current* request (a context variable, so concurrent requests in other threads never see
each other's progress) which stage starts and on how many faces. Nothing is reported when no
listener is set, so the hooks cost nothing outside a tracked call.

Stages, in order: turbulence and face detection (once per photo), then per face batch: tokens
(the VRE's visual tokens, or the text encoder's for the ablation), VAE encode, the UNet step
and VAE decode, then pasting the faces back (whole photos). On CUDA the hooks fire when work is
queued, not when it ends, so the stage times used for the estimate are rough there (a face
takes well under a second on a GPU anyway).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from osdface.choices import PIPELINE_STAGES, TEXT_STAGE

STAGE_LABELS = {
    "read": "Reading the image",
    "turbulence": "Simulating turbulence",
    "detect": "Detecting faces",
    "vre": "visual tokens (VRE)",
    TEXT_STAGE: "text tokens",
    "vae_encode": "VAE encode",
    "unet": "UNet step",
    "vae_decode": "VAE decode",
    "paste": "Pasting the faces back",
    "finish": "Finishing (identity scores)",
    "metrics": "Scoring the results (quality metrics)",
    "write": "Writing the PNGs",
}
# Until a stage has been measured in this process: its share of the benchmark's seconds per
# face (roughly what the full model spends on a CPU), scaled by what was measured so far.
PRIOR_SHARES = {"vre": 0.10, "vae_encode": 0.30, "unet": 0.25, "vae_decode": 0.30, "paste": 0.05}
PASS_LABELS = {"vre": "with VRE", "text": "without VRE"}
# The ablation's text tokens take the place of the VRE's: one stage for the estimates.
_SLOT = {TEXT_STAGE: "vre"}


class Listener:
    """Receives the pipeline's stages (the base class ignores them)."""

    def pipeline_stage(self, stage: str, batch: int, kind: str | None) -> None:
        """``stage`` (PIPELINE_STAGES, or TEXT_STAGE for the first) starts on ``batch`` faces;
        ``kind``: the pass ("vre" or "text") for the token stages, else None."""

    def batch_done(self, batch: int) -> None:
        """``batch`` faces were decoded."""


_CURRENT: ContextVar[Listener | None] = ContextVar("osdface_progress", default=None)
_HOOKED: weakref.WeakSet = weakref.WeakSet()
_HOOK_LOCK = threading.Lock()


@contextmanager
def tracking(listener: Listener) -> Iterator[Listener]:
    """Send the stages of the pipeline calls made inside (in this thread) to ``listener``."""
    token = _CURRENT.set(listener)
    try:
        yield listener
    finally:
        _CURRENT.reset(token)


def step(stage: str) -> None:
    """A stage outside the pipeline starts (turbulence, detect, paste, write...)."""
    listener = _CURRENT.get()
    if isinstance(listener, RunProgress):
        listener.step(stage)


def attach(pipeline: Any) -> None:
    """Hook the pipeline's modules (once per module; a text encoder loaded later is hooked
    by calling this again)."""
    vae = getattr(pipeline, "vae", None)
    targets = [
        ("vre", "vre", getattr(pipeline, "embedder", None)),
        (TEXT_STAGE, "text", getattr(pipeline, "text_encoder", None)),
        ("vae_encode", None, getattr(vae, "encoder", None)),
        ("unet", None, getattr(pipeline, "unet", None)),
        ("vae_decode", None, getattr(vae, "decoder", None)),
    ]
    with _HOOK_LOCK:
        for stage, kind, module in targets:
            if module is None or module in _HOOKED:
                continue
            module.register_forward_pre_hook(_pre_hook(stage, kind), with_kwargs=True)
            if stage == "vae_decode":
                module.register_forward_hook(_after_decode, with_kwargs=True)
            _HOOKED.add(module)


def _batch_size(args: tuple, kwargs: dict) -> int:
    for value in (*args, *kwargs.values()):
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) > 0:
            return int(shape[0])
    return 1


def _pre_hook(stage: str, kind: str | None) -> Callable:
    def hook(module, args, kwargs):
        listener = _CURRENT.get()
        if listener is not None:
            listener.pipeline_stage(stage, _batch_size(args, kwargs), kind)

    return hook


def _after_decode(module, args, kwargs, output):
    listener = _CURRENT.get()
    if listener is not None:
        listener.batch_done(_batch_size(args, kwargs))


class FaceCounter(Listener):
    """Calls ``on_faces(n)`` after each decoded batch of ``n`` faces (the CLI's bar)."""

    def __init__(self, on_faces: Callable[[int], None]):
        self.on_faces = on_faces

    def batch_done(self, batch: int) -> None:
        self.on_faces(batch)


class StageTimes:
    """Seconds per face of each pipeline stage (and of pasting), the latest measured in this
    process. Shared by requests (behind a lock); used only for estimates."""

    def __init__(self, seconds_per_face: float):
        self._prior = {stage: share * seconds_per_face for stage, share in PRIOR_SHARES.items()}
        self._measured: dict[str, float] = {}
        self._lock = threading.Lock()

    def record(self, stage: str, seconds_per_face: float) -> None:
        with self._lock:
            self._measured[stage] = max(0.0, seconds_per_face)

    def estimates(self) -> dict[str, float]:
        """Measured seconds per face where known; the others from the prior, scaled by how
        the measured stages compare with theirs (a faster machine or a smaller model)."""
        with self._lock:
            measured = dict(self._measured)
        known = [stage for stage in measured if stage in self._prior]
        prior_known = sum(self._prior[stage] for stage in known)
        scale = sum(measured[stage] for stage in known) / prior_known if prior_known > 0 else 1.0
        return {stage: measured.get(stage, prior * scale) for stage, prior in self._prior.items()}


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    return f"about {seconds / 60:.0f} min"


class RunProgress(Listener):
    """One request's progress: reports ``(fraction or None, description)`` to ``report``.

    ``plan(faces, passes, paste)`` once the number of faces is known; before that only the
    stage is shown."""

    def __init__(self, report: Callable[[float | None, str], None], times: StageTimes):
        self.report = report
        self.times = times
        self.faces = 0
        self.passes = 1
        self.paste = False
        self.planned_at: float | None = None
        self.done: dict[str, int] = {}
        self.kind = "vre"
        self.batch = 0
        self.stage: str | None = None
        self.stage_started = time.perf_counter()
        self.pasting = False

    def plan(self, faces: int, passes: int, *, paste: bool) -> None:
        self.faces, self.passes, self.paste = int(faces), int(passes), bool(paste)
        self.planned_at = time.perf_counter()

    # ---------------------------------------------------------------- events

    def step(self, stage: str) -> None:
        self._close_stage()
        self.stage, self.stage_started, self.batch = stage, time.perf_counter(), 0
        self.pasting = self.pasting or stage == "paste"
        self._report(STAGE_LABELS.get(stage, stage))

    def pipeline_stage(self, stage: str, batch: int, kind: str | None) -> None:
        self._close_stage()
        if kind is not None:
            self.kind = kind
        self.stage, self.stage_started, self.batch = _SLOT.get(stage, stage), time.perf_counter(), batch
        first = self.done.get(self.kind, 0) + 1
        last = first + batch - 1
        total = max(self.faces, last)
        faces = f"Face {first} of {total}" if batch == 1 else f"Faces {first}-{last} of {total}"
        self._report(f"{faces} ({PASS_LABELS.get(self.kind, self.kind)}): {STAGE_LABELS[stage]}")

    def batch_done(self, batch: int) -> None:
        self._close_stage()
        self.done[self.kind] = self.done.get(self.kind, 0) + batch
        # No hook marks what follows a pass's last batch: whole photos paste their faces back.
        if self.faces and self.done[self.kind] >= self.faces:
            if self.paste:
                self.step("paste")
            elif sum(self.done.values()) >= self.faces * self.passes:
                self.step("finish")

    # ---------------------------------------------------------------- internals

    def _close_stage(self) -> None:
        """Record the stage that just ended, per face."""
        if self.stage in PIPELINE_STAGES and self.batch:
            self.times.record(self.stage, (time.perf_counter() - self.stage_started) / self.batch)
        elif self.stage == "paste" and self.faces:
            self.times.record("paste", (time.perf_counter() - self.stage_started) / self.faces)
        self.stage = None

    def remaining_seconds(self) -> float | None:
        """Estimated seconds left, or None before the plan."""
        if self.planned_at is None:
            return None
        estimate = self.times.estimates()
        per_face = sum(estimate[stage] for stage in PIPELINE_STAGES)
        left = 0.0
        if self.stage in PIPELINE_STAGES and self.batch:
            index = PIPELINE_STAGES.index(self.stage)
            current = estimate[self.stage] * self.batch - (time.perf_counter() - self.stage_started)
            left += max(0.0, current)
            left += sum(estimate[stage] for stage in PIPELINE_STAGES[index + 1 :]) * self.batch
            in_flight = self.batch
        else:
            in_flight = 0
        finished = sum(self.done.values())
        left += max(0, self.faces * self.passes - finished - in_flight) * per_face
        if self.paste and not self.pasting:
            left += estimate["paste"] * self.faces
        elif self.stage == "paste":
            left += max(0.0, estimate["paste"] * self.faces - (time.perf_counter() - self.stage_started))
        return left

    def _report(self, description: str) -> None:
        left = self.remaining_seconds()
        if left is None:
            self.report(None, description)
            return
        elapsed = time.perf_counter() - self.planned_at
        fraction = elapsed / (elapsed + left) if elapsed + left > 0 else 1.0
        self.report(min(fraction, 0.99), f"{description} · {format_seconds(left)} left")
