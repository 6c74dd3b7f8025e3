"""An evaluation's results and their tables.

Files written into the output folder:

- ``table.md``: the table in the paper's column order, each header with its direction
  (``LPIPS↓``), one row per condition, the best value of each column in bold;
- ``table.csv``: the same numbers, unrounded;
- ``metrics.json``: per condition the means, FID and the image count, each metric's
  direction and meaning, and the metrics that could not run with their reasons;
- ``per_image.csv``: every image's scores under every condition.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from osdface.evaluation.conditions import format_length
from osdface.files import write_bytes_atomic
from osdface.quality.catalog import METRICS, in_paper_order


@dataclass(frozen=True)
class Condition:
    """One row of the table: a restorer, at a turbulence length (None: the given low-quality faces)."""

    method: str
    length: float | None = None

    @property
    def name(self) -> str:
        return self.method if self.length is None else f"{self.method}@{format_length(self.length)}m"


@dataclass
class EvaluateResult:
    """Per condition: the mean of each metric over its images, FID, the image count; and the
    per-image scores ``{(condition, image): {metric: value}}``."""

    conditions: list[Condition]
    metrics: list[str]
    table: dict[str, dict[str, float]]
    counts: dict[str, int]
    per_image: dict[tuple[str, str], dict[str, float]]
    unavailable: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # image -> why it was left out

    @property
    def columns(self) -> list[str]:
        """The metrics that have a value, in the paper's order."""
        present = {metric for row in self.table.values() for metric in row}
        return [m for m in in_paper_order(self.metrics) if m in present]


def _best(result: EvaluateResult, metric: str) -> float | None:
    values = [row[metric] for row in result.table.values() if metric in row and math.isfinite(row[metric])]
    if not values:
        return None
    return max(values) if METRICS[metric].higher_is_better else min(values)


def _format(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    digits = 2 if metric in ("psnr", "musiq", "niqe", "deg", "lmd", "fid") else 4
    return f"{value:.{digits}f}"


def markdown_table(result: EvaluateResult) -> str:
    columns = result.columns
    lines = [
        "| Restorer | Images | " + " | ".join(METRICS[m].header for m in columns) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in columns) + " |",
    ]
    best = {m: _best(result, m) for m in columns}
    for condition in result.conditions:
        row = result.table.get(condition.name, {})
        cells = []
        for metric in columns:
            text = _format(row.get(metric), metric)
            if (
                metric in row
                and best[metric] is not None
                and row[metric] == best[metric]
                and len(result.table) > 1
            ):
                text = f"**{text}**"
            cells.append(text)
        lines.append(
            f"| {condition.name} | {result.counts.get(condition.name, 0)} | " + " | ".join(cells) + " |"
        )
    for metric, reason in result.unavailable.items():
        lines.append(f"\n{metric}: not computed: {reason.splitlines()[0]}")
    for metric in result.metrics:
        if metric not in columns and metric not in result.unavailable:
            why = " (the landmark detector found no face)" if metric == "lmd" else ""
            lines.append(f"\n{metric}: no value in any image{why}")
    if result.skipped:
        first = next(iter(result.skipped.items()))
        lines.append(
            f"\n{len(result.skipped)} image(s) left out (see metrics.json), e.g. {first[0]}: {first[1]}"
        )
    return "\n".join(lines) + "\n"


def _csv(rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def table_csv(result: EvaluateResult) -> str:
    columns = result.columns
    rows: list[list[object]] = [["condition", "images", *columns]]
    for condition in result.conditions:
        row = result.table.get(condition.name, {})
        rows.append(
            [condition.name, result.counts.get(condition.name, 0), *(row.get(m, "") for m in columns)]
        )
    return _csv(rows)


def per_image_csv(result: EvaluateResult) -> str:
    columns = in_paper_order([m for m in result.metrics if m != "fid"])
    rows: list[list[object]] = [["condition", "image", *columns]]
    for (condition, image), scores in sorted(result.per_image.items()):
        rows.append(
            [
                condition,
                image,
                *(("" if math.isnan(v) else v) if (v := scores.get(m)) is not None else "" for m in columns),
            ]
        )
    return _csv(rows)


def metrics_json(result: EvaluateResult) -> dict:
    def number(value: float) -> float | str | None:
        if math.isnan(value):
            return None
        return str(value) if math.isinf(value) else value

    return {
        "columns": result.columns,
        "metrics": {
            m: {
                "label": METRICS[m].label,
                "higher_is_better": METRICS[m].higher_is_better,
                "needs": METRICS[m].needs.value,
                "meaning": METRICS[m].meaning,
            }
            for m in result.columns
        },
        "conditions": {
            c.name: {
                "restorer": c.method,
                "turbulence_length_m": c.length,
                "images": result.counts.get(c.name, 0),
                "scores": {m: number(v) for m, v in result.table.get(c.name, {}).items()},
            }
            for c in result.conditions
        },
        "unavailable": result.unavailable,
        "skipped": result.skipped,
    }


def write_report(output_dir: Path, result: EvaluateResult) -> None:
    write_bytes_atomic(output_dir / "table.md", markdown_table(result).encode())
    write_bytes_atomic(output_dir / "table.csv", table_csv(result).encode())
    write_bytes_atomic(output_dir / "per_image.csv", per_image_csv(result).encode())
    write_bytes_atomic(
        output_dir / "metrics.json", (json.dumps(metrics_json(result), indent=2) + "\n").encode()
    )
