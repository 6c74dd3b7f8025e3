"""The quality metrics beside the app's results: which metrics, on what, and their tables.

Every result is scored on its aligned 512x512 faces, as the paper's tables are (a whole photo's
figures are the mean over its faces):

- no-reference metrics (MUSIQ, NIQE) for every output and for the input itself (the baseline);
- when turbulence degraded a clean input, that clean face is the reference: PSNR, SSIM,
  LPIPS, DISTS and Deg. for every output and for the turbulent input (the baseline).

The no-reference defaults are the two cheapest on a CPU (``python -m benchmarks.bench_metrics``:
NIQE 0.14 s and MUSIQ 0.37 s a face on 2 Zen 3 cores, against CLIP-IQA 0.87 s and MANIQA 44 s);
CLIP-IQA, MANIQA, LMD and FID are left to ``osdface evaluate``. Deg. reuses the identity
table's ArcFace similarities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from osdface.quality.catalog import METRICS

if TYPE_CHECKING:
    from osdface.faces import RestoreResult
    from osdface.quality.meter import QualityMeter

APP_NO_REFERENCE = ("musiq", "niqe")
APP_FULL_REFERENCE = ("psnr", "ssim", "lpips", "dists")
APP_METRICS = APP_FULL_REFERENCE + APP_NO_REFERENCE
# The results, in the order the page shows them, with their labels.
OUTPUTS = {
    "input": "Input",
    "turbulent_input": "Turbulent input",
    "osdface": "OSDFace (VRE)",
    "without_vre": "Without VRE",
}


@dataclass
class QualityScores:
    """Per output (``OUTPUTS``' keys): each metric's mean over the faces. ``reference``: scored
    against the clean input face (turbulence on). ``unavailable``: metric -> why it is missing."""

    reference: bool
    faces: int
    outputs: dict[str, dict[str, float]]
    unavailable: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict:
        """For the API: plain numbers (None for a value that does not exist) and the directions."""
        names = sorted({metric for scores in self.outputs.values() for metric in scores})
        return {
            "reference": "the clean input face, before turbulence" if self.reference else None,
            "faces": self.faces,
            "scores": {
                output: {m: (None if math.isnan(v) else v) for m, v in scores.items()}
                for output, scores in self.outputs.items()
            },
            "higher_is_better": {m: METRICS[m].higher_is_better for m in names},
            "unavailable": dict(self.unavailable),
        }


def _angle(similarity: float) -> float:
    return math.degrees(math.acos(min(1.0, max(-1.0, similarity))))


def mean_over_faces(rows: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over the faces' score dicts (NaN ignored), in the catalog's order."""
    metrics = [m for m in METRICS if any(m in row for row in rows)]
    return {m: float(np.nanmean([row.get(m, math.nan) for row in rows])) for m in metrics}


def score_faces(
    meter: QualityMeter,
    crops: list,
    references: list[np.ndarray] | None,
    similarities: list[float] | None = None,
) -> dict[str, float]:
    """One output's faces (PIL RGB 512x512 crops), each against its clean face when
    ``references`` are given; ``similarities``: their ArcFace cosines to those faces (for Deg.)."""
    rows = []
    for index, crop in enumerate(crops):
        reference = None if references is None else references[index]
        row = meter.score(np.asarray(crop.convert("RGB")), reference)
        if references is not None and similarities is not None:
            row["deg"] = _angle(similarities[index])
        rows.append(row)
    return mean_over_faces(rows)


def score_results(
    meter: QualityMeter,
    references: list[np.ndarray] | None,
    restored: RestoreResult,
    without_vre: RestoreResult | None,
    identity: list | None,
) -> QualityScores:
    """Score each face of each output. ``references``: the clean input's aligned faces, one
    per restored face ((512, 512, 3) RGB uint8), or None without turbulence; ``identity``: the
    faces' ``osdface.app.results.IdentityRow``s (for Deg.), or None."""
    turbulent = references is not None
    per_face: dict[str, list[dict[str, float]]] = {}
    for index, face in enumerate(restored.faces):
        reference = references[index] if turbulent else None
        crops = {
            ("turbulent_input" if turbulent else "input"): face.input_crop,
            "osdface": face.restored_crop,
        }
        if without_vre is not None:
            crops["without_vre"] = without_vre.faces[index].restored_crop
        for output, crop in crops.items():
            scores = meter.score(np.asarray(crop.convert("RGB")), reference)
            if turbulent and identity is not None:
                row = identity[index]
                similarity = {
                    "turbulent_input": row.turbulent_input,
                    "osdface": row.restored,
                    "without_vre": row.without_vre,
                }[output]
                scores["deg"] = _angle(similarity)
            per_face.setdefault(output, []).append(scores)
    outputs = {output: mean_over_faces(per_face[output]) for output in OUTPUTS if output in per_face}
    unavailable = dict(meter.unavailable)
    if turbulent and identity is None:
        unavailable["deg"] = "Deg. needs ArcFace, whose weights could not be loaded (see the identity note)"
    return QualityScores(turbulent, len(restored.faces), outputs, unavailable)


def format_value(metric: str, value: float) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.2f}" if metric in ("psnr", "musiq", "niqe", "deg") else f"{value:.3f}"


def scores_markdown(scores: QualityScores | None, output: str) -> str:
    """The small table under one result: one row per metric, its direction, the value, and
    whether it is the best of the results shown."""
    if scores is None or output not in scores.outputs:
        return ""
    values = scores.outputs[output]
    lines = ["| Metric | Value |", "|---|---:|"]
    for metric, value in values.items():
        spec = METRICS[metric]
        others = [s[metric] for s in scores.outputs.values() if metric in s and not math.isnan(s[metric])]
        text = format_value(metric, value)
        # No bold when fewer than two results have a value (NaN for all: no best at all).
        best = (max(others) if spec.higher_is_better else min(others)) if len(others) > 1 else None
        if value == best:
            text = f"**{text}**"
        lines.append(f"| {spec.header} | {text} |")
    where = "vs the clean face" if scores.reference and output != "input" else "no reference"
    faces = f", mean of {scores.faces} faces" if scores.faces > 1 else ""
    lines.append(f"\n<small>{where}{faces}; bold: best shown</small>")
    if output == "osdface" and scores.unavailable:
        lines.append(f"\n<small>{unavailable_note(scores)}</small>")
    return "\n".join(lines)


def unavailable_note(scores: QualityScores | None) -> str:
    """One line naming the metrics that could not run and why (empty when all ran)."""
    if scores is None or not scores.unavailable:
        return ""
    parts = [
        f"{METRICS[m].label if m in METRICS else m}: {reason.splitlines()[0]}"
        for m, reason in scores.unavailable.items()
    ]
    return "Not computed: " + "; ".join(parts)
