"""Face-verification metrics from pair similarities.

Every function takes ``scores`` (one cosine similarity per pair, higher = more alike) and
``labels`` (1 = same person, 0 = different people), both 1-D and of equal length.

Conventions, chosen once and used everywhere (metrics JSON, plots, tests):

- A pair is *predicted positive* when ``score >= threshold``.
- The *best threshold* is the candidate threshold that maximises accuracy over all the
  pairs given; candidates are the distinct scores (so at least one pair is predicted
  positive). Ties go to the highest such threshold, the more conservative choice.
  This is the "best threshold" of the paper's study, fitted on the evaluated pairs
  themselves; it is optimistic compared with LFW's 10-fold protocol, which fits the
  threshold on nine folds and tests on the tenth.
- ``f1`` is the F1 score *at that accuracy-maximising threshold*, not F1's own maximum
  (the F1 plot shows the whole F1-versus-threshold curve, so its peak is visible there).
- ``tpr_at_far_*``: the highest true-positive rate among thresholds whose false-accept
  rate (false-positive rate) is at most the target.
- ``mean_sample_distance``: mean similarity of the pairs predicted positive minus that of
  the pairs predicted negative, at the best threshold. It is NaN (``null`` in JSON) when
  one side is empty. A larger value means the model separates the two groups more widely.

scikit-learn computes the ROC and PR curves; the rest is arithmetic on its ROC arrays.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

FAR_TARGETS = (1e-3, 1e-2)


@dataclass(frozen=True)
class FRMetrics:
    """Verification metrics of one condition (see the module docstring for definitions)."""

    num_pairs: int
    num_positive: int
    num_negative: int
    roc_auc: float
    average_precision: float
    best_threshold: float
    accuracy: float
    f1: float
    tpr_at_far_1e_3: float
    tpr_at_far_1e_2: float
    mean_sample_distance: float
    mean_positive_similarity: float  # over ground-truth same-person pairs
    mean_negative_similarity: float  # over ground-truth different-person pairs

    def to_json_dict(self) -> dict[str, int | float | None]:
        """A JSON-safe dict: non-finite floats become ``None`` (JSON has no NaN)."""
        out: dict[str, int | float | None] = {}
        for key, value in asdict(self).items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
            else:
                out[key] = value
        return out


@dataclass(frozen=True)
class FRCurves:
    """The curves a plot needs for one condition."""

    fpr: np.ndarray  # ROC, from (0, 0)
    tpr: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray  # decreasing distinct scores
    f1: np.ndarray  # F1 at each of ``thresholds``
    positive_scores: np.ndarray
    negative_scores: np.ndarray


def _validate(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"scores and labels must be 1-D arrays of equal length, got {s.shape} and {y.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"scores must be finite; found {int((~np.isfinite(s)).sum())} non-finite values")
    if y.size and not np.isin(y, (0, 1)).all():  # booleans compare equal to 0/1 too
        raise ValueError(f"labels must be 0/1 (different/same person), got values {np.unique(y).tolist()}")
    y = y.astype(np.int64)
    if y.sum() == 0 or y.sum() == y.size:
        raise ValueError(
            f"need both same-person and different-person pairs, got {int(y.sum())} same out of {y.size}"
        )
    return s, y


def _roc(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC at every distinct score, without scikit-learn's leading ``inf`` threshold."""
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    keep = np.isfinite(thresholds)
    return fpr[keep], tpr[keep], thresholds[keep]


def _counts(fpr, tpr, num_pos: int, num_neg: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tp = np.rint(tpr * num_pos)
    fp = np.rint(fpr * num_neg)
    return tp, fp, num_pos - tp, num_neg - fp


def _f1(tp, fp, fn) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp, dtype=np.float64), where=denom > 0)


@dataclass(frozen=True)
class _BestThreshold:
    threshold: float
    accuracy: float
    f1: float


def _best_threshold(s: np.ndarray, y: np.ndarray) -> _BestThreshold:
    """The accuracy-maximising threshold of validated arrays, its accuracy and its F1."""
    fpr, tpr, thresholds = _roc(s, y)
    num_pos = int(y.sum())
    tp, fp, fn, tn = _counts(fpr, tpr, num_pos, y.size - num_pos)
    accuracy = (tp + tn) / y.size
    # thresholds decrease, and argmax returns the first maximum: the highest threshold.
    i = int(np.argmax(accuracy))
    return _BestThreshold(float(thresholds[i]), float(accuracy[i]), float(_f1(tp, fp, fn)[i]))


def best_threshold(scores, labels) -> tuple[float, float]:
    """(threshold, accuracy) of the accuracy-maximising threshold (highest one on ties)."""
    best = _best_threshold(*_validate(scores, labels))
    return best.threshold, best.accuracy


def tpr_at_far(scores, labels, far: float) -> float:
    """Highest true-positive rate with a false-accept rate of at most ``far``."""
    s, y = _validate(scores, labels)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return float(tpr[fpr <= far].max())  # the leading inf threshold (fpr 0) keeps this non-empty


def mean_sample_distance(scores, labels, threshold: float) -> float:
    """Mean score of pairs predicted positive (``>= threshold``) minus that of the rest."""
    s, _ = _validate(scores, labels)
    predicted = s >= threshold
    if predicted.all() or not predicted.any():
        return math.nan
    return float(s[predicted].mean() - s[~predicted].mean())


def compute_metrics(scores, labels) -> FRMetrics:
    """All verification metrics of one condition."""
    s, y = _validate(scores, labels)
    num_pos = int(y.sum())
    best = _best_threshold(s, y)
    return FRMetrics(
        num_pairs=int(y.size),
        num_positive=num_pos,
        num_negative=y.size - num_pos,
        roc_auc=float(roc_auc_score(y, s)),
        average_precision=float(average_precision_score(y, s)),
        best_threshold=best.threshold,
        accuracy=best.accuracy,
        f1=best.f1,
        tpr_at_far_1e_3=tpr_at_far(s, y, 1e-3),
        tpr_at_far_1e_2=tpr_at_far(s, y, 1e-2),
        mean_sample_distance=mean_sample_distance(s, y, best.threshold),
        mean_positive_similarity=float(s[y == 1].mean()),
        mean_negative_similarity=float(s[y == 0].mean()),
    )


def compute_curves(scores, labels) -> FRCurves:
    """ROC, PR and F1-versus-threshold curves of one condition, for plotting."""
    s, y = _validate(scores, labels)
    num_pos = int(y.sum())
    fpr, tpr, thresholds = _roc(s, y)
    tp, fp, fn, _ = _counts(fpr, tpr, num_pos, y.size - num_pos)
    precision, recall, _ = precision_recall_curve(y, s)
    return FRCurves(
        # the ROC curve starts at (0, 0): nothing accepted
        fpr=np.concatenate([[0.0], fpr]),
        tpr=np.concatenate([[0.0], tpr]),
        precision=precision,
        recall=recall,
        thresholds=thresholds,
        f1=_f1(tp, fp, fn),
        positive_scores=s[y == 1],
        negative_scores=s[y == 0],
    )
