"""The settings of an ``osdface evaluate`` run (``EvaluateConfig``), saved as ``OUTPUT/settings.json``,
and the check that a rerun into the same folder keeps those its saved images and scores depend on
(a resume with another --hq, seed, weights or colour fix would otherwise mix stale results in)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from osdface.evaluation.conditions import check_lengths
from osdface.files import write_bytes_atomic
from osdface.quality.catalog import EVALUATED_RESTORERS, INPUT


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of one evaluation (see the module docstring).

    lq_dir: low-quality faces (None: made from ``hq_dir`` by turbulence at ``lengths``);
    hq_dir: high-quality faces with the same file names (full-reference metrics, FID's default
    reference); fid_reference: "ffhq", a folder or a .npz file (None: ``hq_dir`` if given, else
    "ffhq"); aligned: the faces are aligned squares (else whole photos: the centre face).
    """

    output_dir: Path
    lq_dir: Path | None = None
    hq_dir: Path | None = None
    methods: tuple[str, ...] = (INPUT, "osdface")
    metrics: tuple[str, ...] = ()
    lengths: tuple[float, ...] = ()
    fid_reference: str | None = None
    aligned: bool = True
    seed: int = 0
    weights: str | None = None
    base_model: str | None = None
    revision: str | None = None
    base_revision: str | None = None
    dtype: str | None = None
    device: str | None = None
    color_fix: str = "adain"
    facexlib_dir: Path | None = None
    metrics_dir: Path | None = None
    codeformer_w: float = 0.5
    progress: bool = True

    def check(self) -> None:
        """Raise ``ValueError`` naming the setting at fault."""
        if self.lq_dir is None and self.hq_dir is None:
            raise ValueError("give a folder of low-quality faces, or --hq with --lengths to degrade")
        if self.lq_dir is None and not self.lengths:
            raise ValueError("without low-quality faces, give --lengths: the turbulence that degrades --hq")
        check_lengths(self.lengths)
        if self.lq_dir is not None and self.lengths:
            raise ValueError(
                f"--lengths {self.lengths} degrade --hq faces; they cannot apply to {self.lq_dir}"
            )
        for folder in (self.lq_dir, self.hq_dir):
            if folder is not None and not Path(folder).is_dir():
                raise ValueError(f"{folder} is not a folder")
        unknown = [m for m in self.methods if m not in EVALUATED_RESTORERS]
        if unknown:
            raise ValueError(f"unknown restorer {unknown[0]!r}; choose from {', '.join(EVALUATED_RESTORERS)}")


# The settings the saved images and scores depend on: a rerun into the same folder must keep them
# (restorers and metrics may be added; the device, folders of model files and FID's reference may change).
RESULT_SETTINGS = (
    "lq_dir",
    "hq_dir",
    "lengths",
    "aligned",
    "seed",
    "weights",
    "base_model",
    "revision",
    "base_revision",
    "dtype",
    "color_fix",
    "codeformer_w",
)
_FOLDER_SETTINGS = ("lq_dir", "hq_dir")


def check_resumable(config: EvaluateConfig) -> None:
    """``ValueError`` naming each result setting that differs from the ``settings.json`` of an
    earlier run into ``config.output_dir`` (its images and scores would be reused as if current)."""
    path = config.output_dir / "settings.json"
    if not path.is_file():
        return
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not readable JSON ({exc}): the earlier run's settings are unknown, so its "
            "images and scores cannot be reused. Fix: use a new -o folder, or delete this one."
        ) from exc
    current = json.loads(settings_json(config))
    changed = [
        f"{name}: {saved[name]!r} before, {current[name]!r} now"
        for name in RESULT_SETTINGS
        if name in saved and _comparable(name, saved[name]) != _comparable(name, current[name])
    ]
    if changed:
        raise ValueError(
            f"{config.output_dir} holds an evaluation made with other settings ("
            + "; ".join(changed)
            + "): its restored images and scores would be reused as if they were made with these. "
            "Fix: use a new -o folder, or delete this one to start over."
        )


def _comparable(name: str, value: Any) -> Any:
    if name in _FOLDER_SETTINGS and value is not None:
        return str(Path(value).expanduser().resolve())
    if name == "lengths":
        return [float(v) for v in value]
    return value


def settings_json(config: EvaluateConfig) -> str:
    return json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}, indent=2)


def write_settings(config: EvaluateConfig) -> None:
    write_bytes_atomic(config.output_dir / "settings.json", settings_json(config).encode())
