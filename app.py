"""OSDFace Studio: the Gradio app (a Hugging Face Space, a local app, or a public link).

    python app.py [--share] [--host HOST] [--port PORT] [--weights REPO_OR_DIR]
                  [--base-model REPO_OR_DIR] [--device DEVICE] ...      (python app.py --help)

This file is the user interface only; the work is in ``osdface.app`` (``service.Studio``). Models load once,
at start-up (on a ZeroGPU Space: on the CPU, then moved to "cuda", which ZeroGPU defers). Only
the restoration holds a GPU, in a function decorated with ``@spaces.GPU`` whose duration grows
with the number of faces; off ZeroGPU that decorator does nothing, so this file runs unchanged
on any GPU or on the CPU.
"""

# ruff: noqa: E402 - start-up is timed from the first line, before the slow imports below.
import time  # isort: skip

STARTED = time.perf_counter()

# On ZeroGPU, `spaces` must be imported before anything initialises CUDA.
import spaces  # isort: skip

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import gradio as gr

from osdface.app.arguments import launch_message, parse_args
from osdface.app.clip_service import ClipStudio
from osdface.app.clip_tab import clip_widgets, wire_clip_tab
from osdface.app.layout import (
    RestoreWidgets,
    after_restore,
    banner_html,
    gpu_banner_html,
    input_widgets,
    output_widgets,
    share_note,
    toggles,
)
from osdface.app.rendering import note_markdown
from osdface.app.request_folders import CLEANUP_EVERY, KEEP_FOR, RequestFolders
from osdface.app.requests import (
    DEFAULT_PROPAGATION_LENGTH,
    MODE_PHOTO,
    RequestError,
    RestoreRequest,
    ServiceUnavailableError,
)
from osdface.app.restorers import RestorerStudio
from osdface.app.restorers_panel import add_compare_panel, wire_compare_panel
from osdface.app.service import Studio, start_studio
from osdface.app.text import (
    ABLATION_NOTE,  # noqa: F401 - part of the page's text, read by tests
    ABOUT,
    CPU_SECONDS_PER_FACE,
    CSS,
    GPU_SECONDS_PER_FACE,
    INTRO,
    SLIDER_HEIGHT,  # noqa: F401 - part of the page's text, read by tests
)
from osdface.app.uploads import upload_path
from osdface.runtime import progress

# Gradio's cache (uploads and the PNGs we return): every half hour, delete files over an hour old
# (RequestFolders removes the request folders at the same cadence).
CACHE_CLEANUP = (CLEANUP_EVERY, KEEP_FOR)
# The page's Restore, its comparison with other restorers, the Video tab and the agents'
# restore_faces share one limit of restorations at once (--concurrency), so that API and MCP
# calls cannot double the load on the GPU.
RESTORATIONS = "restorations"


# --------------------------------------------------------------------------- request handlers


@contextmanager
def _errors_for_the_user() -> Iterator[None]:
    """Requests the app cannot serve become a gr.Error with the reason and what to do;
    anything else is a bug and propagates (Gradio shows it as an error too)."""
    try:
        yield
    except (RequestError, ServiceUnavailableError) as exc:
        raise gr.Error(plain_message(str(exc)), duration=None, print_exception=False) from exc


def plain_message(text: str) -> str:
    """A message for the toast and for API clients alike: plain text, no HTML entities. The
    browser renders the toast as HTML, where a "<name>" would vanish as an unknown tag, so
    angle brackets become the look-alike quotation marks; line breaks are kept by the CSS."""
    return text.replace("<", "\u2039").replace(">", "\u203a")


def _stage_times(studio: Studio) -> progress.StageTimes:
    """The stage times behind the time-left estimate; hooks the pipeline to report its stages."""
    if studio.pipeline is None:
        return progress.StageTimes(CPU_SECONDS_PER_FACE)
    progress.attach(studio.pipeline)
    on_cpu = studio.device.type == "cpu"
    return progress.StageTimes(CPU_SECONDS_PER_FACE if on_cpu else GPU_SECONDS_PER_FACE)


def build_demo(studio: Studio, *, share: bool = False, hub_note: str | None = None) -> gr.Blocks:
    """The page and its endpoints (``restore`` and ``degrade``). ``share``: the page says it is
    served on a public link, once launch has made one; ``hub_note``: why the Hub was not used
    (shown in the banner)."""
    demo = gr.Blocks(title="OSDFace Studio: one-step diffusion face restoration", delete_cache=CACHE_CLEANUP)
    with demo:
        gr.Markdown(INTRO)
        if share:
            share_note(demo)
        if not studio.available:
            gr.HTML(banner_html(studio, hub_note))
        if gpu_banner := gpu_banner_html(studio):
            gr.HTML(gpu_banner)
        for summary, details in studio.status_notes():
            gr.Markdown(note_markdown(summary, details), elem_classes="osd-notes")
        restorer_studio = RestorerStudio(studio)
        clips = ClipStudio(studio, lambda: restorer_studio.restorers)
        with gr.Tab("Photo", id="photo-tab"):
            inputs, run, preview, ablation, prompt, turbulence, mode = input_widgets(studio)
            outputs, without_column, turbulent_column = output_widgets(show_gallery=mode.value == MODE_PHOTO)
            compare_panel = (
                add_compare_panel()
            )  # "Compare with other restorers" (osdface/app/restorers_panel.py)
        with gr.Tab("Video", id="video-tab"):
            clip = clip_widgets(clips)  # osdface/app/clip_tab.py
        with gr.Accordion("About OSDFace, VRE and the turbulence setting", open=False):
            gr.Markdown(ABOUT)
        restore_on_gpu = _restore_on_gpu(studio)
        folders = RequestFolders(demo.GRADIO_CACHE)
        restored = _wire_restore(demo, studio, restore_on_gpu, folders, run, inputs, outputs)
        _wire_compare(demo, restorer_studio, folders, compare_panel, restored, inputs)
        after_restore(
            restored,
            turbulence,
            turbulent_column,
            outputs,
            list(compare_panel.images.values()),
            compare_panel.table,
        )
        wire_clip_tab(
            clip,
            clips,
            spaces.GPU,
            folders.lease,
            lambda video: upload_path(video, demo.GRADIO_CACHE),
            _errors_for_the_user,
            concurrency_id=RESTORATIONS,
        )
        _wire_degrade(demo, studio, folders, preview, inputs, outputs, turbulent_column)
        _wire_agent_tools(demo, studio, restore_on_gpu, folders, default_mode=mode.value)
        toggles(turbulence, turbulent_column, ablation, without_column, prompt, mode, outputs.gallery)
    return demo


def _restore_on_gpu(studio: Studio):
    """``studio.run`` inside ``@spaces.GPU``: on ZeroGPU only this step holds a GPU, for a
    duration that grows with the number of faces."""

    @spaces.GPU(duration=studio.gpu_seconds)
    def restore_on_gpu(prepared):
        return studio.run(prepared)

    return restore_on_gpu


def _wire_restore(
    demo: gr.Blocks,
    studio: Studio,
    restore_on_gpu,
    folders: RequestFolders,
    run: gr.Button,
    inputs: list,
    outputs: RestoreWidgets,
):
    """The Restore button and the ``restore`` endpoint; returns its event (for what follows)."""
    stage_times = _stage_times(studio)

    # The docstring is the API's and the MCP tool's description: Gradio reads the text before
    # "Args:" as the description, each "name: text" line as that argument's (one line each: a
    # continuation line is dropped) and joins the lines after "Returns:" with commas.
    def restore(
        image: dict | str | None,
        mode: str,
        turbulence: bool,
        propagation_length: float,
        seed: int,
        ablation: bool,
        prompt: str,
        color_fix: str,
        metrics: bool = True,
        bar=gr.Progress(),
    ) -> dict:
        """Restore the faces in a photo with OSDFace, one-step diffusion conditioned on the face itself (VRE).

        Optionally degrades the photo first with simulated atmospheric turbulence, and restores it
        a second time without VRE (the text-conditioned ablation) to compare. The page's endpoint,
        with all its outputs: restore_faces returns the restored image alone.

        Args:
            image: the photo, or a 512x512 FFHQ-aligned face (PNG, JPEG or WebP; for MCP an http(s) URL or a data: URI).
            mode: "photo" finds every face, restores it and pastes it back; "aligned" restores the image as one aligned face.
            turbulence: degrade the image with simulated atmospheric turbulence before restoring it.
            propagation_length: the turbulence's propagation length in metres, 20000 to 40000 (longer is blurrier).
            seed: the seed of the turbulence and of the VAE sample (the same seed gives the same result).
            ablation: also restore without VRE, conditioned on a text prompt instead (slower).
            prompt: the ablation's text prompt ("" is the null prompt).
            color_fix: match the input's colours: "none", "adain" or "wavelet".
            metrics: score every result with quality metrics (MUSIQ, NIQE; with turbulence also PSNR, SSIM, LPIPS, DISTS and Deg. against the clean face).

        Returns:
            the input, the turbulent input (or None), the OSDFace result and the result without VRE (or None) as PNG images, the before/after pair, the faces before and after (whole photos only), the timing table and the identity scores (Markdown), the quality metrics as JSON (or None), and the metrics table under each result (Markdown).
        """
        tracker = progress.RunProgress(lambda fraction, text: bar(fraction, desc=text), stage_times)
        with _errors_for_the_user(), progress.tracking(tracker):
            request = RestoreRequest(
                upload_path(image, demo.GRADIO_CACHE),
                mode,
                bool(turbulence),
                propagation_length,
                seed,
                bool(ablation),
                prompt or "",
                color_fix,
                bool(metrics),
            )
            tracker.step("read")
            prepared = studio.prepare(request)
            tracker.plan(prepared.face_count, 2 if request.ablation else 1, paste=request.mode == MODE_PHOTO)
            result = restore_on_gpu(prepared)
            tracker.step("write")
            outcome = studio.finish(prepared, result, folders.new())
        return outputs.values(outcome)

    # The image input is not preprocessed: the file goes to the handler unread, so that its
    # pixel count is checked from the header before anything decodes it.
    return run.click(
        restore,
        inputs=inputs,
        outputs=outputs.components(),
        api_name="restore",
        preprocess=False,
        # On failure only the main result shows "Error", not every output.
        show_progress_on=[outputs.restored],
        concurrency_id=RESTORATIONS,
    )


def _wire_degrade(
    demo: gr.Blocks,
    studio: Studio,
    folders: RequestFolders,
    preview: gr.Button,
    inputs: list,
    outputs: RestoreWidgets,
    turbulent_column,
):
    """The turbulence preview and the ``degrade`` endpoint (they work without the weights)."""

    def degrade(image: dict | str | None, propagation_length: float, seed: int) -> dict:
        """Degrade an image with simulated atmospheric turbulence only, without restoring it (works without the model weights).

        The page's endpoint, with a note: simulate_turbulence returns the image alone.

        Args:
            image: the photo or face to degrade (PNG, JPEG or WebP; for MCP an http(s) URL or a data: URI).
            propagation_length: the propagation length in metres, 20000 to 40000 (longer is blurrier).
            seed: the seed of the random turbulence (the same seed gives the same result).

        Returns:
            the turbulent copy as a PNG image, and a note with the settings and the time taken.
        """
        with _errors_for_the_user():
            path, note = studio.degrade(
                upload_path(image, demo.GRADIO_CACHE),
                propagation_length,
                seed,
                folders.new(),
            )
        return {outputs.turbulent: str(path), outputs.timing: note}

    image, _mode, _turbulence, propagation_length, seed = inputs[:5]
    preview.click(
        degrade,
        inputs=[image, propagation_length, seed],
        outputs=[outputs.turbulent, outputs.timing],
        api_name="degrade",
        preprocess=False,
        show_progress_on=[outputs.turbulent],
    ).success(
        # the turbulent image's column (with its metrics) shows even when the checkbox is off
        lambda: gr.Column(visible=True),
        outputs=turbulent_column,
        api_visibility="private",
        queue=False,
    )


def _wire_agent_tools(
    demo: gr.Blocks, studio: Studio, restore_on_gpu, folders: RequestFolders, default_mode: str
) -> None:
    """``restore_faces`` and ``simulate_turbulence``: the restoration and the turbulence as
    endpoints without widgets, typed by their hints (``gr.api``), each with one image out.

    They exist for MCP (``python app.py --mcp``): Gradio's MCP server answers a queued endpoint
    with several outputs, like ``restore``'s eight, as one string (gradio/mcp.py,
    ``_execute_tool_without_progress``), so an agent would get no image from ``restore``; with
    one output it gets the PNG itself and its URL."""

    # As in app.py's other handlers, the docstrings are the tools' descriptions (one line per
    # argument). Files come unprocessed (gr.api), as Gradio's file payload; upload_path takes only
    # files in Gradio's upload folder (gr.api passes a bare string through unchecked).
    def restore_faces(
        image: gr.FileData,
        mode: Literal["photo", "aligned"] = default_mode,
        turbulence: bool = False,
        propagation_length: float = DEFAULT_PROPAGATION_LENGTH,
        seed: int = 0,
        color_fix: Literal["none", "adain", "wavelet"] = "none",
    ) -> gr.FileData:
        """Restore the faces in a photo with OSDFace (one-step diffusion, CVPR 2025) and return the restored image as a PNG.

        Args:
            image: the photo, or a 512x512 FFHQ-aligned face: an http(s) URL or a data: URI of a PNG, JPEG or WebP.
            mode: "photo" finds every face, restores it and pastes it back into the photo; "aligned" restores the image as one aligned face.
            turbulence: first degrade the image with simulated atmospheric turbulence, then restore that.
            propagation_length: the turbulence's propagation length in metres, 20000 to 40000 (longer is blurrier).
            seed: the seed of the turbulence and of the VAE sample (the same seed gives the same result).
            color_fix: match the input's colours: "none", "adain" or "wavelet".
        """
        with _errors_for_the_user():
            request = RestoreRequest(
                upload_path(image, demo.GRADIO_CACHE),
                mode,
                bool(turbulence),
                propagation_length,
                seed,
                False,
                "",
                color_fix,
                metrics=False,
            )
            prepared = studio.prepare(request)
            # Only the image returned: Gradio's delete_cache would never remove the others.
            restored = studio.write_restored(restore_on_gpu(prepared), folders.new())
        return gr.FileData(path=str(restored), orig_name="restored.png")

    def simulate_turbulence(
        image: gr.FileData, propagation_length: float = DEFAULT_PROPAGATION_LENGTH, seed: int = 0
    ) -> gr.FileData:
        """Degrade an image with simulated atmospheric turbulence (blur and warping over a long optical path) and return it as a PNG.

        Args:
            image: the photo or face to degrade: an http(s) URL or a data: URI of a PNG, JPEG or WebP.
            propagation_length: the propagation length in metres, 20000 to 40000 (longer is blurrier).
            seed: the seed of the random turbulence (the same seed gives the same result).
        """
        with _errors_for_the_user():
            path, _note = studio.degrade(
                upload_path(image, demo.GRADIO_CACHE),
                propagation_length,
                seed,
                folders.new(),
            )
        return gr.FileData(path=str(path), orig_name="turbulent.png")

    gr.api(restore_faces, api_name="restore_faces", concurrency_id=RESTORATIONS)
    gr.api(simulate_turbulence, api_name="simulate_turbulence")


def _wire_compare(
    demo: gr.Blocks, restorer_studio: RestorerStudio, folders: RequestFolders, panel, restored, inputs
) -> None:
    """The "Compare with" panel runs after a successful Restore, on the same request settings."""
    image, mode, turbulence, propagation_length, seed, _ablation, _prompt, color_fix, metrics = inputs
    wire_compare_panel(
        panel,
        restored,
        [image, mode, turbulence, propagation_length, seed, color_fix, metrics],
        restorer_studio,
        spaces.GPU,
        folders.new,
        lambda image: upload_path(image, demo.GRADIO_CACHE),
        concurrency_id=RESTORATIONS,
    )


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> None:
    settings, launch = parse_args(argv)
    studio, hub_note = start_studio(settings)
    if hub_note:
        print(f"* {hub_note}", flush=True)
    if studio.models.gpu_problem:
        print(f"* {studio.models.gpu_problem.message()}", flush=True)
    for line in studio.load_report_lines():
        print(f"* {line}", flush=True)
    demo = build_demo(studio, share=launch.share, hub_note=hub_note)
    on_gpu = studio.available and studio.device.type == "cuda"  # (no torch import without a model)
    concurrency = launch.concurrency or (2 if on_gpu or settings.zero_gpu else 1)
    demo.queue(max_size=launch.queue_size, default_concurrency_limit=concurrency)
    # quiet: Gradio's own lines would tell the user to edit launch(); ours name the --share flag.
    demo.launch(
        share=launch.share,
        server_name=launch.host,
        server_port=launch.port,
        ssr_mode=False,
        max_file_size=launch.max_file_size,
        show_error=True,
        theme=gr.themes.Soft(),
        css=CSS,
        quiet=True,
        prevent_thread_lock=True,
        auth=list(launch.auth) or None,
        auth_message="OSDFace Studio: this app asks for a user name and password." if launch.auth else None,
        # Always a bool: left None, Gradio would read GRADIO_MCP_SERVER itself, past parse_args's
        # refusal of MCP with a password.
        mcp_server=launch.mcp,
    )
    print(
        launch_message(
            demo.local_url,
            demo.share_url,
            launch.share,
            time.perf_counter() - STARTED,
            len(launch.auth),
            mcp=launch.mcp,
            # Where Gradio listens: --host, else GRADIO_SERVER_NAME, else 127.0.0.1.
            host=demo.server_name,
            port=demo.server_port,
        ),
        flush=True,
    )
    demo.block_thread()


if __name__ == "__main__":
    main()
