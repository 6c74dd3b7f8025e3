"""The paper's face-recognition study: does restoring turbulent faces keep their identity?

For every image of a pair list (LFW ``pairs.txt`` or a CSV, see ``pairs``):

1. the clean face, aligned to OSDFace's 512x512 FFHQ layout (detected with RetinaFace and
   aligned on its five landmarks, or read as is with ``aligned=True``): condition ``clean``;
2. for each propagation length L, the aligned face through the turbulence simulator with a
   seed fixed by (``seed``, image, L): condition ``turbulent_L`` (with ``--without-restoration``);
3. that turbulent face restored by OSDFace (condition ``osdface_L``) and, with
   ``--without-vre``, by the same pipeline conditioned on SD 2.1's null text prompt instead
   of the VRE (``no_vre_L``); the VAE posterior sample is seeded by (``seed``, image, L);
4. ArcFace embeddings of every face (``osdface.identity``), cached on disk.

Turbulence is simulated on the aligned 512x512 face, so that every image, however degraded,
stays in the study (a detector would miss faces at 40 km) and the restoration sees exactly
the crop it was trained on.

A pair's score under a condition is the cosine similarity of its two embeddings; with
``degrade="one"`` only the second image of each pair is degraded and compared with the
clean first one, with ``"both"`` both are. Per condition: metrics (``metrics``), then
``metrics.json``, ``scores.csv`` and the figures (``plots``).

Scale-out: launched with ``accelerate launch``, the images still to process are split
between the processes (``osdface.distributed``); each writes its embeddings to the cache,
and the main process reads them back and writes the report, the same as a single process.

Resume: embeddings are cached per condition under
``<output>/cache/<condition>/<settings hash>/part-*.npz``; the hash covers everything that
changes an embedding (ArcFace weights, alignment, turbulence parameters and seed, pipeline
weights, dtype, colour fix, prompt). A rerun computes only what is missing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from osdface.evaluation.pairs import Pair, read_pairs, resolve, unique_images
from osdface.peer_specs import PEERS

if TYPE_CHECKING:
    import torch

    from osdface.distributed import ProcessGroup
    from osdface.evaluation.metrics import FRMetrics
    from osdface.faces import FaceDetector
    from osdface.identity import ArcFaceEmbedder

DEFAULT_LENGTHS = (20000.0, 25000.0, 30000.0, 35000.0, 40000.0)
# Methods applied to the turbulent faces, in plotting order.
DEGRADED_METHODS = ("turbulent", "osdface", "no_vre", *PEERS)  # peers: osdface.peers (spandrel)
METHOD_LABELS = {
    "clean": "clean",
    "turbulent": "turbulent",
    "osdface": "OSDFace",
    "no_vre": "OSDFace w/o VRE",
    **{key: spec.label for key, spec in PEERS.items()},
}
# The pipeline's prompt per restoring method: None conditions on the VRE (the method), ""
# on SD 2.1's null text prompt (the paper's "without VRE" ablation).
RESTORE_PROMPTS: dict[str, str | None] = {"osdface": None, "no_vre": ""}
DEGRADE_MODES = ("one", "both")
FACE_SIZE = 512
# facexlib's FaceRestoreHelper fills outside the photo with (135, 133, 132) in BGR
ALIGN_BORDER_RGB = (132, 133, 135)
CACHE_FORMAT = 1

METRICS_FILE = "metrics.json"
SCORES_FILE = "scores.csv"


class NoFaceFoundError(ValueError):
    """The detector found no usable face in an image (the image is left out of the study)."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class EvalFRConfig:
    """Settings of one study (see the module docstring).

    faces_dir: root the pair keys are relative to (LFW: the folder holding one folder per name).
    pairs_file: LFW ``pairs.txt`` format, or ``.csv`` with ``path_a,path_b,same``.
    output_dir: where ``metrics.json``, ``scores.csv``, the figures, ``cache/`` and
        (``save_images``) ``images/<condition>/`` go.
    lengths: turbulence propagation lengths in metres.
    methods: subset of ``DEGRADED_METHODS`` evaluated at each length.
    degrade: "both" sides of each pair, or only the second ("one").
    aligned: images are already aligned faces (square, FFHQ layout); no detection.
    extension: image extension of LFW keys (``jpg``; use ``png`` for a re-encoded copy).
    seed: base of every per-image seed (turbulence and VAE sample).
    max_pairs: use only the first N pairs (LFW's first 600 are its first fold).
    weights, base_model, revision, base_revision: the OSDFace pipeline's sources (see
        ``osdface.hub``); dtype: "float16", "bfloat16" or "float32" (default: float16 on
        CUDA, else float32); color_fix: None, "adain" or "wavelet".
    device: torch device; default the launcher's (one GPU per process), else CUDA when
        available, else CPU.
    facexlib_dir: a folder holding facexlib's weight files (RetinaFace, ArcFace).
    codeformer_w: CodeFormer's fidelity weight (method ``codeformer``).
    """

    faces_dir: Path
    pairs_file: Path
    output_dir: Path
    lengths: tuple[float, ...] = DEFAULT_LENGTHS
    methods: tuple[str, ...] = ("osdface",)
    degrade: str = "both"
    aligned: bool = False
    extension: str = "jpg"
    seed: int = 0
    max_pairs: int | None = None
    save_images: bool = False
    weights: str | None = None
    base_model: str | None = None
    revision: str | None = None
    base_revision: str | None = None
    dtype: str | None = None
    color_fix: str | None = None
    device: str | None = None
    facexlib_dir: Path | None = None
    progress: bool = True
    codeformer_w: float = 0.5

    def __post_init__(self) -> None:
        if not self.lengths:
            raise ValueError("lengths: give at least one propagation length")
        for length in self.lengths:
            if not (float(length) > 0 and np.isfinite(float(length))):
                raise ValueError(f"lengths: propagation lengths must be positive metres, got {length!r}")
        if len(set(map(float, self.lengths))) != len(self.lengths):
            raise ValueError(f"lengths: each length once, got {list(self.lengths)}")
        if not self.methods:
            raise ValueError(f"methods: give at least one of {DEGRADED_METHODS}")
        unknown = [m for m in self.methods if m not in DEGRADED_METHODS]
        if unknown:
            raise ValueError(f"methods: unknown {unknown}; expected some of {DEGRADED_METHODS}")
        if self.degrade not in DEGRADE_MODES:
            raise ValueError(f"degrade must be one of {DEGRADE_MODES}, got {self.degrade!r}")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ValueError(f"max_pairs must be at least 1, got {self.max_pairs}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.dtype not in (None, "float16", "bfloat16", "float32"):
            raise ValueError(f"dtype must be float16, bfloat16 or float32, got {self.dtype!r}")
        if self.color_fix not in (None, "adain", "wavelet"):
            raise ValueError(f"color_fix must be None, 'adain' or 'wavelet', got {self.color_fix!r}")
        if not 0.0 <= self.codeformer_w <= 1.0:
            raise ValueError(f"codeformer_w must be in [0, 1], got {self.codeformer_w!r}")
        if self.extension.startswith(".") or not self.extension:
            raise ValueError(f"extension: give it without the dot, e.g. 'jpg', got {self.extension!r}")

    def to_json_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
        out["lengths"] = [float(length) for length in self.lengths]
        out["methods"] = list(self.methods)
        del out["progress"]
        return out


@dataclass(frozen=True)
class Condition:
    """What was done to the faces: ``clean``, or ``method`` at propagation ``length`` metres."""

    method: str
    length: float | None = None

    @property
    def name(self) -> str:
        """File-name-safe id, e.g. ``clean``, ``osdface_20000``."""
        return self.method if self.length is None else f"{self.method}_{_format_length(self.length)}"

    @property
    def label(self) -> str:
        """Legend text, e.g. ``OSDFace, 20 km``."""
        text = METHOD_LABELS[self.method]
        return text if self.length is None else f"{text}, {self.length / 1000:g} km"


CLEAN = Condition("clean")


def _format_length(length: float) -> str:
    return str(int(length)) if float(length).is_integer() else repr(float(length))


def conditions_of(config: EvalFRConfig) -> list[Condition]:
    """``clean`` first, then for each length the chosen methods in ``DEGRADED_METHODS`` order."""
    conditions = [CLEAN]
    for length in config.lengths:
        conditions += [Condition(m, float(length)) for m in DEGRADED_METHODS if m in config.methods]
    return conditions


def required_conditions(
    pairs: Sequence[Pair], conditions: Sequence[Condition], degrade: str
) -> dict[str, list[Condition]]:
    """Image key -> the conditions it needs an embedding for, in first-appearance order."""
    degraded = (
        {key for pair in pairs for key in (pair.a, pair.b)} if degrade == "both" else {p.b for p in pairs}
    )
    return {
        key: [c for c in conditions if c.method == "clean" or key in degraded]
        for key in unique_images(list(pairs))
    }


def item_seed(seed: int, key: str, length: float, purpose: str) -> int:
    """A 32-bit seed fixed by the base seed, the image key, the length and what it seeds,
    so that every image gets the same noise however the work is split or resumed."""
    words = [seed, zlib.crc32(key.encode()), int(round(length * 1000)), zlib.crc32(purpose.encode())]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


# --------------------------------------------------------------------------- the cache


def settings_hash(settings: dict[str, Any]) -> str:
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class EmbeddingCache:
    """Embeddings on disk: ``<root>/<condition>/<hash>/part-*.npz`` (arrays ``keys``, ``embeddings``).

    Each process appends its own part files (unique names, written to a temporary name and
    renamed: a crash never leaves a half-written part), so several processes and interrupted
    runs share one cache safely.
    """

    def __init__(self, root: Path, hashes: dict[str, str], flush_every: int = 64):
        self.root = root
        self.hashes = hashes
        self.flush_every = flush_every
        self._pending: dict[str, list[tuple[str, np.ndarray]]] = {}
        self._count = 0

    def folder(self, condition: str) -> Path:
        return self.root / condition / self.hashes[condition]

    def cached_keys(self) -> set[tuple[str, str]]:
        """(condition name, image key) of every cached entry, without reading the embeddings."""
        found: set[tuple[str, str]] = set()
        for condition in self.hashes:
            for part in self.folder(condition).glob("part-*.npz"):
                with np.load(part, allow_pickle=False) as data:
                    found.update((condition, key) for key in data["keys"].tolist())
        return found

    def load(self) -> dict[tuple[str, str], np.ndarray]:
        """(condition name, image key) -> (512,) float32 embedding, for every cached entry."""
        found: dict[tuple[str, str], np.ndarray] = {}
        for condition in self.hashes:
            for part in sorted(self.folder(condition).glob("part-*.npz")):
                with np.load(part, allow_pickle=False) as data:
                    for key, vector in zip(data["keys"].tolist(), data["embeddings"]):
                        found[(condition, key)] = vector
        return found

    def add(self, condition: str, key: str, embedding: np.ndarray) -> None:
        self._pending.setdefault(condition, []).append((key, np.asarray(embedding, dtype=np.float32)))
        self._count += 1
        if self._count >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        for condition, entries in self._pending.items():
            if entries:
                self._write(condition, [k for k, _ in entries], np.stack([v for _, v in entries]))
        self._pending = {}
        self._count = 0

    def compact(self) -> None:
        """Merge each condition's parts into one (main process only, when no one else writes)."""
        for condition in self.hashes:
            parts = sorted(self.folder(condition).glob("part-*.npz"))
            if len(parts) < 2:
                continue
            merged: dict[str, np.ndarray] = {}
            for part in parts:
                with np.load(part, allow_pickle=False) as data:
                    merged.update(zip(data["keys"].tolist(), data["embeddings"]))
            self._write(condition, list(merged), np.stack(list(merged.values())))
            for part in parts:
                part.unlink()

    def _write(self, condition: str, keys: list[str], embeddings: np.ndarray) -> None:
        folder = self.folder(condition)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{uuid.uuid4().hex}.npz"
        partial = folder / f".{name}.tmp"
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.array(keys, dtype=str), embeddings=embeddings.astype(np.float32))
        partial.write_bytes(buffer.getvalue())
        os.replace(partial, folder / name)


# --------------------------------------------------------------------------- faces


def align_face(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB uint8 photo + five landmarks -> (512, 512, 3) RGB uint8 FFHQ-aligned face,
    with the similarity fit and fill colour facexlib's FaceRestoreHelper uses."""
    import cv2

    from osdface.faces import FFHQ_TEMPLATE_512

    affine = cv2.estimateAffinePartial2D(
        np.asarray(landmarks, np.float64), FFHQ_TEMPLATE_512, method=cv2.LMEDS
    )[0]
    if affine is None:
        raise NoFaceFoundError("the five landmarks do not define a similarity transform")
    return cv2.warpAffine(
        image, affine, (FACE_SIZE, FACE_SIZE), borderMode=cv2.BORDER_CONSTANT, borderValue=ALIGN_BORDER_RGB
    )


class FaceLoader:
    """Image key -> the clean (512, 512, 3) RGB uint8 aligned face.

    ``aligned``: the file already is an aligned square face (resized to 512 if needed, with
    Lanczos as the restore command does). Otherwise ``get_detector()`` gives a ``FaceDetector``
    (loaded on first use) and the face nearest the image centre is aligned.
    """

    def __init__(self, root: Path, aligned: bool, get_detector: Callable[[], FaceDetector]):
        self.root = root
        self.aligned = aligned
        self.get_detector = get_detector

    def __call__(self, key: str) -> np.ndarray:
        from PIL import Image

        from osdface.imageio import load_image

        path = resolve(self.root, key)
        image = load_image(path)  # (H, W, 3) RGB uint8
        if self.aligned:
            height, width = image.shape[:2]
            if height != width:
                raise ValueError(f"{path}: an aligned face must be square, got {width}x{height}")
            if width != FACE_SIZE:
                image = np.asarray(
                    Image.fromarray(image).resize((FACE_SIZE, FACE_SIZE), Image.Resampling.LANCZOS)
                )
            return image
        from osdface.faces import RestoreOptions, select_faces

        faces = select_faces(self.get_detector()(image), image.shape, RestoreOptions(only_center_face=True))
        if not faces:
            raise NoFaceFoundError(f"{path}: no face found")
        return align_face(image, faces[0].landmarks)


# --------------------------------------------------------------------------- the work


class _Worker:
    """Computes one image's missing embeddings (models loaded on first need)."""

    def __init__(
        self,
        config: EvalFRConfig,
        device: torch.device,
        embedder: ArcFaceEmbedder,
        cache: EmbeddingCache,
        pipeline: Any | None,
        detector: FaceDetector | None,
        peers: dict[str, Any] | None = None,
    ):
        self.config = config
        self._peers = dict(peers or {})
        self.device = device
        self.embedder = embedder
        self.cache = cache
        self._pipeline = pipeline
        self._detector = detector
        self.load_face = FaceLoader(config.faces_dir, config.aligned, self.detector)

    def detector(self) -> FaceDetector:
        if self._detector is None:
            from osdface.faces import RetinaFaceDetector
            from osdface.facexlib_weights import FacexlibWeights

            weights = FacexlibWeights.from_env(local_dir=self.config.facexlib_dir)
            self._detector = RetinaFaceDetector.load("resnet50", weights=weights, device=self.device)
        return self._detector

    def pipeline(self) -> Any:
        if self._pipeline is None:
            import torch

            from osdface import OSDFacePipeline

            c = self.config
            pipe = OSDFacePipeline.from_pretrained(c.weights, c.base_model, c.revision, c.base_revision)
            dtype = getattr(torch, pipeline_dtype(c, self.device))
            if (pipe.device, pipe.dtype) != (self.device, dtype):  # it loads on the CPU in float32
                pipe = pipe.to(self.device, dtype)
            self._pipeline = pipe
        return self._pipeline

    def peer(self, method: str) -> Any:
        """The ``osdface.peers`` restorer ``method``, loaded on first need."""
        if method not in self._peers:
            from osdface.peers import load_peer

            self._peers[method] = load_peer(method, device=self.device, fidelity=self.config.codeformer_w)
        return self._peers[method]

    def process(self, key: str, conditions: Sequence[Condition]) -> None:
        """Embed ``key`` under ``conditions`` into the cache. Raises NoFaceFoundError."""
        clean = self.load_face(key)
        ordered: list[Condition] = []
        faces: list[np.ndarray] = []  # (512, 512, 3) RGB uint8 each
        for length, group in _by_length(conditions):
            # one turbulent face per length, shared by the methods that start from it
            turbulent = None if length is None else self._turbulent(clean, key, length)
            for condition in group:
                ordered.append(condition)
                if condition.method == "clean":
                    faces.append(clean)
                elif condition.method == "turbulent":
                    faces.append(turbulent)
                elif condition.method in PEERS:
                    restored = self.peer(condition.method).restore([_pil(turbulent)])[0]
                    faces.append(np.asarray(restored))  # (512, 512, 3) RGB uint8
                else:
                    faces.append(self._restore(turbulent, key, length, RESTORE_PROMPTS[condition.method]))
        embeddings = self.embedder.embed(faces).numpy()
        for condition, face, embedding in zip(ordered, faces, embeddings):
            self.cache.add(condition.name, key, embedding)
            if self.config.save_images:
                _save_png(face, image_path(self.config.output_dir, condition, key))

    def _turbulent(self, clean: np.ndarray, key: str, length: float) -> np.ndarray:
        import torch

        from osdface.degradations import TurbulenceParams, simulate_turbulence

        seed = item_seed(self.config.seed, key, length, "turbulence")
        # on the worker's device: on a GPU the simulation is far quicker than on the CPU
        # (its noise comes from a seeded CPU generator either way)
        face = torch.from_numpy(clean).to(self.device)  # (H, W, 3) RGB uint8
        params = TurbulenceParams(propagation_length=length)
        out = simulate_turbulence(face, params, seed=seed).cpu().numpy()
        if out.shape != clean.shape or out.dtype != np.uint8:
            raise RuntimeError(
                f"simulate_turbulence returned {out.dtype} {out.shape} for a {clean.dtype} {clean.shape} face"
            )
        return out

    def _restore(self, face: np.ndarray, key: str, length: float, prompt: str | None) -> np.ndarray:
        import torch

        generator = torch.Generator("cpu").manual_seed(item_seed(self.config.seed, key, length, "restore"))
        output = self.pipeline()(
            [face], prompt=prompt, generator=[generator], color_fix=self.config.color_fix
        )
        return np.asarray(output.images[0].convert("RGB"))  # (512, 512, 3) RGB uint8


def _pil(face: np.ndarray):
    from PIL import Image

    return Image.fromarray(face)


def _by_length(conditions: Iterable[Condition]) -> list[tuple[float | None, list[Condition]]]:
    groups: dict[float | None, list[Condition]] = {}
    for condition in conditions:
        groups.setdefault(condition.length, []).append(condition)
    return list(groups.items())


def pipeline_dtype(config: EvalFRConfig, device: torch.device) -> str:
    return config.dtype or ("float16" if device.type == "cuda" else "float32")


def image_path(output_dir: Path, condition: Condition, key: str) -> Path:
    """Where ``save_images`` puts a face: ``images/<condition>/<key without extension>.png``."""
    relative = Path(key)
    if relative.is_absolute():
        relative = Path("absolute", *relative.parts[1:])
    return output_dir / "images" / condition.name / relative.with_suffix(".png")


def _save_png(face: np.ndarray, target: Path) -> None:
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    Image.fromarray(face).save(partial, format="PNG")
    os.replace(partial, target)


# --------------------------------------------------------------------------- results
# (metrics and plots import scikit-learn and matplotlib, so they load when first needed:
# the CLI's --help stays quick)


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


def _settings(
    config: EvalFRConfig, condition: Condition, arcface: str, device: torch.device
) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "arcface": arcface,
        "alignment": "given" if config.aligned else "retinaface_resnet50_center_face_ffhq512",
    }
    if condition.length is not None:
        from osdface.degradations import TurbulenceParams

        params = TurbulenceParams(propagation_length=condition.length)
        settings["turbulence"] = asdict(params) if is_dataclass(params) else repr(params)
        settings["seed"] = config.seed
    if condition.method in RESTORE_PROMPTS:
        from osdface.hub import ModelSources

        sources = ModelSources.resolve(
            config.weights, config.base_model, config.revision, config.base_revision
        )
        settings["pipeline"] = asdict(sources)
        settings["dtype"] = pipeline_dtype(config, device)
        settings["color_fix"] = config.color_fix
        settings["prompt"] = RESTORE_PROMPTS[condition.method]
    if condition.method in PEERS:
        settings["peer"] = PEERS[condition.method].weights.filename
        if condition.method == "codeformer":
            settings["codeformer_w"] = config.codeformer_w
    return settings


def _log(group: ProcessGroup, message: str) -> None:
    if group.is_main:
        print(f"eval-fr: {message}", file=sys.stderr, flush=True)


def run_eval_fr(
    config: EvalFRConfig,
    *,
    embedder: ArcFaceEmbedder | None = None,
    pipeline: Any | None = None,
    detector: FaceDetector | None = None,
    group: ProcessGroup | None = None,
    peers: dict[str, Any] | None = None,
) -> EvalFRResult | None:
    """Run the study (see the module docstring). Returns the result on the main process and
    None on the others. ``embedder``, ``pipeline``, ``detector`` and ``peers`` (method ->
    ``osdface.peers.FaceModel``) replace the models loaded from ``config`` (tests; an app
    holding them already)."""
    import torch
    from tqdm import tqdm

    from osdface.distributed import process_group
    from osdface.evaluation.metrics import compute_metrics

    group = group or process_group()
    device = torch.device(config.device or group.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    pairs = read_pairs(config.pairs_file, extension=config.extension)
    if config.max_pairs is not None:
        pairs = pairs[: config.max_pairs]
    same = sum(p.same for p in pairs)
    if same == 0 or same == len(pairs):
        raise ValueError(
            f"{config.pairs_file}: the pairs used ({len(pairs)}) need both same-person and "
            f"different-person pairs, got {same} same"
        )
    images = unique_images(pairs)
    missing = [key for key in images if not resolve(config.faces_dir, key).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(images)} images of {config.pairs_file} are not under {config.faces_dir}, "
            f"e.g. {resolve(config.faces_dir, missing[0])}"
        )

    if embedder is None:
        from osdface.facexlib_weights import FacexlibWeights
        from osdface.identity import ArcFaceEmbedder

        embedder = ArcFaceEmbedder.from_pretrained(FacexlibWeights.from_env(local_dir=config.facexlib_dir))
    embedder.to(device)

    conditions = conditions_of(config)
    needs = required_conditions(pairs, conditions, config.degrade)
    hashes = {c.name: settings_hash(_settings(config, c, embedder.fingerprint, device)) for c in conditions}
    cache = EmbeddingCache(config.output_dir / "cache", hashes)
    known = cache.cached_keys()
    todo = {key: [c for c in needs[key] if (c.name, key) not in known] for key in images}
    todo = {key: missing_conditions for key, missing_conditions in todo.items() if missing_conditions}
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
    worker = _Worker(config, device, embedder, cache, pipeline, detector, peers)
    for method in {c.method for missing_conditions in todo.values() for c in missing_conditions} & set(PEERS):
        worker.peer(method)  # a missing weight file stops the run now, not after hours of work
    skipped: list[tuple[str, str]] = []
    mine = group.shard(list(todo))
    for key in tqdm(
        mine, desc="eval-fr", unit="image", file=sys.stderr, disable=not (config.progress and group.is_main)
    ):
        try:
            worker.process(key, todo[key])
        except NoFaceFoundError as exc:
            skipped.append((key, str(exc)))
    cache.flush()
    # one entry per process; gathering also waits until every process has flushed its cache
    shares = group.gather([(len(mine), skipped)])
    if not group.is_main:
        return None
    skipped = [item for _, process_skipped in shares for item in process_skipped]
    if group.is_distributed:
        _log(group, f"images processed per process: {[count for count, _ in shares]}")

    cache.compact()
    embeddings = cache.load()
    left_out = {key for key, _ in skipped}
    evaluated = [p for p in pairs if p.a not in left_out and p.b not in left_out]
    for key in images:
        if key in left_out:
            continue
        absent = [c.name for c in needs[key] if (c.name, key) not in embeddings]
        if absent:
            raise RuntimeError(
                f"no embedding of {key} under {absent} after the run: was the cache changed meanwhile?"
            )
    if not any(p.same for p in evaluated) or all(p.same for p in evaluated):
        raise ValueError(f"after leaving out {len(left_out)} images without a face, too few pairs remain")

    results = []
    for condition in conditions:
        scores = pair_scores(evaluated, condition, embeddings, config.degrade)
        labels = np.array([p.same for p in evaluated], dtype=np.int64)
        results.append(ConditionResult(condition, scores, compute_metrics(scores, labels)))
    result = EvalFRResult(pairs=evaluated, skipped=sorted(skipped), conditions=results)
    write_report(config, result, arcface=embedder.fingerprint, num_pairs=len(pairs))
    return result


# --------------------------------------------------------------------------- the report


def write_report(config: EvalFRConfig, result: EvalFRResult, *, arcface: str, num_pairs: int) -> None:
    """``metrics.json``, ``scores.csv`` and the figures; fills ``result.files``."""
    from osdface.evaluation.metrics import compute_curves
    from osdface.evaluation.plots import Series, save_figures

    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "format": "osdface-eval-fr/1",
        "config": config.to_json_dict(),
        "arcface_fingerprint": arcface,
        "num_pairs": num_pairs,
        "num_pairs_evaluated": len(result.pairs),
        "skipped_images": [{"image": key, "reason": reason} for key, reason in result.skipped],
        "definitions": {
            "score": "cosine similarity of the ArcFace embeddings of a pair's two faces",
            "best_threshold": "score threshold maximising accuracy over the evaluated pairs "
            "(pairs with score >= threshold are predicted same-person)",
            "f1": "F1 at best_threshold",
            "tpr_at_far_1e_3": "highest true-accept rate with a false-accept rate <= 1e-3",
            "mean_sample_distance": "mean score of pairs predicted same minus that of pairs predicted different",
        },
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
    metrics_path = out / METRICS_FILE
    metrics_path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")

    scores_path = out / SCORES_FILE
    with open(scores_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path_a", "path_b", "same", *(r.condition.name for r in result.conditions)])
        for i, pair in enumerate(result.pairs):
            writer.writerow(
                [pair.a, pair.b, int(pair.same), *(repr(float(r.scores[i])) for r in result.conditions)]
            )

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
    figures = save_figures(series, out, title)
    result.files.update({METRICS_FILE: metrics_path, SCORES_FILE: scores_path})
    result.files.update({path.name: path for path in figures})


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
