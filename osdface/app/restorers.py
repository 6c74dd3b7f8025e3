"""The app's "Compare with other restorers" (the logic; the widgets are in ``osdface.app.restorers_panel``).

After OSDFace has restored a request, the same request is prepared again by the ``Studio``
(same checks, same seeded turbulence, same detector on the same pixels, so the very faces
OSDFace restored), and each chosen restorer (``osdface.restorers.loading``) restores those aligned faces,
pasted back the same way. Each gets its time and the ArcFace similarity of its faces to the
clean input faces. A restorer whose weights are missing is listed with the reason; the others
run. For whole photos a background may be chosen: the photo is enlarged (Lanczos 2x or
Real-ESRGAN x2/x4) and every restorer's faces, OSDFace's included, are pasted onto it.

Three steps like ``Studio``: ``prepare`` (CPU: request, faces, models), ``run`` (GPU),
``finish`` (CPU: PNGs and the table). No per-request state is kept on the object.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osdface import faces, lazy
from osdface import restorers as other_restorers
from osdface.app import scores
from osdface.app.imaging import clean_crop, save_png
from osdface.app.models import Part
from osdface.app.requests import MODE_PHOTO, RequestError, RestoreRequest
from osdface.app.results import PreparedRestore
from osdface.app.service import Studio
from osdface.choices import ColorFix
from osdface.images.reading import DEFAULT_MAX_PIXELS
from osdface.quality.catalog import METRICS
from osdface.restorers.specs import BACKGROUND_LICENCES, RESTORERS
from osdface.weights.hub import WeightsUnavailableError

np = lazy.module("numpy")

if TYPE_CHECKING:
    from osdface.restorers.loading import RestorerSet

RESTORER_CHOICES = [(spec.choice_label, key) for key, spec in RESTORERS.items()]
# value -> (label, output scale)
BACKGROUNDS = {
    "none": ("Original size", 1.0),
    "lanczos": ("Lanczos, 2x", 2.0),
    "realesrgan-x2": (f"Real-ESRGAN x2plus, 2x ({BACKGROUND_LICENCES['realesrgan-x2']})", 2.0),
    "realesrgan-x4": (f"Real-ESRGAN x4plus, 4x ({BACKGROUND_LICENCES['realesrgan-x4']})", 4.0),
}
BACKGROUND_CHOICES = [(label, value) for value, (label, _) in BACKGROUNDS.items()]
OSDFACE_ON_BACKGROUND = "osdface"
# Pixels of one enlarged result: the CLI's limit (a 25 MP upload on the 4x background would be 400 MP).
MAX_OUTPUT_PIXELS = 4 * DEFAULT_MAX_PIXELS


@dataclass
class PreparedCompare:
    """``prepared``: the Studio's step 1; ``models``: key -> loaded restorer (the OSDFace pipeline
    under ``osdface`` when a background is chosen); ``unavailable``: key -> reason."""

    prepared: PreparedRestore
    models: dict[str, Any]
    unavailable: dict[str, str]
    background: Any | None
    background_name: str
    scale: float


@dataclass
class MethodResult:
    """One restorer's whole output (PIL RGB), its seconds, its faces' ArcFace similarities and
    the means of its faces' quality metrics (None: metrics off)."""

    key: str
    label: str
    image: Any
    seconds: float
    similarities: list[float] | None
    scores: dict[str, float] | None = None


@dataclass
class CompareOutcome:
    """PNG paths by restorer key (labels alongside) and the Markdown table."""

    paths: dict[str, Path] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    markdown: str = ""


class RestorerStudio:
    """The comparison around a ``Studio``; ``restorers`` loads each restorer once, on first use.
    ``max_output_pixels``: a background that would make a larger result is not used (the faces
    are then compared at the photo's size, with the reason in the table)."""

    def __init__(
        self,
        studio: Studio,
        restorers: RestorerSet | None = None,
        *,
        max_output_pixels: int = MAX_OUTPUT_PIXELS,
    ):
        self.studio = studio
        self.max_output_pixels = int(max_output_pixels)
        self._restorers = restorers
        self._restorers_lock = threading.Lock()
        self._background_lock = threading.Lock()
        self._loaded_backgrounds: dict[str, Any] = {}

    @property
    def restorers(self) -> RestorerSet:
        # Loaded on first use: osdface.restorers.loading imports torch and spandrel, and a start without
        # the model weights shows its page without importing either (osdface.app.probe).
        with self._restorers_lock:
            if self._restorers is None:
                self._restorers = other_restorers.RestorerSet(device=self.studio.device)
            return self._restorers

    def prepare(
        self, request: RestoreRequest, chosen: Sequence[str], background: str = "none"
    ) -> PreparedCompare | None:
        """None when nothing is asked (no restorer, no background)."""
        chosen = chosen or []
        # API clients send JSON: anything but a list of names and one name would fail below as a
        # TypeError (unhashable) instead of being refused.
        if (
            not isinstance(chosen, list | tuple)
            or not all(isinstance(m, str) for m in chosen)
            or not isinstance(background, str)
        ):
            raise RequestError(
                f"Restorers must be a list of names ({', '.join(RESTORERS)}) and the background one name "
                f"({', '.join(BACKGROUNDS)}); got {chosen!r} and {background!r}."
            )
        chosen = list(dict.fromkeys(chosen))
        unknown = [m for m in chosen if m not in RESTORERS]
        if unknown or background not in BACKGROUNDS:
            raise RequestError(
                f"Unknown comparison {unknown or background!r}: choose from {', '.join(RESTORERS)} "
                f"and a background from {', '.join(BACKGROUNDS)}."
            )
        if request.mode != MODE_PHOTO:
            background = "none"  # an aligned face is compared at its own size
        if not chosen and background == "none":
            return None
        prepared = self.studio.prepare(replace(request, ablation=False))
        models, unavailable = self.restorers.get(chosen)
        upscaler = None
        if background != "none":
            reason = self._too_large(prepared.photo, background)
            upscaler, reason = (None, reason) if reason else self._background(background)
            if reason:
                unavailable[background] = reason
                background = "none"
        if background != "none":
            models[OSDFACE_ON_BACKGROUND] = self.studio.pipeline
        return PreparedCompare(
            prepared, models, unavailable, upscaler, background, BACKGROUNDS[background][1]
        )

    def _too_large(self, photo: Any, background: str) -> str | None:
        """Why ``background`` would make a result over ``max_output_pixels`` (None: it fits)."""
        scale = BACKGROUNDS[background][1]
        width, height = int(photo.shape[1] * scale), int(photo.shape[0] * scale)
        if width * height <= self.max_output_pixels:
            return None
        return (
            f"this photo on it would be {width}x{height} ({width * height / 1e6:.1f} megapixels), over the "
            f"limit of {self.max_output_pixels / 1e6:.1f} megapixels per result, so the faces are compared "
            "at the photo's size. Fix: choose a smaller background (or none), or upload a smaller photo."
        )

    def _background(self, name: str) -> tuple[Any | None, str | None]:
        # Late: osdface.restorers.backgrounds imports torch and spandrel; the page renders without them.
        with self._background_lock:
            if name not in self._loaded_backgrounds:
                try:
                    self._loaded_backgrounds[name] = other_restorers.load_background(
                        name, device=self.studio.device
                    )
                except WeightsUnavailableError as exc:
                    return None, str(exc)
            return self._loaded_backgrounds[name], None

    def run(self, job: PreparedCompare) -> list[MethodResult]:
        """Each restorer on the prepared faces (on ZeroGPU: the step that holds the GPU)."""
        prepared, request = job.prepared, job.prepared.request
        base = self.studio.restorer.options if self.studio.restorer is not None else faces.RestoreOptions()
        options = replace(
            base,
            aligned=request.mode != MODE_PHOTO,
            max_faces=self.studio.settings.max_faces,
            prompt=None,
            color_fix=ColorFix.argument(request.color_fix),
            seed=int(request.seed),
            upscale=job.scale,
            max_pixels=None,
            max_output_pixels=self.max_output_pixels,
        )
        found = None if options.aligned else prepared.faces  # found once, in step 1
        meter = self.studio.meter() if request.metrics else None
        references = None  # the clean faces, (512, 512, 3) RGB uint8, when turbulence degraded them
        results = []
        for key, model in job.models.items():
            pipeline = model if key == OSDFACE_ON_BACKGROUND else other_restorers.FaceModelPipeline(model)
            restorer = faces.FaceRestorer(pipeline, options=options, background=job.background)
            tick = time.perf_counter()
            restored = restorer.restore_faces(prepared.photo, found)
            seconds = time.perf_counter() - tick
            label = (
                RESTORERS[key].label
                if key in RESTORERS
                else f"OSDFace, {BACKGROUNDS[job.background_name][0]}"
            )
            similarities = self._identity(prepared, restored)
            quality = None
            if meter is not None:
                if request.turbulence and references is None:
                    references = [
                        np.asarray(clean_crop(prepared, face.affine).convert("RGB"))
                        for face in restored.faces
                    ]
                crops = [face.restored_crop for face in restored.faces]
                quality = scores.score_faces(meter, crops, references, similarities)
            results.append(MethodResult(key, label, restored.image, seconds, similarities, quality))
        return results

    def _identity(self, prepared: PreparedRestore, restored) -> list[float] | None:
        if self.studio.identity is None:
            return None
        turbulent = prepared.request.turbulence
        return [
            self.studio.identity.similarities(
                clean_crop(prepared, face.affine) if turbulent else face.input_crop, [face.restored_crop]
            )[0]
            for face in restored.faces
        ]

    def finish(
        self, job: PreparedCompare, results: list[MethodResult], output_dir: str | os.PathLike
    ) -> CompareOutcome:
        folder = Path(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        outcome = CompareOutcome()
        for result in results:
            outcome.paths[result.key] = save_png(result.image, folder / f"compare_{result.key}.png")
            outcome.labels[result.key] = f"{result.label} · {result.seconds:.2f} s" + (
                f" · ArcFace {_mean(result.similarities):.3f}" if result.similarities else ""
            )
        outcome.markdown = compare_markdown(job, results, self.studio.models.why_missing(Part.IDENTITY))
        return outcome


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def compare_markdown(job: PreparedCompare, results: list[MethodResult], identity_error: str | None) -> str:
    faces = job.prepared.face_count
    metrics = [m for m in METRICS if any(r.scores and m in r.scores for r in results)]
    lines = [
        f"**Compared on the same {faces} face(s)** "
        "(time: detection reused, restoration and paste-back; ArcFace: cosine similarity to the input face, "
        "mean over faces" + ("; quality metrics: mean over faces" if metrics else "") + ")",
        "",
        "| Restorer | Licence | Time | ArcFace similarity |"
        + "".join(f" {METRICS[m].header} |" for m in metrics),
        "|---|---|---:|---:|" + "---:|" * len(metrics),
    ]
    for result in results:
        licence = (
            RESTORERS[result.key].choice_label.split("(", 1)[1].rstrip(")")
            if result.key in RESTORERS
            else "OSDFace"
        )
        score = f"{_mean(result.similarities):.3f}" if result.similarities else "n/a"
        cells = "".join(
            f" {scores.format_value(m, (result.scores or {}).get(m, math.nan))} |" for m in metrics
        )
        lines.append(f"| {result.label} | {licence} | {result.seconds:.2f} s | {score} |{cells}")
    if not results:
        lines.append("| (none ran) | | | |")
    if identity_error and results:
        lines.append("\nArcFace similarities are off: the ArcFace model could not be loaded.")
    for key, reason in job.unavailable.items():
        name = RESTORERS[key].label if key in RESTORERS else BACKGROUNDS.get(key, (key,))[0]
        first_line = reason.splitlines()[0].removesuffix(" Tried:")
        lines.append(f"\n**{name} is unavailable:** {first_line}")
        lines.append(f"<details><summary>Details and fix</summary>\n\n```\n{reason}\n```\n</details>")
    return "\n".join(lines)
