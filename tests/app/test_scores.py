"""The metrics table under each result (``osdface.app.scores.scores_markdown``)."""

from __future__ import annotations

import math

from osdface.app.scores import QualityScores, scores_markdown


def test_a_metric_without_a_value_for_any_result_shows_a_dash_and_no_best():
    # NIQE can be NaN (a flat face); when it is NaN for every result there is no best, and the
    # table used to fail (min() of nothing) after the restoration had run.
    scores = QualityScores(
        reference=False,
        faces=1,
        outputs={"input": {"niqe": math.nan, "musiq": 50.0}, "osdface": {"niqe": math.nan, "musiq": 60.0}},
    )
    assert "| NIQE↓ | - |" in scores_markdown(scores, "input")
    assert "| MUSIQ↑ | 50.00 |" in scores_markdown(scores, "input")
    table = scores_markdown(scores, "osdface")
    assert "| NIQE↓ | - |" in table and "| MUSIQ↑ | **60.00** |" in table


def test_a_single_result_is_never_bold():
    scores = QualityScores(reference=False, faces=1, outputs={"osdface": {"musiq": 60.0, "niqe": 4.0}})
    table = scores_markdown(scores, "osdface")
    assert "| MUSIQ↑ | 60.00 |" in table and "| NIQE↓ | 4.00 |" in table and "**" not in table
