"""The study's results and the files the main process writes: ``metrics.json`` (settings,
left-out images, per-condition metrics), ``scores.csv`` (every pair's similarity per
condition) and the figures (``osdface.evaluation.plots``); ``summary_table`` for the terminal."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from osdface.evaluation.conditions import Condition, EvalFRConfig
from osdface.evaluation.metrics import FRMetrics, compute_curves
from osdface.evaluation.pairs import Pair
from osdface.evaluation.plots import Series, save_figures
from osdface.files import write_bytes_atomic

METRICS_FILE = "metrics.json"
SCORES_FILE = "scores.csv"
DEFINITIONS = {
    "score": "cosine similarity of the ArcFace embeddings of a pair's two faces",
    "best_threshold": "score threshold maximising accuracy over the evaluated pairs "
    "(pairs with score >= threshold are predicted same-person)",
    "f1": "F1 at best_threshold",
    "tpr_at_far_1e_3": "highest true-accept rate with a false-accept rate <= 1e-3",
    "mean_sample_distance": "mean score of pairs predicted same minus that of pairs predicted different",
}


@dataclass(frozen=True)
class ConditionResult:
    condition: Condition
    scores: np.ndarray  # one cosine similarity per evaluated pair
    metrics: FRMetrics


@dataclass(frozen=True)
class EvalFRResult:
    """What the main process wrote. ``pairs``: the evaluated pairs (in file order);
    ``skipped``: (image key, reason) of images left out; ``files``: name -> path."""

    pairs: list[Pair]
    skipped: list[tuple[str, str]]
    conditions: list[ConditionResult]
    files: dict[str, Path] = field(default_factory=dict)


def write_report(config: EvalFRConfig, result: EvalFRResult, *, arcface: str, num_pairs: int) -> None:
    """``metrics.json``, ``scores.csv`` and the figures; fills ``result.files``."""
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = out / METRICS_FILE
    report = _report(config, result, arcface=arcface, num_pairs=num_pairs)
    # every file whole or not at all: a failed rerun keeps the last complete report
    write_bytes_atomic(metrics_path, (json.dumps(report, indent=2, allow_nan=False) + "\n").encode())
    scores_path = out / SCORES_FILE
    _write_scores(result, scores_path)
    figures = _save_figures(config, result)
    result.files.update({METRICS_FILE: metrics_path, SCORES_FILE: scores_path})
    result.files.update({path.name: path for path in figures})


def _report(config: EvalFRConfig, result: EvalFRResult, *, arcface: str, num_pairs: int) -> dict[str, Any]:
    return {
        "format": "osdface-eval-fr/1",
        "config": config.to_json_dict(),
        "arcface_fingerprint": arcface,
        "num_pairs": num_pairs,
        "num_pairs_evaluated": len(result.pairs),
        "skipped_images": [{"image": key, "reason": reason} for key, reason in result.skipped],
        "definitions": DEFINITIONS,
        "conditions": [
            {
                "name": r.condition.name,
                "label": r.condition.label,
                "method": r.condition.method,
                "propagation_length": r.condition.length,
                "metrics": r.metrics.to_json_dict(),
            }
            for r in result.conditions
        ],
    }


def _write_scores(result: EvalFRResult, path: Path) -> None:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["path_a", "path_b", "same", *(r.condition.name for r in result.conditions)])
    for i, pair in enumerate(result.pairs):
        writer.writerow(
            [pair.a, pair.b, int(pair.same), *(repr(float(r.scores[i])) for r in result.conditions)]
        )
    write_bytes_atomic(path, text.getvalue().encode())


def _save_figures(config: EvalFRConfig, result: EvalFRResult) -> list[Path]:
    labels = np.array([p.same for p in result.pairs], dtype=np.int64)
    series = [
        Series(
            label=r.condition.label,
            curves=compute_curves(r.scores, labels),
            metrics=r.metrics,
            group=r.condition.length,
            variant=r.condition.method,
        )
        for r in result.conditions
    ]
    degraded = "both faces" if config.degrade == "both" else "the second face"
    title = (
        f"ArcFace verification, {len(result.pairs)} pairs of {config.pairs_file.name} "
        f"(turbulence on {degraded} of each pair)"
    )
    return save_figures(series, config.output_dir, title)


def summary_table(result: EvalFRResult) -> str:
    """A fixed-width text table of the main metrics, one row per condition."""
    header = f"{'condition':<24} {'AUC':>6} {'acc':>6} {'F1':>6} {'TPR@1e-3':>9} {'TPR@1e-2':>9} {'MSD':>7}"
    rows = [header]
    for r in result.conditions:
        m = r.metrics
        msd = "n/a" if not np.isfinite(m.mean_sample_distance) else f"{m.mean_sample_distance:.3f}"
        rows.append(
            f"{r.condition.name:<24} {m.roc_auc:6.3f} {m.accuracy:6.3f} {m.f1:6.3f} "
            f"{m.tpr_at_far_1e_3:9.3f} {m.tpr_at_far_1e_2:9.3f} {msd:>7}"
        )
    return "\n".join(rows)
