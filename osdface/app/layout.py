"""The page's layout for ``app.py``: the input and output widgets, the examples, the banner,
and the toggles that show optional outputs. UI only, like ``app.py`` and ``restorers_panel.py``.

The restore endpoint's inputs are the fields of ``osdface.app.requests.RestoreRequest``, in its
order; its outputs are named here once, in ``RestoreWidgets`` (with the one mapping from a
``RestoreOutcome`` to their values).
"""

from __future__ import annotations

import html
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import gradio as gr

from osdface.app.models import Part
from osdface.app.requests import (
    DEFAULT_PROPAGATION_LENGTH,
    MODE_ALIGNED,
    MODE_PHOTO,
    PROPAGATION_LENGTH_RANGE,
    RestoreRequest,
)
from osdface.app.results import RestoreOutcome
from osdface.app.service import Studio
from osdface.app.text import (
    ABLATION_NOTE,
    CPU_SECONDS_PER_FACE,
    RESTORE_UNAVAILABLE,
    SHARE_NOTE,
    SLIDER_HEIGHT,
    WEIGHTS_FIX,
    WEIGHTS_MISSING,
)

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"  # the repository's (the Space's) examples/


@dataclass(frozen=True)
class Example:
    label: str
    request: RestoreRequest  # ``image``: a file name in examples/; its fields in the widgets' order


EXAMPLES = [
    Example(
        "Aligned face, blurred",
        RestoreRequest("grace_hopper_aligned_classic.jpg", MODE_ALIGNED, ablation=True),
    ),
    Example(
        "Aligned face + turbulence",
        RestoreRequest("astronaut_aligned.jpg", MODE_ALIGNED, turbulence=True, ablation=True),
    ),
    Example(
        "Turbulent face",
        RestoreRequest("astronaut_aligned_turbulence.jpg", MODE_ALIGNED, color_fix="wavelet"),
    ),
    Example("Whole photo, blurred", RestoreRequest("grace_hopper_classic.jpg")),
    Example(
        "Whole photo + 40 km turbulence",
        RestoreRequest(
            "astronaut.jpg",
            turbulence=True,
            propagation_length=40000,
            seed=1,
            ablation=True,
            color_fix="adain",
        ),
    ),
]


def _path_or_none(path: Path | None) -> str | None:
    return None if path is None else str(path)


@dataclass
class RestoreWidgets:
    """The restore endpoint's output components, by name (in the order of its API)."""

    input: gr.Image
    turbulent: gr.Image
    restored: gr.Image
    without_vre: gr.Image
    slider: gr.ImageSlider
    gallery: gr.Gallery
    timing: gr.Markdown
    identity: gr.Markdown
    # The quality metrics (after the others: the API's outputs keep their positions).
    metrics: gr.JSON
    input_scores: gr.Markdown
    turbulent_scores: gr.Markdown
    restored_scores: gr.Markdown
    without_scores: gr.Markdown

    def components(self) -> list:
        return [getattr(self, f.name) for f in fields(self)]

    def values(self, outcome: RestoreOutcome) -> dict:
        """A ``RestoreOutcome`` as {component: value} (paths as strings): the one place where
        results meet widgets."""
        return {
            self.input: str(outcome.input),
            self.turbulent: _path_or_none(outcome.turbulent_input),
            self.restored: str(outcome.restored),
            self.without_vre: _path_or_none(outcome.without_vre),
            self.slider: (str(outcome.slider[0]), str(outcome.slider[1])),
            self.gallery: [(str(path), caption) for path, caption in outcome.gallery],
            self.timing: outcome.timing_markdown,
            self.identity: outcome.identity_markdown,
            self.metrics: outcome.scores_json,
            self.input_scores: outcome.scores_markdown.get("input", ""),
            self.turbulent_scores: outcome.scores_markdown.get("turbulent_input", ""),
            self.restored_scores: outcome.scores_markdown.get("osdface", ""),
            self.without_scores: outcome.scores_markdown.get("without_vre", ""),
        }


def banner_html(studio: Studio, hub_note: str | None = None) -> str:
    """The red banner of a start without the model: every missing source, the flags to fix it."""
    reason = "\n".join(part for part in (hub_note, studio.models.why_missing(Part.PIPELINE)) if part)
    return (
        f'<div class="osd-banner" role="alert" id="weights-banner"><strong>{WEIGHTS_MISSING}</strong><br>'
        f'<span class="osd-reason">{html.escape(reason, quote=False)}</span><br>'
        "The turbulence preview below still works; <em>Restore</em> is off until the app is "
        f"restarted with the weights available (<code>{WEIGHTS_FIX}</code>).</div>"
    )


def share_note(demo: gr.Blocks) -> None:
    """The note that the page is public, shown only where the share link exists: Gradio makes the
    link in launch, after the page is built, and may fail to (offline, a blocked tunnel; the
    app then stays local), so each page load asks."""
    note = gr.Markdown(SHARE_NOTE, elem_id="share-note", elem_classes="osd-notes", visible=False)
    demo.load(
        lambda: gr.Markdown(visible=demo.share_url is not None),
        outputs=note,
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )


def gpu_banner_html(studio: Studio) -> str | None:
    """The banner of a GPU the models cannot use (None when there is none): what was found (the
    driver's CUDA version, the torch build's), the fix, and that restoring runs on the CPU."""
    problem = studio.models.gpu_problem
    if problem is None:
        return None
    return (
        f'<div class="osd-banner" role="alert" id="gpu-banner"><strong>{html.escape(problem.summary)}</strong><br>'
        f'<span class="osd-reason">{html.escape(problem.reason, quote=False)}</span><br>'
        f"<strong>Fix:</strong> {html.escape(problem.fix, quote=False)}<br>"
        f"Restoring still works here, at CPU speed (about {CPU_SECONDS_PER_FACE} s a face); restart the "
        "app after the fix. <code>osdface doctor</code> prints the same diagnosis.</div>"
    )


def input_widgets(studio: Studio):
    """The input column and the settings column; returns the restore inputs (in the handler's
    order), the two buttons, and the widgets whose changes show or hide others."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            image = gr.Image(
                label="Input photo or face",
                sources=["upload", "webcam", "clipboard"],
                type="filepath",
                height=440,
                elem_id="input-image",
            )
            color_fix = gr.Radio(
                [("None", "none"), ("AdaIN", "adain"), ("Wavelet", "wavelet")],
                value="none",
                label="Color fix (match the input's colours)",
            )
            run = gr.Button(
                "Restore" if studio.available else RESTORE_UNAVAILABLE,
                variant="primary",
                size="lg",
                elem_id="restore-button",
                interactive=studio.available,
            )
        with gr.Column(scale=4):
            mode = gr.Radio(**mode_choices(studio), label="Mode", elem_id="mode")
            with gr.Group():
                turbulence = gr.Checkbox(
                    label="Atmospheric turbulence: degrade the input first", value=False, elem_id="turbulence"
                )
                low, high = PROPAGATION_LENGTH_RANGE
                propagation_length = gr.Slider(
                    low, high, value=DEFAULT_PROPAGATION_LENGTH, step=1000, label="Propagation length (m)"
                )
                seed = gr.Number(value=0, precision=0, minimum=0, label="Seed (turbulence and VAE sample)")
            preview = gr.Button("Preview turbulence only", variant="secondary", elem_id="preview-button")
            with gr.Group():
                ablation = gr.Checkbox(
                    label="Compare without VRE (text-conditioned ablation)", value=False, elem_id="ablation"
                )
                prompt = gr.Textbox(
                    value="",
                    label="Prompt for the ablation",
                    placeholder="empty = null prompt",
                    max_lines=2,
                    visible=False,
                )
            metrics = gr.Checkbox(
                label="Quality metrics under each result (MUSIQ, NIQE; with turbulence also PSNR, SSIM, "
                "LPIPS, DISTS, Deg. against the clean face)",
                value=studio.settings.metrics,
                interactive=studio.settings.metrics,
                elem_id="metrics",
            )
    inputs = [image, mode, turbulence, propagation_length, seed, ablation, prompt, color_fix, metrics]
    shipped = [example for example in EXAMPLES if (EXAMPLES_DIR / example.request.image).is_file()]
    # Without the metrics switch (the last field): it is the user's, and disabled with --no-metrics,
    # where an example would tick it without turning the metrics on.
    gr.Examples(
        examples=[[str(EXAMPLES_DIR / e.request.image), *astuple(e.request)[1:-1]] for e in shipped],
        example_labels=[example.label for example in shipped],
        inputs=inputs[:-1],
        cache_examples=False,
        label="Examples (public-domain portraits; see examples/SOURCES.md)",
    )
    return inputs, run, preview, ablation, prompt, turbulence, mode


def mode_choices(studio: Studio) -> dict:
    """The mode radio's choices and value: without a face detector it starts on "Aligned face"
    and the whole-photo choice says why it is off."""
    photo_label = "Whole photo (find every face)"
    value = MODE_PHOTO
    if studio.available and studio.restorer is None:
        photo_label = "Whole photo: off, the face detector's weights are missing (see the note above)"
        value = MODE_ALIGNED
    return {
        "choices": [(photo_label, MODE_PHOTO), ("Aligned face (512x512, FFHQ)", MODE_ALIGNED)],
        "value": value,
    }


def output_widgets(show_gallery: bool = True) -> tuple[RestoreWidgets, gr.Column, gr.Column]:
    """The result row, the before/after slider, the gallery (``show_gallery``: the mode starts on
    whole photos, whose faces it shows) and the tables; returns the restore outputs and the
    columns of the without-VRE result and of the turbulent input (shown when those are on)."""
    with gr.Row(equal_height=True):
        output_kwargs = {
            "type": "filepath",
            "format": "png",
            "interactive": False,
            "buttons": ["download", "fullscreen"],
        }
        # Each result with its metrics table under it (osdface.app.scores).
        scores_kwargs = {"elem_classes": "osd-scores"}
        with gr.Column(min_width=160):
            out_input = gr.Image(label="Input", elem_id="out-input", **output_kwargs)
            input_scores = gr.Markdown(elem_id="scores-input", **scores_kwargs)
        with gr.Column(visible=False, min_width=160) as turbulent_column:
            out_turbulent = gr.Image(label="Turbulent input", elem_id="out-turbulent", **output_kwargs)
            turbulent_scores = gr.Markdown(elem_id="scores-turbulent", **scores_kwargs)
        with gr.Column(min_width=160):
            out_restored = gr.Image(label="OSDFace (VRE)", elem_id="out-restored", **output_kwargs)
            restored_scores = gr.Markdown(elem_id="scores-restored", **scores_kwargs)
        with gr.Column(visible=False, min_width=160) as without_column:
            out_without = gr.Image(label="OSDFace without VRE", elem_id="out-without", **output_kwargs)
            without_scores = gr.Markdown(elem_id="scores-without", **scores_kwargs)
            gr.Markdown(ABLATION_NOTE, elem_id="ablation-note", elem_classes="osd-notes")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            # A fixed height and "contain": the slider keeps the image's aspect ratio.
            slider = gr.ImageSlider(
                label="Before / after (OSDFace)",
                type="filepath",
                interactive=False,
                height=SLIDER_HEIGHT,
                elem_id="before-after",
            )
        with gr.Column(scale=1):
            gallery = gr.Gallery(
                label="Faces: before and after",
                visible=show_gallery,
                columns=3,
                object_fit="contain",
                height=300,
                interactive=False,
                elem_id="faces-gallery",
            )
            timing = gr.Markdown(label="Timing", elem_id="timing")
            identity = gr.Markdown(label="Identity", elem_id="identity")
            with gr.Accordion("Quality metrics as JSON (what the API returns)", open=False):
                metrics = gr.JSON(label="Metrics", elem_id="metrics-json")
    outputs = RestoreWidgets(
        out_input,
        out_turbulent,
        out_restored,
        out_without,
        slider,
        gallery,
        timing,
        identity,
        metrics,
        input_scores,
        turbulent_scores,
        restored_scores,
        without_scores,
    )
    return outputs, without_column, turbulent_column


def toggles(turbulence, turbulent_column, ablation, without_column, prompt, mode, gallery) -> None:
    """Show each optional output only when its setting is on."""
    private = {"api_visibility": "private", "queue": False}
    turbulence.change(lambda on: gr.Column(visible=on), turbulence, turbulent_column, **private)
    ablation.change(
        lambda on: (gr.Column(visible=on), gr.Textbox(visible=on)),
        ablation,
        [without_column, prompt],
        **private,
    )
    mode.change(lambda value: gr.Gallery(visible=value == MODE_PHOTO), mode, gallery, **private)


def after_restore(
    event, turbulence, turbulent_column, outputs: RestoreWidgets, compared: list, table
) -> None:
    """What a Restore leaves on the page beside its outputs. The turbulent column follows the
    switch again (the preview shows it whatever the switch says, and a Restore without turbulence
    returns no turbulent image). After an error only the OSDFace result shows "Error"
    (``show_progress_on``): every other output, and the comparison (``compared``: its images,
    hidden as when none is chosen; its ``table``), is cleared, so that no result of the previous
    run stands beside the error as if it were this one's."""
    private = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}
    event.then(lambda on: gr.Column(visible=on), turbulence, turbulent_column, **private)
    # The OSDFace result keeps its value: an update to it would take its "Error" away.
    stale = [component for component in outputs.components() if component is not outputs.restored]

    def clear() -> list:
        emptied = [gr.update(value="" if isinstance(c, gr.Markdown) else None) for c in stale]
        return [*emptied, *(gr.update(value=None, visible=False) for _ in compared), ""]

    event.failure(clear, outputs=[*stale, *compared, table], **private)
