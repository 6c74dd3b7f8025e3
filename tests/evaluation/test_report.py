"""eval-fr's report files (``osdface.evaluation.report``, ``plots``): each written whole or not at
all, so a rerun that fails while writing keeps the last complete report."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from osdface.evaluation.conditions import Condition, EvalFRConfig
from osdface.evaluation.metrics import compute_metrics
from osdface.evaluation.pairs import Pair
from osdface.evaluation.report import ConditionResult, EvalFRResult, write_report

PAIRS = [Pair("a1", "a2", True), Pair("b1", "b2", True), Pair("a1", "b2", False), Pair("b1", "a2", False)]


def _result(scores: np.ndarray) -> EvalFRResult:
    labels = np.array([p.same for p in PAIRS], dtype=np.int64)
    metrics = compute_metrics(np.resize(scores, len(PAIRS)), labels)
    return EvalFRResult(PAIRS, [], [ConditionResult(Condition("clean", None), scores, metrics)])


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_failed_rewrite_keeps_the_last_complete_scores_and_figures(tmp_path, monkeypatch):
    config = EvalFRConfig(faces_dir=tmp_path, pairs_file=tmp_path / "pairs.txt", output_dir=tmp_path / "out")
    write_report(config, _result(np.array([0.9, 0.8, 0.1, 0.2])), arcface="x", num_pairs=4)
    before = _files(config.output_dir)
    assert {"metrics.json", "scores.csv", "fr_curves.png", "fr_histograms.png"} <= set(before)

    # scores of 2 pairs for 4: the CSV fails at its third row
    with pytest.raises(IndexError):
        write_report(config, _result(np.array([0.7, 0.6])), arcface="x", num_pairs=4)
    after = _files(config.output_dir)
    assert after["scores.csv"] == before["scores.csv"] and set(after) == set(before)

    def failing_savefig(self, path, **options):
        with open(path, "wb") as handle:
            handle.write(b"half a PNG")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    with pytest.raises(OSError, match="disk full"):
        write_report(config, _result(np.array([0.6, 0.5, 0.4, 0.3])), arcface="x", num_pairs=4)
    after = _files(config.output_dir)
    assert after["fr_curves.png"] == before["fr_curves.png"] and set(after) == set(before)  # no partial files
