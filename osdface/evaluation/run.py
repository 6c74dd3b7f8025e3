"""The paper's face-recognition study: does restoring turbulent faces keep their identity?

For every image of a pair list (LFW ``pairs.txt`` or a CSV, see ``pairs``):

1. the clean face, aligned to OSDFace's 512x512 FFHQ layout (detected with RetinaFace and
   aligned on its five landmarks, or read as is with ``aligned=True``): condition ``clean``;
2. for each propagation length L, the aligned face through the turbulence simulator with a
   seed fixed by (``seed``, image, L): condition ``turbulent_L`` (with ``--without-restoration``);
3. that turbulent face restored by OSDFace (condition ``osdface_L``) and, with
   ``--without-vre``, by the same pipeline conditioned on SD 2.1's null text prompt instead
   of the VRE (``no_vre_L``); the VAE posterior sample is seeded by (``seed``, image, L);
4. ArcFace embeddings of every face (``osdface.evaluation.identity``), cached on disk.

Turbulence is simulated on the aligned 512x512 face, so that every image, however degraded,
stays in the study (a detector would miss faces at 40 km) and the restoration sees exactly
the crop it was trained on.

A pair's score under a condition is the cosine similarity of its two embeddings; with
``degrade="one"`` only the second image of each pair is degraded and compared with the
clean first one, with ``"both"`` both are. Per condition: metrics (``metrics``), then
``metrics.json``, ``scores.csv`` and the figures (``report``).

Scale-out: launched with ``accelerate launch``, the images still to process are split
between the processes (``osdface.runtime.distributed``); each writes its embeddings to the cache,
and the main process reads them back and writes the report, the same as a single process.

Resume: embeddings are cached per condition under
``<output>/cache/<condition>/<settings hash>/part-*.npz`` (``cache``). A rerun computes only
what is missing.

Modules: ``conditions`` (settings, conditions, seeds), ``cache``, ``work`` (one image's
faces and embeddings), ``report``; this one runs them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from osdface.evaluation.cache import EmbeddingCache, cache_settings, faces_fingerprint, settings_hash
from osdface.evaluation.conditions import (
    CLEAN,
    Condition,
    EvalFRConfig,
    conditions_of,
    required_conditions,
)
from osdface.evaluation.identity import ArcFaceEmbedder
from osdface.evaluation.metrics import compute_metrics
from osdface.evaluation.pairs import Pair, read_pairs, resolve, unique_images
from osdface.evaluation.report import ConditionResult, EvalFRResult, write_report
from osdface.evaluation.work import EmbeddingWorker, NoFaceFoundError, output_names
from osdface.faces import FaceDetector
from osdface.restorers.specs import RESTORERS
from osdface.runtime.devices import resolve_device
from osdface.runtime.distributed import ProcessGroup, process_group
from osdface.weights.facexlib_files import FacexlibWeights

Needs = dict[str, list[Condition]]  # image key -> conditions


def run_eval_fr(
    config: EvalFRConfig,
    *,
    embedder: ArcFaceEmbedder | None = None,
    pipeline: Any | None = None,
    detector: FaceDetector | None = None,
    group: ProcessGroup | None = None,
    restorers: dict[str, Any] | None = None,
) -> EvalFRResult | None:
    """Run the study (see the module docstring). Returns the result on the main process and
    None on the others. ``embedder``, ``pipeline``, ``detector`` and ``restorers`` (method ->
    ``osdface.restorers.loading.FaceModel``) replace the models loaded from ``config`` (tests; an app
    holding them already)."""
    group = group or process_group()
    device = resolve_device(config.device, launched=group.device)
    pairs = _read_pairs(config)
    images = unique_images(pairs)
    _check_images_exist(config, images)
    if embedder is None:
        embedder = ArcFaceEmbedder.from_pretrained(FacexlibWeights.from_env(local_dir=config.facexlib_dir))
    embedder.to(device)

    conditions = conditions_of(config)
    needs = required_conditions(pairs, conditions, config.degrade)
    faces = faces_fingerprint(config.faces_dir, images)
    hashes = {
        c.name: settings_hash(
            cache_settings(config, c, embedder.fingerprint, device, faces, given_restorers=restorers or {})
        )
        for c in conditions
    }
    cache = EmbeddingCache(config.output_dir / "cache", hashes)
    known = cache.cached_keys()
    todo = {key: [c for c in needs[key] if (c.name, key) not in known] for key in images}
    todo = {key: missing for key, missing in todo.items() if missing}
    total = sum(len(v) for v in needs.values())
    _log(
        group,
        f"{len(pairs)} pairs, {len(images)} images, {len(conditions)} conditions: "
        f"{total - sum(len(v) for v in todo.values())} of {total} embeddings cached, "
        f"{len(todo)} images to process" + (f" on {group.count} processes" if group.is_distributed else ""),
    )

    # Every process has read the cache before any writes to it: they all see the same
    # `todo`, so their shards do not overlap.
    group.barrier()
    worker = EmbeddingWorker(
        config, device, embedder, cache, pipeline, detector, restorers, image_names=output_names(images)
    )
    skipped = _embed_missing(worker, todo, group, progress=config.progress)
    if skipped is None:
        return None
    cache.compact()
    result = _evaluate(config, pairs, needs, conditions, cache.load(), skipped)
    write_report(config, result, arcface=embedder.fingerprint, num_pairs=len(pairs))
    return result


def _read_pairs(config: EvalFRConfig) -> list[Pair]:
    pairs = read_pairs(config.pairs_file, extension=config.extension)
    if config.max_pairs is not None:
        pairs = pairs[: config.max_pairs]
    same = sum(p.same for p in pairs)
    if same == 0 or same == len(pairs):
        raise ValueError(
            f"{config.pairs_file}: the pairs used ({len(pairs)}) need both same-person and "
            f"different-person pairs, got {same} same"
        )
    return pairs


def _check_images_exist(config: EvalFRConfig, images: Sequence[str]) -> None:
    missing = [key for key in images if not resolve(config.faces_dir, key).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(images)} images of {config.pairs_file} are not under {config.faces_dir}, "
            f"e.g. {resolve(config.faces_dir, missing[0])}"
        )


def _embed_missing(
    worker: EmbeddingWorker, todo: Needs, group: ProcessGroup, *, progress: bool
) -> list[tuple[str, str]] | None:
    """This process's share of ``todo`` into the cache; on the main process, the (image key,
    reason) of the images every process left out for want of a face, else None."""
    for method in {c.method for missing in todo.values() for c in missing} & set(RESTORERS):
        worker.restorer(method)  # a missing weight file stops the run now, not after hours of work
    skipped: list[tuple[str, str]] = []
    mine = group.shard(list(todo))
    for key in tqdm(
        mine, desc="eval-fr", unit="image", file=sys.stderr, disable=not (progress and group.is_main)
    ):
        try:
            worker.process(key, todo[key])
        except NoFaceFoundError as exc:  # every other error (unreadable file, a bug) stops the run
            skipped.append((key, str(exc)))
    worker.cache.flush()
    # one entry per process; gathering also waits until every process has flushed its cache
    shares = group.gather([(len(mine), skipped)])
    if not group.is_main:
        return None
    if group.is_distributed:
        _log(group, f"images processed per process: {[count for count, _ in shares]}")
    return [item for _, process_skipped in shares for item in process_skipped]


def _evaluate(
    config: EvalFRConfig,
    pairs: list[Pair],
    needs: Needs,
    conditions: Sequence[Condition],
    embeddings: dict[tuple[str, str], np.ndarray],
    skipped: list[tuple[str, str]],
) -> EvalFRResult:
    """Scores and metrics per condition, over the pairs whose images all had a face."""
    left_out = {key for key, _ in skipped}
    for key, required in needs.items():
        absent = [c.name for c in required if (c.name, key) not in embeddings]
        if absent and key not in left_out:
            raise RuntimeError(
                f"no embedding of {key} under {absent} after the run: was the cache changed meanwhile?"
            )
    evaluated = [p for p in pairs if p.a not in left_out and p.b not in left_out]
    if not any(p.same for p in evaluated) or all(p.same for p in evaluated):
        raise ValueError(f"after leaving out {len(left_out)} images without a face, too few pairs remain")
    labels = np.array([p.same for p in evaluated], dtype=np.int64)
    results = []
    for condition in conditions:
        scores = pair_scores(evaluated, condition, embeddings, config.degrade)
        results.append(ConditionResult(condition, scores, compute_metrics(scores, labels)))
    return EvalFRResult(pairs=evaluated, skipped=sorted(skipped), conditions=results)


def pair_scores(
    pairs: Sequence[Pair],
    condition: Condition,
    embeddings: dict[tuple[str, str], np.ndarray],
    degrade: str,
) -> np.ndarray:
    """Cosine similarity of each pair under ``condition`` (embeddings are unit vectors)."""
    first = condition if degrade == "both" else CLEAN
    a = np.stack([embeddings[(first.name, p.a)] for p in pairs]).astype(np.float64)
    b = np.stack([embeddings[(condition.name, p.b)] for p in pairs]).astype(np.float64)
    return np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _log(group: ProcessGroup, message: str) -> None:
    if group.is_main:
        print(f"eval-fr: {message}", file=sys.stderr, flush=True)
