"""OSDFace Studio: the "Compare with other restorers" panel (widgets only; the work is in
``osdface.app.restorers``). ``app.py`` places the panel and wires it after Restore."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from osdface.app.requests import RequestError, RestoreRequest, ServiceUnavailableError
from osdface.app.restorers import BACKGROUND_CHOICES, OSDFACE_ON_BACKGROUND, RESTORER_CHOICES, RestorerStudio
from osdface.restorers.specs import RESTORERS

SLOTS = (*RESTORERS, OSDFACE_ON_BACKGROUND)
GPU_SECONDS = 120


@dataclass
class ComparePanel:
    restorers: gr.CheckboxGroup
    background: gr.Radio
    images: dict[str, gr.Image]
    table: gr.Markdown


def add_compare_panel() -> ComparePanel:
    """The panel's widgets, where it is called in the layout: nothing chosen by default."""
    with gr.Accordion("Compare with other restorers (same faces)", open=False, elem_id="compare-panel"):
        with gr.Row():
            restorers = gr.CheckboxGroup(
                RESTORER_CHOICES,
                value=[],
                label="Compare with (weights are downloaded on first use; CodeFormer is non-commercial)",
                elem_id="compare-restorers",
            )
            background = gr.Radio(
                BACKGROUND_CHOICES,
                value="none",
                label="Background (whole photos)",
                elem_id="compare-background",
            )
        with gr.Row(equal_height=True):
            images = {
                key: gr.Image(
                    label=RESTORERS[key].label if key in RESTORERS else "OSDFace, upscaled background",
                    type="filepath",
                    format="png",
                    interactive=False,
                    visible=False,
                    buttons=["download", "fullscreen"],
                    elem_id=f"compare-{key}",
                )
                for key in SLOTS
            }
        table = gr.Markdown(elem_id="compare-table")
    return ComparePanel(restorers, background, images, table)


def wire_compare_panel(
    panel: ComparePanel,
    after: gr.events.Dependency,
    inputs: list,
    restorer_studio: RestorerStudio,
    gpu: Callable,
    new_folder: Callable,
    upload_path: Callable,
    concurrency_id: str | None = None,
) -> None:
    """Run the comparison once Restore succeeded; ``inputs``: image, mode, turbulence,
    propagation length, seed, colour fix, metrics. API: ``/compare``. ``concurrency_id``: the
    group whose limit it shares (app.py's restorations: it runs restorers as heavy as Restore)."""

    @gpu(duration=GPU_SECONDS)
    def compare_on_gpu(job):
        return restorer_studio.run(job)

    # The docstring is the API's and the MCP tool's description (one line per argument, see app.py).
    def compare(
        image: dict | str | None,
        mode: str,
        turbulence: bool,
        propagation_length: float,
        seed: int,
        color_fix: str,
        restorers: list[str] | None,
        background: str | None,
        metrics: bool = True,
    ) -> list:
        """Restore the same faces with other face restorers (GFPGAN, RestoreFormer, CodeFormer) and/or paste OSDFace's on an enlarged background, to compare with OSDFace.

        Args:
            image: the photo, or a 512x512 FFHQ-aligned face (PNG, JPEG or WebP; for MCP an http(s) URL or a data: URI).
            mode: "photo" finds every face, restores it and pastes it back; "aligned" restores the image as one aligned face.
            turbulence: degrade the image with simulated atmospheric turbulence before restoring it.
            propagation_length: the turbulence's propagation length in metres, 20000 to 40000 (longer is blurrier).
            seed: the seed of the turbulence (the same seed gives the same result).
            color_fix: match the input's colours: "none", "adain" or "wavelet".
            restorers: the other restorers to run: "gfpgan", "restoreformer" and/or "codeformer" (CodeFormer: non-commercial licence).
            background: how to enlarge the photo behind the faces: "none", "lanczos", "realesrgan-x2" or "realesrgan-x4".
            metrics: add the quality metrics of each restorer's faces to the table (as under the page's results).

        Returns:
            a PNG image per other restorer and one of OSDFace on the enlarged background (None when not run), and a table of times, identity scores and quality metrics (Markdown).
        """
        try:
            request = RestoreRequest(
                image=upload_path(image),
                mode=mode,
                turbulence=bool(turbulence),
                propagation_length=propagation_length,
                seed=seed,
                color_fix=color_fix,
                metrics=bool(metrics),
            )
            job = restorer_studio.prepare(request, restorers or [], background or "none")
            if job is None:
                return [gr.Image(value=None, visible=False) for _ in SLOTS] + [""]
            outcome = restorer_studio.finish(job, compare_on_gpu(job), new_folder())
        except (RequestError, ServiceUnavailableError) as exc:
            raise gr.Error(html.escape(str(exc), quote=False), duration=None, print_exception=False) from exc
        updates = [
            gr.Image(value=str(outcome.paths[key]), label=outcome.labels[key], visible=True)
            if key in outcome.paths
            else gr.Image(value=None, visible=False)
            for key in SLOTS
        ]
        return [*updates, outcome.markdown]

    after.success(
        compare,
        inputs=[*inputs[:-1], panel.restorers, panel.background, inputs[-1]],
        outputs=[*panel.images.values(), panel.table],
        api_name="compare",
        preprocess=False,
        show_progress_on=[panel.table],
        concurrency_id=concurrency_id,
    )
