"""The app's Markdown: the timing table, the identity table and the notes."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from osdface import evaluation
from osdface.app.models import LoadedModels, Part
from osdface.app.requests import MODE_PHOTO
from osdface.app.results import GpuResult, PreparedRestore
from osdface.app.text import CPU_SECONDS_PER_FACE, WEIGHTS_FIX, WEIGHTS_MISSING

if TYPE_CHECKING:  # the page renders before torch (which the face package needs) is imported
    from osdface.faces import RestoreResult

IDENTITY_OFF = "Identity scores are off: the ArcFace model could not be loaded."


_STAGES = (
    ("read", "Read image"),
    ("turbulence", "Turbulence simulation"),
    ("detect", "Face detection"),
    ("align", "Face alignment"),
    ("vre", "VRE (visual tokens)"),
    ("text_encoder", "Text encoder"),
    ("vae_encode", "VAE encode"),
    ("unet", "UNet (one step)"),
    ("vae_decode", "VAE decode"),
    ("paste", "Paste faces back"),
    ("identity", "Identity (ArcFace)"),
    ("metrics", "Quality metrics"),
    ("write", "Write PNGs"),
)


def pass_timings(result: RestoreResult) -> dict[str, float]:
    """One restoration pass's stages; its ``detect`` only replayed step 1's faces, so it is left out."""
    return {stage: seconds for stage, seconds in result.timings.items() if stage not in ("detect", "total")}


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def timing_markdown(
    prepared: PreparedRestore, result: GpuResult, timings: dict[str, dict[str, float]]
) -> str:
    """The per-stage timing table, the device and the peak GPU memory, as Markdown."""
    request = prepared.request
    faces = len(result.restored.faces)
    head = f"**{faces} face{'s' if faces != 1 else ''} restored in {timings['shared']['total']:.2f} s**"
    if request.mode == MODE_PHOTO and prepared.faces_found > faces:
        head += f" ({prepared.faces_found} found; the {faces} largest were restored)"
    columns = ["OSDFace (VRE)"] + (["without VRE"] if result.without_vre is not None else [])
    lines = [head, "", "| Stage | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for stage, label in _STAGES:
        shared = timings["shared"].get(stage)
        first = timings["vre"].get(stage, shared)
        second = timings["without_vre"].get(stage) if result.without_vre is not None else None
        if first is None and second is None:
            continue
        cells = [_seconds(first)] + ([_seconds(second)] if result.without_vre is not None else [])
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    total = [_seconds(timings["shared"]["total"])] + ([""] if result.without_vre is not None else [])
    lines.append("| **Total (wall clock)** | " + " | ".join(total) + " |")
    device = f"Device: {result.device_name}"
    if result.peak_memory_bytes is not None:
        device += f" · peak GPU memory {result.peak_memory_bytes / 2**30:.2f} GiB"
    lines += ["", device]
    return "\n".join(lines)


def identity_markdown(result: GpuResult, *, turbulent: bool) -> str:
    """The identity table with its legend, or the note saying why there is none."""
    if result.identity is None:
        return note_markdown(IDENTITY_OFF, result.identity_note)
    reference = "the clean input face (before turbulence)" if turbulent else "the input face"
    columns = (["turbulent input"] if turbulent else []) + ["OSDFace (VRE)"]
    if result.without_vre is not None:
        columns.append("without VRE")
    lines = [
        f"**Identity similarity to {reference}** (ArcFace cosine)",
        "",
        "| Face | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row in result.identity:
        cells = ([f"{row.turbulent_input:.3f}"] if turbulent else []) + [f"{row.restored:.3f}"]
        if result.without_vre is not None:
            cells.append(f"{row.without_vre:.3f}")
        lines.append(f"| {row.face} | " + " | ".join(cells) + " |")
    lines += ["", evaluation.SIMILARITY_LEGEND]
    return "\n".join(lines)


def note_markdown(summary: str, details: str | None = None) -> str:
    """A note for a Markdown output: the summary, and the details (an error with its fix,
    which may hold characters such as ``<folder>``) folded away, escaped."""
    if not details:
        return html.escape(summary, quote=False)
    return (
        f"{html.escape(summary, quote=False)}\n<details><summary>Why, and how to fix it</summary>\n\n"
        f'<pre style="white-space: pre-wrap">{html.escape(details, quote=False)}</pre>\n</details>'
    )


def status_notes(models: LoadedModels, *, on_cpu: bool) -> list[tuple[str, str | None]]:
    """Notes for the page, each (summary, details or None): what is off and why (with the
    fix), and, ``on_cpu``, what to expect of the CPU."""
    notes: list[tuple[str, str | None]] = []
    if on_cpu:
        notes.append(
            (
                f"Running on the CPU: expect about {CPU_SECONDS_PER_FACE} s per face with the full model "
                "(a bit under twice that with the without-VRE comparison, which reuses the VAE "
                "encoding; measured on 2 Zen 3 cores); a GPU takes well under a second.",
                None,
            )
        )
    off = {
        Part.DETECTOR: "Whole-photo mode is off: the face detector could not be loaded. Aligned faces still work.",
        Part.ABLATION: "The without-VRE comparison is off: SD 2.1's text encoder could not be loaded.",
        Part.IDENTITY: IDENTITY_OFF,
    }
    for part, summary in off.items():
        reason = models.why_missing(part)
        if reason:
            notes.append((summary, reason))
    return notes


def weights_missing_text(reason: str) -> str:
    """The missing-weights banner as terminal text: the heading, the reason indented under it,
    and the fix (the reason's own when it has one, else the banner's command)."""
    heading = WEIGHTS_MISSING.removesuffix(".") + " (the turbulence preview still works)."
    lines = [heading, *(f"  {line}" for line in reason.splitlines())]
    if "Fix:" not in reason:
        lines.append(f"  Fix: restart the app with the weights available ({WEIGHTS_FIX}).")
    return "\n".join(lines)
