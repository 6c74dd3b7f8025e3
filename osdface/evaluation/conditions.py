"""What the face-recognition study evaluates: its settings (``EvalFRConfig``), the conditions
(``clean``, or a method at a propagation length), which image needs which condition, and the
per-image seeds. No model code: the command line imports this module to build its parser."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from osdface.choices import ColorFix
from osdface.evaluation.pairs import Pair, unique_images
from osdface.restorers.specs import RESTORERS
from osdface.runtime.devices import DTYPE_NAMES

DEFAULT_LENGTHS = (20000.0, 25000.0, 30000.0, 35000.0, 40000.0)
# Methods applied to the turbulent faces, in plotting order.
DEGRADED_METHODS = (
    "turbulent",
    "osdface",
    "no_vre",
    *RESTORERS,
)  # restorers: osdface.restorers.loading (spandrel)
METHOD_LABELS = {
    "clean": "clean",
    "turbulent": "turbulent",
    "osdface": "OSDFace",
    "no_vre": "OSDFace w/o VRE",
    **{key: spec.label for key, spec in RESTORERS.items()},
}
# The pipeline's prompt per restoring method: None conditions on the VRE (the method), ""
# on SD 2.1's null text prompt (the paper's "without VRE" ablation).
RESTORE_PROMPTS: dict[str, str | None] = {"osdface": None, "no_vre": ""}
DEGRADE_MODES = ("one", "both")


@dataclass(frozen=True)
class EvalFRConfig:
    """Settings of one study (see ``osdface.evaluation.run``).

    faces_dir: root the pair keys are relative to (LFW: the folder holding one folder per name).
    pairs_file: LFW ``pairs.txt`` format, or ``.csv`` with ``path_a,path_b,same``.
    output_dir: where ``metrics.json``, ``scores.csv``, the figures, ``cache/`` and
        (``save_images``) ``images/<condition>/`` go.
    lengths: turbulence propagation lengths in metres.
    methods: subset of ``DEGRADED_METHODS`` evaluated at each length.
    degrade: "both" sides of each pair, or only the second ("one").
    aligned: images are already aligned faces (square, FFHQ layout); no detection.
    extension: image extension of LFW keys (``jpg``; use ``png`` for a re-encoded copy).
    seed: base of every per-image seed (turbulence and VAE sample).
    max_pairs: use only the first N pairs (LFW's first 600 are its first fold).
    weights, base_model, revision, base_revision: the OSDFace pipeline's sources (see
        ``osdface.weights.hub``); dtype: a name of ``osdface.runtime.devices.DTYPE_NAMES`` (default: float16
        on CUDA, else float32); color_fix: a ``ColorFix`` name ("none" is stored as None).
    device: torch device; default the launcher's (one GPU per process), else CUDA when
        available, else CPU.
    facexlib_dir: a folder holding facexlib's weight files (RetinaFace, ArcFace).
    codeformer_w: CodeFormer's fidelity weight (method ``codeformer``).
    """

    faces_dir: Path
    pairs_file: Path
    output_dir: Path
    lengths: tuple[float, ...] = DEFAULT_LENGTHS
    methods: tuple[str, ...] = ("osdface",)
    degrade: str = "both"
    aligned: bool = False
    extension: str = "jpg"
    seed: int = 0
    max_pairs: int | None = None
    save_images: bool = False
    weights: str | None = None
    base_model: str | None = None
    revision: str | None = None
    base_revision: str | None = None
    dtype: str | None = None
    color_fix: str | None = None
    device: str | None = None
    facexlib_dir: Path | None = None
    progress: bool = True
    codeformer_w: float = 0.5

    def __post_init__(self) -> None:
        self._check_lengths()
        if not self.methods:
            raise ValueError(f"methods: give at least one of {DEGRADED_METHODS}")
        unknown = [m for m in self.methods if m not in DEGRADED_METHODS]
        if unknown:
            raise ValueError(f"methods: unknown {unknown}; expected some of {DEGRADED_METHODS}")
        if self.degrade not in DEGRADE_MODES:
            raise ValueError(f"degrade must be one of {DEGRADE_MODES}, got {self.degrade!r}")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ValueError(f"max_pairs must be at least 1, got {self.max_pairs}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.dtype not in (None, *DTYPE_NAMES):
            raise ValueError(f"dtype must be one of {', '.join(DTYPE_NAMES)}, got {self.dtype!r}")
        # None for no fix, as before: the name is part of metrics.json and of the cache's hash
        object.__setattr__(self, "color_fix", ColorFix.argument(self.color_fix))
        if not 0.0 <= self.codeformer_w <= 1.0:
            raise ValueError(f"codeformer_w must be in [0, 1], got {self.codeformer_w!r}")
        if self.extension.startswith(".") or not self.extension:
            raise ValueError(f"extension: give it without the dot, e.g. 'jpg', got {self.extension!r}")

    def _check_lengths(self) -> None:
        if not self.lengths:
            raise ValueError("lengths: give at least one propagation length")
        check_lengths(self.lengths)

    def to_json_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
        out["lengths"] = [float(length) for length in self.lengths]
        out["methods"] = list(self.methods)
        del out["progress"]
        return out


@dataclass(frozen=True)
class Condition:
    """What was done to the faces: ``clean``, or ``method`` at propagation ``length`` metres."""

    method: str
    length: float | None = None

    @property
    def name(self) -> str:
        """File-name-safe id, e.g. ``clean``, ``osdface_20000``."""
        return self.method if self.length is None else f"{self.method}_{format_length(self.length)}"

    @property
    def label(self) -> str:
        """Legend text, e.g. ``OSDFace, 20 km``."""
        text = METHOD_LABELS[self.method]
        return text if self.length is None else f"{text}, {self.length / 1000:g} km"


CLEAN = Condition("clean")


def check_lengths(lengths: Sequence[float]) -> None:
    """``ValueError`` unless every propagation length is positive, finite and given once
    (``eval-fr`` and ``evaluate`` alike)."""
    for length in lengths:
        if not (float(length) > 0 and np.isfinite(float(length))):
            raise ValueError(f"lengths: propagation lengths must be positive metres, got {length!r}")
    if len(set(map(float, lengths))) != len(lengths):
        raise ValueError(f"lengths: each length once, got {list(lengths)}")


def format_length(length: float) -> str:
    """A length in a condition's name, exact (``30000``, ``30000.14``): two lengths never share one."""
    return str(int(length)) if float(length).is_integer() else repr(float(length))


def conditions_of(config: EvalFRConfig) -> list[Condition]:
    """``clean`` first, then for each length the chosen methods in ``DEGRADED_METHODS`` order."""
    conditions = [CLEAN]
    for length in config.lengths:
        conditions += [Condition(m, float(length)) for m in DEGRADED_METHODS if m in config.methods]
    return conditions


def required_conditions(
    pairs: Sequence[Pair], conditions: Sequence[Condition], degrade: str
) -> dict[str, list[Condition]]:
    """Image key -> the conditions it needs an embedding for, in first-appearance order."""
    degraded = (
        {key for pair in pairs for key in (pair.a, pair.b)} if degrade == "both" else {p.b for p in pairs}
    )
    return {
        key: [c for c in conditions if c.method == "clean" or key in degraded]
        for key in unique_images(list(pairs))
    }


def by_length(conditions: Sequence[Condition]) -> list[tuple[float | None, list[Condition]]]:
    """The conditions grouped by length (the methods of one length share its turbulent face)."""
    groups: dict[float | None, list[Condition]] = {}
    for condition in conditions:
        groups.setdefault(condition.length, []).append(condition)
    return list(groups.items())


def item_seed(seed: int, key: str, length: float, purpose: str) -> int:
    """A 32-bit seed fixed by the base seed, the image key, the length and what it seeds,
    so that every image gets the same noise however the work is split or resumed."""
    words = [seed, zlib.crc32(key.encode()), int(round(length * 1000)), zlib.crc32(purpose.encode())]
    return int(np.random.SeedSequence(words).generate_state(1)[0])
