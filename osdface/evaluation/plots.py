"""Figures of the face-recognition study, like the paper's: one curve per condition.

- ``fr_curves.png``: precision-recall, ROC (false-accept rate on a log axis, where the
  TPR@FAR figures are read) and F1 versus threshold;
- ``fr_histograms.png``: one panel per condition with the similarity histograms of
  same-person and different-person pairs and the best (accuracy-maximising) threshold.

Matplotlib's object API is used without ``pyplot``: no global figure state, so plots can
be drawn from any thread or process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from osdface.evaluation.metrics import FRCurves, FRMetrics
from osdface.files import atomic_path

CURVES_FILE = "fr_curves.png"
HISTOGRAMS_FILE = "fr_histograms.png"

_LINESTYLES = ("-", "--", ":", "-.")


@dataclass(frozen=True)
class Series:
    """One condition to draw.

    ``group`` picks the colour (e.g. the propagation length; ``None`` = black, for the
    clean reference) and ``variant`` the line style (e.g. the restoration method).
    """

    label: str
    curves: FRCurves
    metrics: FRMetrics
    group: float | None = None
    variant: str = ""


def _styles(series: Sequence[Series]) -> list[dict]:
    groups = sorted({s.group for s in series if s.group is not None})
    variants = list(dict.fromkeys(s.variant for s in series))
    cmap = colormaps["plasma"]
    styles = []
    for s in series:
        if s.group is None:
            color = "black"
        elif len(groups) == 1:
            # one length only: colour tells the methods apart (the line style still does too)
            color = f"C{variants.index(s.variant) % 10}"
        else:
            # stay off plasma's pale yellow end, which vanishes on white
            color = cmap(0.85 * groups.index(s.group) / max(len(groups) - 1, 1))
        styles.append(
            {
                "color": color,
                "linestyle": _LINESTYLES[variants.index(s.variant) % len(_LINESTYLES)],
                "lw": 1.5,
            }
        )
    return styles


def draw_curves(series: Sequence[Series], title: str = "") -> Figure:
    """The PR, ROC and F1 panels in one figure, with a shared legend below."""
    if not series:
        raise ValueError("no conditions to plot")
    fig = Figure(figsize=(15, 5.6), layout="constrained")
    ax_pr, ax_roc, ax_f1 = fig.subplots(1, 3)
    styles = _styles(series)
    # The FAR axis is logarithmic (TPR at FAR 1e-3 is read there); it starts half a false
    # accept below the smallest non-zero FAR, and FAR 0 is drawn at that left edge.
    most_negatives = max(s.metrics.num_negative for s in series)
    min_far = max(1.0 / (2 * most_negatives), 1e-4)
    for s, style in zip(series, styles):
        c = s.curves
        ax_pr.plot(c.recall, c.precision, label=s.label, drawstyle="steps-post", **style)
        ax_roc.plot(np.maximum(c.fpr, min_far), c.tpr, **style)
        # F1 holds from one (decreasing) threshold down to the next
        ax_f1.plot(c.thresholds, c.f1, drawstyle="steps-post", **style)
    ax_pr.set(xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.02))
    ax_roc.set_xscale("log")
    ax_roc.set(
        xlabel="false accept rate (FAR)",
        ylabel="true accept rate (TPR)",
        title="ROC",
        xlim=(min_far, 1),
        ylim=(0, 1.02),
    )
    for far in (1e-3, 1e-2):
        if far >= ax_roc.get_xlim()[0]:
            ax_roc.axvline(far, color="0.7", lw=0.8, zorder=0)
    ax_f1.set(xlabel="cosine similarity threshold", ylabel="F1", title="F1 versus threshold", ylim=(0, 1.02))
    for ax in (ax_pr, ax_roc, ax_f1):
        ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncols=min(len(series), 6), fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def draw_histograms(series: Sequence[Series], title: str = "", bins: int = 40) -> Figure:
    """One panel per condition: similarity histograms of same and different pairs."""
    if not series:
        raise ValueError("no conditions to plot")
    cols = min(len(series), 4)
    rows = math.ceil(len(series) / cols)
    fig = Figure(figsize=(3.6 * cols, 2.8 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, squeeze=False)).ravel()
    # one bin grid for every panel, so the panels compare at a glance
    all_scores = np.concatenate(
        [np.concatenate([s.curves.positive_scores, s.curves.negative_scores]) for s in series]
    )
    lo, hi = float(all_scores.min()), float(all_scores.max())
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    for ax, s in zip(axes, series):
        ax.hist(
            s.curves.positive_scores, bins=edges, density=True, alpha=0.55, color="tab:green", label="same"
        )
        ax.hist(
            s.curves.negative_scores, bins=edges, density=True, alpha=0.55, color="tab:red", label="different"
        )
        ax.axvline(s.metrics.best_threshold, color="black", lw=1, ls="--", label="best threshold")
        msd = s.metrics.mean_sample_distance
        msd_text = "n/a" if not math.isfinite(msd) else f"{msd:.3f}"
        ax.set_title(f"{s.label}\nacc {s.metrics.accuracy:.3f}, MSD {msd_text}", fontsize="small")
        ax.grid(alpha=0.3)
    for ax in axes[len(series) :]:
        ax.set_visible(False)
    for ax in axes[(rows - 1) * cols :]:
        ax.set_xlabel("cosine similarity")
    for ax in axes[::cols]:
        ax.set_ylabel("density")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def save_figures(series: Sequence[Series], output_dir: Path, title: str = "") -> list[Path]:
    """Write ``fr_curves.png`` and ``fr_histograms.png``; returns their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in (
        (CURVES_FILE, draw_curves(series, title)),
        (HISTOGRAMS_FILE, draw_histograms(series, title)),
    ):
        path = output_dir / name
        with atomic_path(path) as partial:  # a failed rerun keeps the last complete figure
            fig.savefig(partial, dpi=120, format="png")
        paths.append(path)
    return paths
