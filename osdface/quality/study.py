"""``osdface evaluate``: a folder of faces restored by each restorer and scored by the metrics.

The work, for every image and every condition (a restorer, at a turbulence length when the
low-quality faces are made from high-quality ones):

1. the low-quality face: the file itself (aligned 512x512 faces; other sizes are resized), the
   face nearest the centre of a whole photo (RetinaFace, aligned to the FFHQ template; the
   high-quality photo of the same name is warped with the same transform), or the high-quality
   face degraded by the turbulence simulator (seeded per image and length). An image without a
   face, or unreadable, is left out with its reason (``metrics.json``, "skipped") and the run
   goes on; a rerun tries it again;
2. its restoration (``input`` is the low-quality face itself, the table's baseline row), saved
   as ``OUTPUT/images/<condition>/<image>.png``;
3. its scores against the high-quality face of the same name (full-reference metrics) and on
   its own (no-reference ones), one JSON line per image in ``OUTPUT/scores/``;
4. when every process is done: FID of each condition's folder against the reference set, and
   the tables (``osdface.quality.tables``).

Resumable: a rerun reads the score lines and the saved images, restores only what is missing,
and scores a saved image again only for the metrics it has no value of. Under
``accelerate launch`` the images are split between the processes (each writes its own score
file); the result is the same as with one process, as every seed is fixed per image.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from osdface.degradations import TurbulenceParams, simulate_turbulence
from osdface.errors import ImageError
from osdface.evaluation.conditions import RESTORE_PROMPTS, item_seed
from osdface.evaluation.work import CENTER_FACE, NoFaceFoundError, output_names
from osdface.faces import RetinaFaceDetector, select_faces
from osdface.faces.template import align_face, square_face, warp_to_template
from osdface.files import save_png_atomic
from osdface.images.reading import load_image
from osdface.pipeline.pipeline_osdface import OSDFacePipeline
from osdface.quality.catalog import INPUT, METRICS, Needs
from osdface.quality.fid import FIDScorer, frechet_distance
from osdface.quality.meter import QualityMeter
from osdface.quality.study_settings import EvaluateConfig, check_resumable, write_settings
from osdface.quality.tables import Condition, EvaluateResult, write_report
from osdface.quality.weights import MetricWeights
from osdface.restorers.loading import load_restorer
from osdface.restorers.specs import RESTORERS
from osdface.runtime.devices import resolve_device, resolve_dtype
from osdface.runtime.distributed import ProcessGroup, process_group
from osdface.weights.facexlib_files import FacexlibWeights
from osdface.weights.hub import WeightsUnavailableError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def conditions_of(config: EvaluateConfig) -> list[Condition]:
    lengths: Sequence[float | None] = config.lengths or (None,)
    return [Condition(method, length) for length in lengths for method in config.methods]


def list_images(folder: Path) -> list[str]:
    """Image files under ``folder``, as sorted relative POSIX paths (the images' keys)."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def output_path(output_dir: Path, condition: Condition, name: Path) -> Path:
    """``name``: the image key's file from ``output_names`` (a.png and a.bmp get their own)."""
    return output_dir / "images" / condition.name / name


class ScoreLog:
    """The per-image scores on disk: ``scores/<process>.jsonl``, one line per (condition, image),
    later lines winning. Every process reads all files; each appends to its own."""

    def __init__(self, folder: Path, index: int):
        self.folder = folder
        self.path = folder / f"scores-{index}.jsonl"
        self._checked = False

    def rows(self) -> Iterator[dict]:
        """Every line of every process's file, in order. A line that is not JSON (the last one,
        cut short by a run killed mid-append) is left out with a warning: its image is redone."""
        for path in sorted(self.folder.glob("scores-*.jsonl")):
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    warnings.warn(f"{path}, line {number}: not a score line, ignored ({exc})", stacklevel=2)

    def read(self) -> dict[tuple[str, str], dict[str, float]]:
        scores: dict[tuple[str, str], dict[str, float]] = {}
        for row in self.rows():
            if "scores" in row:
                values = {k: (math.nan if v is None else float(v)) for k, v in row["scores"].items()}
                scores.setdefault((row["condition"], row["image"]), {}).update(values)
        return scores

    def skipped(self) -> dict[str, str]:
        """Images left out (no face found, unreadable), with the reason."""
        return {row["image"]: row["skipped"] for row in self.rows() if "skipped" in row}

    def skip(self, key: str, reason: str) -> None:
        self._write({"image": key, "skipped": reason})

    def append(self, condition: str, key: str, scores: dict[str, float]) -> None:
        self._write(
            {"condition": condition, "image": key, "scores": {k: _json_number(v) for k, v in scores.items()}}
        )

    def _write(self, row: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self._checked:  # once: only this process appends to its file
            _drop_cut_line(self.path)
            self._checked = True
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")


def _drop_cut_line(path: Path) -> None:
    """A last line without its newline (a run killed mid-append) is cut off, or, when only its
    newline was lost, ended: the next line starts on its own line instead of extending it."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        if data.endswith(b"\n"):
            return
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:])
        except json.JSONDecodeError:
            handle.truncate(start)
        else:
            handle.write(b"\n")


def _json_number(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


class Restorers:
    """The restorations of one low-quality face, each model loaded on first need."""

    def __init__(
        self, config: EvaluateConfig, device: torch.device, pipeline: Any = None, models: dict | None = None
    ):
        self.config = config
        self.device = device
        self._pipeline = pipeline
        self._models = dict(models or {})

    def pipeline(self) -> Any:
        if self._pipeline is None:
            c = self.config
            pipe = OSDFacePipeline.from_pretrained(c.weights, c.base_model, c.revision, c.base_revision)
            self._pipeline = pipe.to(self.device, resolve_dtype(c.dtype, self.device))
        return self._pipeline

    def __call__(self, method: str, face: np.ndarray, key: str, length: float | None) -> np.ndarray:
        """(512, 512, 3) RGB uint8 -> the same, restored by ``method``."""
        if method == INPUT:
            return face
        if method in RESTORERS:
            if method not in self._models:
                self._models[method] = load_restorer(
                    method, device=self.device, fidelity=self.config.codeformer_w
                )
            return np.asarray(self._models[method].restore([Image.fromarray(face)])[0].convert("RGB"))
        seed = item_seed(self.config.seed, key, length or 0.0, "restore")
        generator = torch.Generator("cpu").manual_seed(seed)
        output = self.pipeline()(
            [face], prompt=RESTORE_PROMPTS[method], generator=[generator], color_fix=self.config.color_fix
        )
        return np.asarray(output.images[0].convert("RGB"))


def run_evaluate(
    config: EvaluateConfig,
    *,
    meter: QualityMeter | None = None,
    fid: FIDScorer | None = None,
    pipeline: Any = None,
    restorers: dict | None = None,
    detector: Callable | None = None,
    group: ProcessGroup | None = None,
) -> EvaluateResult | None:
    """Run the evaluation (see the module docstring). Returns the result on the main process,
    None on the others. The keyword arguments replace models loaded from ``config``."""
    config.check()
    group = group or process_group()
    device = resolve_device(config.device, launched=group.device)
    weights = MetricWeights.from_env(local_dir=config.metrics_dir)
    facexlib = FacexlibWeights.from_env(local_dir=config.facexlib_dir)
    meter = meter or QualityMeter(config.metrics, weights=weights, facexlib=facexlib, device=device)
    source_dir = config.lq_dir or config.hq_dir
    keys = list_images(source_dir)
    if not keys:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {source_dir}")
    if config.hq_dir is not None and config.lq_dir is not None:
        missing = [k for k in keys if not (config.hq_dir / k).is_file()]
        if missing:
            raise ValueError(
                f"{len(missing)} faces have no high-quality face of the same name in {config.hq_dir}, e.g. {missing[0]}"
            )
    conditions = conditions_of(config)
    check_resumable(config)
    log = ScoreLog(config.output_dir / "scores", group.index)
    done = log.read()
    group.barrier()  # every process has read the log and the settings before any writes to them
    if group.is_main:
        write_settings(config)  # now, not at the end: an interrupted run is checked when resumed

    restore = Restorers(config, device, pipeline, restorers)

    def get_detector():
        nonlocal detector
        if detector is None:
            detector = RetinaFaceDetector.load("resnet50", weights=facexlib, device=device)
        return detector

    pairs = FacePairs(config, get_detector)
    names = output_names(keys)
    wanted = [m for m in meter.metrics if METRICS[m].needs is Needs.NOTHING or config.hq_dir is not None]
    mine = group.shard(keys)  # an image left out before is tried again
    bar = tqdm(mine, desc="evaluate", unit="image", disable=not config.progress or not group.is_main)
    for key in bar:
        try:
            _evaluate_image(key, names[key], conditions, wanted, done, pairs, restore, meter, log, device)
        except (NoFaceFoundError, ImageError) as error:  # left out, with the reason, and the run goes on
            log.skip(key, error.message())
    group.barrier()
    if not group.is_main:
        return None
    scores, skipped = log.read(), log.skipped()
    skipped = {key: reason for key, reason in skipped.items() if not any(k == key for _, k in scores)}
    fid = fid or FIDScorer(weights, device)
    return _summarise(config, conditions, names, meter, fid, scores, skipped)


def _evaluate_image(key, name, conditions, wanted, done, pairs, restore, meter, log, device) -> None:
    """Restore (into ``name``) and score one image under every condition that still lacks a metric."""
    low_quality: dict[float | None, np.ndarray] = {}  # by turbulence length, shared by the methods
    # FID reads the restored images: they are made even when no per-image metric is asked.
    needs_image = "fid" in pairs.config.metrics
    for condition in conditions:
        missing = [m for m in wanted if m not in done.get((condition.name, key), {})]
        target = output_path(pairs.config.output_dir, condition, name)
        if not missing and (not needs_image or target.is_file()):
            continue
        if target.is_file():
            restored = load_image(target)
        else:
            if condition.length not in low_quality:
                low_quality[condition.length] = pairs.low_quality(key, condition.length, device)
            restored = restore(condition.method, low_quality[condition.length], key, condition.length)
            save_png_atomic(restored, target, compress_level=3)
        if missing:
            scores = {m: v for m, v in meter.score(restored, pairs.high_quality(key)).items() if m in missing}
            log.append(condition.name, key, scores)


class FacePairs:
    """An image's low-quality face and its high-quality face, (512, 512, 3) RGB uint8, aligned
    alike (so that full-reference metrics compare the same pixels).

    Aligned faces are read as they are. Whole photos: the face nearest the centre of the
    low-quality photo is found and aligned, and the high-quality photo of the same name (same
    size) is warped with the same transform; when turbulence makes the low-quality faces, the
    high-quality photo's face is aligned and then degraded, as aligned faces are."""

    def __init__(self, config: EvaluateConfig, get_detector: Callable):
        self.config = config
        self.get_detector = get_detector
        self._hq: dict[str, np.ndarray | None] = {}
        self._affines: dict[str, np.ndarray] = {}

    def _photo_face(self, path: Path, key: str) -> np.ndarray:
        photo = load_image(path)  # (H, W, 3) RGB uint8
        if self.config.aligned:
            try:
                return np.array(square_face(photo))
            except ImageError as error:
                raise ImageError(error.reason, source=str(path), fix=error.fix) from error
        found = select_faces(self.get_detector()(photo), photo.shape, CENTER_FACE)
        if not found:
            raise NoFaceFoundError("no face found", source=str(path))
        face, affine = align_face(photo, found[0].landmarks)
        self._affines[key] = affine
        return face

    def high_quality(self, key: str) -> np.ndarray | None:
        if self.config.hq_dir is None:
            return None
        if key not in self._hq:
            self._hq.clear()  # one image at a time: keep only the current one
            path = self.config.hq_dir / key
            if self.config.aligned or self.config.lq_dir is None:
                self._hq[key] = self._photo_face(path, key)
            else:
                if key not in self._affines:
                    self.low_quality(key, None, None)
                photo = load_image(path)
                lq_size = load_image(self.config.lq_dir / key).shape
                if photo.shape != lq_size:
                    raise ImageError(
                        f"the high-quality photo is {photo.shape[1]}x{photo.shape[0]} and the low-quality one "
                        f"{lq_size[1]}x{lq_size[0]}: whole photos are compared pixel for pixel",
                        source=str(path),
                        fix="pass photos of the same size, or aligned faces",
                    )
                self._hq[key] = warp_to_template(photo, self._affines[key])
        return self._hq[key]

    def low_quality(self, key: str, length: float | None, device) -> np.ndarray:
        if length is None:
            return self._photo_face(self.config.lq_dir / key, key)
        seed = item_seed(self.config.seed, key, length, "turbulence")
        face = torch.from_numpy(np.ascontiguousarray(self.high_quality(key))).to(
            device
        )  # (H, W, 3) RGB uint8
        return simulate_turbulence(face, TurbulenceParams(propagation_length=length), seed=seed).cpu().numpy()


def _summarise(config, conditions, names, meter, fid, scores, skipped) -> EvaluateResult:
    """``names``: image key -> its file under each condition's folder (``output_names``)."""
    keys = sorted(names)
    metrics = [m for m in config.metrics if m in METRICS]
    table: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    unavailable = dict(meter.unavailable)
    reference = _fid_reference(config, fid, unavailable) if "fid" in metrics else None
    for condition in conditions:
        rows = [scores.get((condition.name, key), {}) for key in keys]
        # exactly this run's restorations: not what an earlier run over other inputs left there
        images = [
            path
            for key in keys
            if key not in skipped
            and (path := output_path(config.output_dir, condition, names[key])).is_file()
        ]
        counts[condition.name] = max(sum(1 for row in rows if row), len(images))
        means = {}
        for metric in metrics:
            values = [row[metric] for row in rows if metric in row and not math.isnan(row[metric])]
            if values:
                means[metric] = float(np.mean(values))
        if reference is not None and "fid" not in unavailable:
            try:
                means["fid"] = frechet_distance(fid.file_statistics(images), reference)
            except WeightsUnavailableError as exc:  # Inception's file: no condition gets FID
                unavailable["fid"] = str(exc)
            except ValueError as exc:  # fewer than 2 images, or statistics that are not finite
                unavailable[f"fid ({condition.name})"] = str(exc)
        table[condition.name] = means
    result = EvaluateResult(conditions, metrics, table, counts, scores, unavailable, skipped)
    write_settings(config)
    write_report(config.output_dir, result)
    return result


def _fid_reference(config: EvaluateConfig, fid: FIDScorer, unavailable: dict[str, str]):
    """FID's reference statistics, or None with the reason in ``unavailable["fid"]`` (its files
    missing offline, a bad reference): the rest of the report is still written."""
    try:
        return fid.reference(
            config.fid_reference or (config.hq_dir if config.hq_dir is not None else "ffhq"),
            cache_dir=config.output_dir / "cache",
        )
    except WeightsUnavailableError as exc:
        unavailable["fid"] = str(exc)
    except (OSError, ValueError) as exc:
        unavailable["fid"] = f"{type(exc).__name__}: {exc}"
    return None
