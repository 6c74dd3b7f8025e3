"""What the three request steps hand on: step 1's ``PreparedRestore``, step 2's ``GpuResult``
(with its ``IdentityRow``s) and step 3's ``RestoreOutcome``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from osdface.app.requests import MODE_ALIGNED, RestoreRequest

if TYPE_CHECKING:
    from osdface.app.scores import QualityScores
    from osdface.faces import DetectedFace, RestoreResult


@dataclass
class PreparedRestore:
    """Step 1's result; everything step 2 needs (it crosses a process boundary on ZeroGPU, so
    it holds only picklable data). Images are (H, W, 3) RGB uint8."""

    request: RestoreRequest
    clean: np.ndarray
    photo: np.ndarray
    faces: list[DetectedFace]
    faces_found: int
    timings: dict[str, float]
    started: float

    @property
    def face_count(self) -> int:
        return 1 if self.request.mode == MODE_ALIGNED else len(self.faces)


@dataclass(frozen=True)
class IdentityRow:
    """ArcFace cosine similarities of one face to the clean input face (None: not computed)."""

    face: int
    turbulent_input: float | None
    restored: float
    without_vre: float | None


@dataclass
class GpuResult:
    """Step 2's result. ``identity`` is None when the ArcFace model is missing, and
    ``identity_note`` then says why. ``quality``: the metrics (``osdface.app.scores``)."""

    restored: RestoreResult
    without_vre: RestoreResult | None
    identity: list[IdentityRow] | None
    identity_note: str | None
    device_name: str
    peak_memory_bytes: int | None
    timings: dict[str, float]
    quality: QualityScores | None = None  # None: metrics off


@dataclass
class RestoreOutcome:
    """What the app shows: PNG paths inside the request's folder, and two Markdown tables.

    ``slider``: (before, after) for the before/after slider. ``gallery``: (path, caption) per
    face crop, for whole photos (empty for an aligned face)."""

    input: Path
    turbulent_input: Path | None
    restored: Path
    without_vre: Path | None
    slider: tuple[Path, Path]
    gallery: list[tuple[Path, str]]
    timing_markdown: str
    identity_markdown: str
    face_count: int
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    # The quality metrics: a small Markdown table per output (``osdface.app.scores.OUTPUTS``'
    # keys; empty when not scored) and the same numbers for the API (None: metrics off).
    scores_markdown: dict[str, str] = field(default_factory=dict)
    scores_json: dict | None = None
