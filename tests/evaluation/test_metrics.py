"""Verification metrics against scikit-learn, brute force and hand-computed values; pair files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score, roc_curve

from osdface.evaluation.metrics import (
    best_threshold,
    compute_curves,
    compute_metrics,
    mean_sample_distance,
    tpr_at_far,
)
from osdface.evaluation.pairs import parse_csv_pairs, parse_lfw_pairs, read_pairs, resolve, unique_images

# Hand-worked example. Thresholds and accuracy (predict same when score >= t):
#   t=0.9: 4/6   t=0.8: 5/6   t=0.7: 4/6   t=0.6: 5/6   t=0.5: 4/6   t=0.4: 3/6
# best accuracy 5/6, tied at 0.8 and 0.6 -> the higher, 0.8. At 0.8: TP 2, FP 0, FN 1 ->
# F1 = 4 / 5. Predicted same {0.9, 0.8} mean 0.85, predicted different {0.7, 0.6, 0.5, 0.4}
# mean 0.55 -> mean sample distance 0.30. AUC: 8 of 9 (same, different) pairs ordered right.
HAND_SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
HAND_LABELS = np.array([1, 1, 0, 1, 0, 0])


def test_hand_computed_example():
    m = compute_metrics(HAND_SCORES, HAND_LABELS)
    assert (m.num_pairs, m.num_positive, m.num_negative) == (6, 3, 3)
    assert m.best_threshold == pytest.approx(0.8)
    assert m.accuracy == pytest.approx(5 / 6)
    assert m.f1 == pytest.approx(0.8)
    assert m.mean_sample_distance == pytest.approx(0.30)
    assert m.roc_auc == pytest.approx(8 / 9)
    # 3 negatives: a FAR of 1e-2 or 1e-3 allows no false accept -> threshold 0.8 -> TPR 2/3
    assert m.tpr_at_far_1e_3 == pytest.approx(2 / 3)
    assert m.tpr_at_far_1e_2 == pytest.approx(2 / 3)
    assert m.mean_positive_similarity == pytest.approx((0.9 + 0.8 + 0.6) / 3)
    assert m.mean_negative_similarity == pytest.approx((0.7 + 0.5 + 0.4) / 3)


def test_mean_sample_distance_by_hand():
    scores = np.array([0.2, 0.9, 0.5, 0.7, 0.1])
    labels = np.array([0, 1, 1, 0, 0])
    # at 0.5: predicted same {0.9, 0.5, 0.7} (mean 0.7), different {0.2, 0.1} (mean 0.15)
    assert mean_sample_distance(scores, labels, 0.5) == pytest.approx(0.55)
    # at 0.8: {0.9} vs {0.2, 0.5, 0.7, 0.1} (mean 0.375)
    assert mean_sample_distance(scores, labels, 0.8) == pytest.approx(0.525)
    # one side empty: undefined
    assert math.isnan(mean_sample_distance(scores, labels, 0.05))
    assert math.isnan(mean_sample_distance(scores, labels, 0.95))


def _brute_force(scores, labels):
    """Best accuracy over every candidate threshold, the highest on ties (as documented)."""
    best = (-1.0, None)
    for t in sorted(set(scores.tolist()), reverse=True):
        acc = accuracy_score(labels, scores >= t)
        if acc > best[0]:
            best = (acc, t)
    return best


@pytest.mark.parametrize("quantised", [False, True])
def test_against_scikit_learn_and_brute_force(quantised):
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(150), np.zeros(250)].astype(int)
    scores = np.r_[rng.normal(0.45, 0.2, 150), rng.normal(0.1, 0.15, 250)]
    if quantised:  # many tied scores
        scores = np.round(scores, 1)
    m = compute_metrics(scores, labels)

    accuracy, threshold = _brute_force(scores, labels)
    assert m.best_threshold == pytest.approx(threshold)
    assert m.accuracy == pytest.approx(accuracy)
    assert m.f1 == pytest.approx(f1_score(labels, scores >= m.best_threshold))
    assert m.roc_auc == pytest.approx(roc_auc_score(labels, scores))
    assert m.average_precision == pytest.approx(average_precision_score(labels, scores))
    assert best_threshold(scores, labels) == pytest.approx((threshold, accuracy))

    fpr, tpr, _ = roc_curve(labels, scores)
    for far, value in ((1e-3, m.tpr_at_far_1e_3), (1e-2, m.tpr_at_far_1e_2)):
        # brute force: the best recall among thresholds with at most far * 250 false accepts
        expected = max(
            [
                ((scores >= t) & (labels == 1)).sum() / 150
                for t in scores
                if ((scores >= t) & (labels == 0)).sum() <= far * 250
            ]
            + [0.0]
        )
        assert value == pytest.approx(expected)
        assert value == pytest.approx(tpr[fpr <= far].max())
        assert value == pytest.approx(tpr_at_far(scores, labels, far))

    predicted = scores >= m.best_threshold
    assert m.mean_sample_distance == pytest.approx(scores[predicted].mean() - scores[~predicted].mean())
    assert m.mean_sample_distance > 0


def test_separable_scores_are_perfect():
    scores = np.array([0.9, 0.8, 0.75, 0.3, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0])
    m = compute_metrics(scores, labels)
    assert (m.roc_auc, m.accuracy, m.f1, m.tpr_at_far_1e_3) == (1.0, 1.0, 1.0, 1.0)
    assert m.best_threshold == pytest.approx(0.75)
    assert m.mean_sample_distance == pytest.approx(0.8166666 - 0.2, abs=1e-6)


def test_json_dict_maps_nan_to_none():
    m = compute_metrics(np.array([0.5, 0.5, 0.5, 0.5]), np.array([1, 0, 1, 0]))
    assert math.isnan(m.mean_sample_distance)  # everything predicted same
    assert m.to_json_dict()["mean_sample_distance"] is None
    assert m.to_json_dict()["accuracy"] == 0.5


def test_curves_match_scikit_learn():
    c = compute_curves(HAND_SCORES, HAND_LABELS)
    fpr, tpr, thresholds = roc_curve(HAND_LABELS, HAND_SCORES, drop_intermediate=False)
    np.testing.assert_allclose(c.fpr, fpr)
    np.testing.assert_allclose(c.tpr, tpr)
    np.testing.assert_allclose(c.thresholds, HAND_SCORES)
    np.testing.assert_allclose(c.f1, [f1_score(HAND_LABELS, HAND_SCORES >= t) for t in HAND_SCORES])
    np.testing.assert_allclose(np.sort(c.positive_scores), [0.6, 0.8, 0.9])
    np.testing.assert_allclose(np.sort(c.negative_scores), [0.4, 0.5, 0.7])


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([0.1, 0.2], [1, 1], "both"),
        ([0.1, float("nan")], [1, 0], "finite"),
        ([0.1, 0.2], [1, 2], "0/1"),
        ([0.1, 0.2, 0.3], [1, 0], "equal length"),
    ],
)
def test_bad_inputs_raise(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        compute_metrics(scores, labels)


# --------------------------------------------------------------------------- pair files


def test_lfw_pairs_format(tmp_path):
    text = "1\t2\nAbel_Pacheco\t1\t4\nAkhmed_Zakayev\t1\t3\nAbdel_Madi_Shabneh\t1\tDean_Barker\t1\nAbdel_Madi_Shabneh\t1\tGiancarlo_Fisichella\t1\n"
    pairs = parse_lfw_pairs(text)
    assert [(p.a, p.b, p.same) for p in pairs] == [
        ("Abel_Pacheco/Abel_Pacheco_0001.jpg", "Abel_Pacheco/Abel_Pacheco_0004.jpg", True),
        ("Akhmed_Zakayev/Akhmed_Zakayev_0001.jpg", "Akhmed_Zakayev/Akhmed_Zakayev_0003.jpg", True),
        ("Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg", "Dean_Barker/Dean_Barker_0001.jpg", False),
        (
            "Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg",
            "Giancarlo_Fisichella/Giancarlo_Fisichella_0001.jpg",
            False,
        ),
    ]
    assert unique_images(pairs)[:3] == [pairs[0].a, pairs[0].b, pairs[1].a]
    assert len(unique_images(pairs)) == 7
    # the dev files' one-number header, and another extension
    dev = parse_lfw_pairs("1\nA_B 1 2\nA_B 1 C_D 3\n", extension="png")
    assert [p.b for p in dev] == ["A_B/A_B_0002.png", "C_D/C_D_0003.png"]
    (tmp_path / "pairs.txt").write_text(text)
    assert read_pairs(tmp_path / "pairs.txt") == pairs
    assert resolve(tmp_path, pairs[0].a) == tmp_path / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("ten 300\n", "first line"),
        ("1 2\nA 1 2\nB 1 C 1\n", "promises 4 pairs, found 2"),
        ("1\nA 1 2 3 4 5\nB 1 C 1\n", "6 fields"),
        ("1\nA x 2\nB 1 C 1\n", "image number"),
        ("1\nA 0 2\nB 1 C 1\n", "start at 1"),
    ],
)
def test_bad_lfw_pairs_raise(text, message):
    with pytest.raises(ValueError, match=message):
        parse_lfw_pairs(text)


def test_csv_pairs(tmp_path):
    text = "path_a,path_b,same\na/1.png,a/2.png,1\na/1.png,b/1.png,false\n/abs/x.png, b/2.png ,same\n"
    pairs = parse_csv_pairs(text)
    assert [(p.a, p.b, p.same) for p in pairs] == [
        ("a/1.png", "a/2.png", True),
        ("a/1.png", "b/1.png", False),
        ("/abs/x.png", "b/2.png", True),
    ]
    assert resolve(tmp_path, "/abs/x.png") == Path("/abs/x.png")
    assert resolve(tmp_path, "a/1.png") == tmp_path / "a" / "1.png"
    (tmp_path / "p.csv").write_text("a.png,b.png,0\nc.png,d.png,yes\n")  # no header
    assert [p.same for p in read_pairs(tmp_path / "p.csv")] == [False, True]
    with pytest.raises(ValueError, match="'same' must be"):
        parse_csv_pairs("a,b,maybe\n")
    with pytest.raises(ValueError, match="3 columns"):
        parse_csv_pairs("a,b\n")
