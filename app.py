"""OSDFace Studio: the Gradio app (a Hugging Face Space, a local app, or a public link).

    python app.py [--share] [--host HOST] [--port PORT] [--weights REPO_OR_DIR]
                  [--base-model REPO_OR_DIR] [--device DEVICE] ...      (python app.py --help)

This file is the user interface only; the work is in ``osdface.app_logic``. Models load once,
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

import argparse
import html
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from osdface import progress
from osdface.app_logic import (
    CPU_SECONDS_PER_FACE,
    DEFAULT_MAX_FACES,
    DEFAULT_MAX_MEGAPIXELS,
    DEFAULT_PROPAGATION_LENGTH,
    MODE_ALIGNED,
    MODE_PHOTO,
    PROPAGATION_LENGTH_RANGE,
    RequestError,
    RestoreRequest,
    ServiceUnavailableError,
    Studio,
    StudioSettings,
    note_markdown,
)
from osdface.startup import load_studio

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
PAPER_URL = "https://arxiv.org/abs/2411.17163"
CODE_URL = "https://github.com/jkwang28/OSDFace"
# Gradio's cache (uploads and the PNGs we return): every half hour, delete files over an hour old.
CACHE_CLEANUP = (1800, 3600)

INTRO = f"""
# OSDFace Studio
**One-step diffusion face restoration** (OSDFace, CVPR 2025) · [paper]({PAPER_URL}) · [authors' code]({CODE_URL})

Upload a degraded portrait (or a whole photo with several faces) and press **Restore**. Switch on
**atmospheric turbulence** to degrade it first as a long-range camera would see it, and
**compare without VRE** to see what the visual representation embedder adds.
"""

ABLATION_NOTE = (
    "Not the paper's ablation: this conditions the OSDFace LoRA UNet on SD 2.1's text encoder, while "
    'the paper\'s "w/o VRE" model was trained that way; ours is not retrained, so do not read it '
    "as the paper's ablation numbers."
)
ABOUT = f"""
**OSDFace** restores a face in a *single* diffusion step. The degraded face is encoded by
Stable Diffusion 2.1's VAE, the UNet (fine-tuned with LoRA) predicts the noise once at
timestep 399, and the clean latent is decoded: about 0.1 s per face on a GPU instead of the tens
of steps of earlier diffusion restorers.

**VRE, the visual representation embedder.** Instead of a text prompt, the UNet's
cross-attention is conditioned on what the degraded face itself looks like: a VQ tokenizer
trained on faces turns the input into 77 visual tokens from a face codebook, which a small
projection maps into SD 2.1's prompt space. **Without VRE** the same
one-step model is conditioned on SD 2.1's text encoder instead, with your prompt or the empty
(null) prompt, and so knows much less about the face. {ABLATION_NOTE}

**Atmospheric turbulence.** Faces seen over a long horizontal path (here 20 to 40 km through
air of constant strength Cn² = 1e-16 m^-2/3, a 0.2 m aperture) are warped by random,
spatially varying tilts and smeared by short-exposure blur. The simulator follows Chimitt &
Chan (2020); the longer the path, the stronger both effects. OSDFace was not trained on such
images: this is a test of how far it generalises.

**Identity scores** compare ArcFace embeddings of each face with the clean input face: a
restoration can look sharp and still drift away from the person.

Paper: Jingkai Wang et al., *OSDFace: One-Step Diffusion Model for Face Restoration*, CVPR 2025,
[arXiv:2411.17163]({PAPER_URL}). Code and weights: [{CODE_URL}]({CODE_URL}).
"""

SHARE_NOTE = (
    "**This page is public:** it is served on a gradio.live share link that anyone who has the link "
    "can open, for up to 1 week (Gradio's limit, best effort) or until this app stops."
)
RESTORE_UNAVAILABLE = "Restore is off: the model weights are missing (see the banner above)"
SLIDER_HEIGHT = 512
# Prior for the time-left estimate until stages are measured (a GPU takes well under a second).
GPU_SECONDS_PER_FACE = 0.2

CSS = """
.osd-banner { border: 2px solid #d9534f; background: rgba(217, 83, 79, 0.10); border-radius: 8px;
              padding: 12px 16px; }
.osd-banner strong { color: #d9534f; }
.osd-banner .osd-reason { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 0.9em; }
.osd-notes { font-size: 0.92em; opacity: 0.9; }
/* Messages are plain text with one item a line: keep the lines in the toast. */
[data-testid="toast-text"] { white-space: pre-line; }
/* The before/after slider shows the whole image at its aspect ratio. */
#before-after img { object-fit: contain; }
"""

# (file, mode, turbulence, propagation length, seed, ablation, prompt, colour fix), label
EXAMPLES = [
    (
        ("grace_hopper_aligned_classic.jpg", MODE_ALIGNED, False, 30000, 0, True, "", "none"),
        "Aligned face, blurred",
    ),
    (("astronaut_aligned.jpg", MODE_ALIGNED, True, 30000, 0, True, "", "none"), "Aligned face + turbulence"),
    (
        ("astronaut_aligned_turbulence.jpg", MODE_ALIGNED, False, 30000, 0, False, "", "wavelet"),
        "Turbulent face",
    ),
    (("grace_hopper_classic.jpg", MODE_PHOTO, False, 30000, 0, False, "", "none"), "Whole photo, blurred"),
    (("astronaut.jpg", MODE_PHOTO, True, 40000, 1, True, "", "adain"), "Whole photo + 40 km turbulence"),
]


@dataclass(frozen=True)
class LaunchSettings:
    """How the server runs (the models' settings are ``StudioSettings``).

    queue_size: requests waiting beyond this are refused with "queue is full".
    concurrency: restorations running at once (None: 1 on the CPU, 2 on a GPU).
    """

    share: bool = False
    host: str | None = None
    port: int | None = None
    queue_size: int = 16
    concurrency: int | None = None
    max_file_size: str = "30mb"


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


def _upload_path(value: object) -> str | None:
    """The image input's value (not preprocessed, so that the pixel limit is checked before
    anything decodes the file): None, a path, or Gradio's file dict."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("path")
    if isinstance(value, str | os.PathLike):
        return str(value)
    raise gr.Error(f"Unexpected image input of type {type(value).__name__}: upload an image file.")


def _request_folder(cache_dir: str) -> Path:
    """A new folder for one request's files, inside Gradio's cache, so that Gradio serves the
    files and ``delete_cache`` removes them."""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="osdface-", dir=cache_dir))


def _path_or_none(path: Path | None) -> str | None:
    return None if path is None else str(path)


def build_demo(studio: Studio, *, share: bool = False, hub_note: str | None = None) -> gr.Blocks:
    """The page and its endpoints (``restore`` and ``degrade``). ``share``: the page says it is
    served on a public link; ``hub_note``: why the Hub was not used (shown in the banner)."""

    @spaces.GPU(duration=studio.gpu_seconds)
    def restore_on_gpu(prepared):
        return studio.run(prepared)

    stage_times = progress.StageTimes(CPU_SECONDS_PER_FACE)
    if studio.pipeline is not None:
        progress.attach(studio.pipeline)
        if studio.device.type != "cpu":
            stage_times = progress.StageTimes(GPU_SECONDS_PER_FACE)
    demo = gr.Blocks(title="OSDFace Studio: one-step diffusion face restoration", delete_cache=CACHE_CLEANUP)

    def restore(
        image, mode, turbulence, propagation_length, seed, ablation, prompt, color_fix, bar=gr.Progress()
    ):
        """Restore the faces of an image with OSDFace (VRE), optionally after simulated turbulence
        and alongside the text-conditioned ablation. Returns PNG paths (input, turbulent input or
        None, OSDFace, without VRE or None), the before/after pair, the face gallery, and the
        timing and identity tables (Markdown)."""
        tracker = progress.RunProgress(lambda fraction, text: bar(fraction, desc=text), stage_times)
        with _errors_for_the_user(), progress.tracking(tracker):
            request = RestoreRequest(
                image=_upload_path(image),
                mode=mode,
                turbulence=bool(turbulence),
                propagation_length=propagation_length,
                seed=seed,
                ablation=bool(ablation),
                prompt=prompt or "",
                color_fix=color_fix,
            )
            tracker.step("read")
            prepared = studio.prepare(request)
            tracker.plan(prepared.face_count, 2 if request.ablation else 1, paste=request.mode == MODE_PHOTO)
            result = restore_on_gpu(prepared)
            tracker.step("write")
            outcome = studio.finish(prepared, result, _request_folder(demo.GRADIO_CACHE))
        return (
            str(outcome.input),
            _path_or_none(outcome.turbulent_input),
            str(outcome.restored),
            _path_or_none(outcome.without_vre),
            (str(outcome.slider[0]), str(outcome.slider[1])),
            [(str(path), caption) for path, caption in outcome.gallery],
            outcome.timing_markdown,
            outcome.identity_markdown,
        )

    def degrade(image, propagation_length, seed):
        """Only the turbulence simulator (works without the model weights): the turbulent copy
        of the image as a PNG path, and a note."""
        with _errors_for_the_user():
            path, note = studio.degrade(
                _upload_path(image), propagation_length, seed, _request_folder(demo.GRADIO_CACHE)
            )
        return str(path), note

    with demo:
        gr.Markdown(INTRO)
        if share:
            gr.Markdown(SHARE_NOTE, elem_id="share-note", elem_classes="osd-notes")
        if not studio.available:
            gr.HTML(banner_html(studio, hub_note))
        for summary, details in studio.status_notes():
            gr.Markdown(note_markdown(summary, details), elem_classes="osd-notes")
        inputs, run, preview, ablation, prompt, turbulence, mode = _input_widgets(studio)
        outputs, out_turbulent, out_without, without_column = _output_widgets()
        with gr.Accordion("About OSDFace, VRE and the turbulence setting", open=False):
            gr.Markdown(ABOUT)

        # The image input is not preprocessed: the file goes to the handler unread, so that its
        # pixel count is checked from the header before anything decodes it.
        run.click(
            restore,
            inputs=inputs,
            outputs=outputs,
            api_name="restore",
            preprocess=False,
            # On failure only the main result shows "Error", not every output.
            show_progress_on=[outputs[2]],
        )
        preview.click(
            degrade,
            inputs=[inputs[0], inputs[3], inputs[4]],
            outputs=[out_turbulent, outputs[6]],
            api_name="degrade",
            preprocess=False,
            show_progress_on=[out_turbulent],
        ).success(
            lambda: gr.Image(visible=True), outputs=out_turbulent, api_visibility="private", queue=False
        )
        _toggles(turbulence, out_turbulent, ablation, without_column, prompt, mode, outputs[5])
    return demo


def banner_html(studio: Studio, hub_note: str | None = None) -> str:
    """The red banner of a start without the model: every missing source, the flags to fix it."""
    reason = "\n".join(part for part in (hub_note, studio.load_error) if part)
    return (
        '<div class="osd-banner" role="alert" id="weights-banner"><strong>Restoring is unavailable: '
        "the model weights could not be loaded.</strong><br>"
        f'<span class="osd-reason">{html.escape(reason, quote=False)}</span><br>'
        "The turbulence preview below still works; <em>Restore</em> is off until the app is "
        "restarted with the weights available (<code>python app.py --weights FOLDER_OR_REPO "
        "--base-model FOLDER_OR_REPO</code>).</div>"
    )


def _input_widgets(studio: Studio):
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
    inputs = [image, mode, turbulence, propagation_length, seed, ablation, prompt, color_fix]
    gr.Examples(
        examples=[
            [str(EXAMPLES_DIR / row[0]), *row[1:]] for row, _ in EXAMPLES if (EXAMPLES_DIR / row[0]).is_file()
        ],
        example_labels=[label for row, label in EXAMPLES if (EXAMPLES_DIR / row[0]).is_file()],
        inputs=inputs,
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


def _output_widgets():
    """The result row, the before/after slider, the gallery and the tables; returns the
    restore outputs (in the handler's order) and the widgets toggled by the settings."""
    with gr.Row(equal_height=True):
        output_kwargs = {
            "type": "filepath",
            "format": "png",
            "interactive": False,
            "buttons": ["download", "fullscreen"],
        }
        out_input = gr.Image(label="Input", elem_id="out-input", **output_kwargs)
        out_turbulent = gr.Image(
            label="Turbulent input", elem_id="out-turbulent", visible=False, **output_kwargs
        )
        out_restored = gr.Image(label="OSDFace (VRE)", elem_id="out-restored", **output_kwargs)
        with gr.Column(visible=False, min_width=160) as without_column:
            out_without = gr.Image(label="OSDFace without VRE", elem_id="out-without", **output_kwargs)
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
                columns=3,
                object_fit="contain",
                height=300,
                interactive=False,
                elem_id="faces-gallery",
            )
            timing = gr.Markdown(label="Timing", elem_id="timing")
            identity = gr.Markdown(label="Identity", elem_id="identity")
    outputs = [out_input, out_turbulent, out_restored, out_without, slider, gallery, timing, identity]
    return outputs, out_turbulent, out_without, without_column


def _toggles(turbulence, out_turbulent, ablation, without_column, prompt, mode, gallery) -> None:
    """Show each optional output only when its setting is on."""
    private = {"api_visibility": "private", "queue": False}
    turbulence.change(lambda on: gr.Image(visible=on), turbulence, out_turbulent, **private)
    ablation.change(
        lambda on: (gr.Column(visible=on), gr.Textbox(visible=on)),
        ablation,
        [without_column, prompt],
        **private,
    )
    mode.change(lambda value: gr.Gallery(visible=value == MODE_PHOTO), mode, gallery, **private)


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None = None) -> tuple[StudioSettings, LaunchSettings]:
    parser = argparse.ArgumentParser(
        description="OSDFace Studio: the Gradio app for one-step diffusion face restoration."
    )
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live link")
    parser.add_argument(
        "--host", default=None, help="address to listen on (default: 127.0.0.1, or GRADIO_SERVER_NAME)"
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860, or GRADIO_SERVER_PORT)")
    parser.add_argument(
        "--weights",
        default=None,
        help="OSDFace weights: Hub repo id or folder (default: OSDFACE_WEIGHTS or alecccdd/OSDFace)",
    )
    parser.add_argument(
        "--base-model",
        default=None,
        help="SD 2.1 base: Hub repo id or folder (default: OSDFACE_BASE_MODEL or Manojb/stable-diffusion-2-1-base)",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument(
        "--facexlib-dir",
        default=None,
        help="folder with facexlib's weight files (default: OSDFACE_FACEXLIB_DIR, the cache, then a download)",
    )
    parser.add_argument(
        "--queue-size", type=int, default=16, help="requests that may wait; more are refused (default: 16)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="restorations at once (default: 1 on CPU, 2 on GPU)"
    )
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=DEFAULT_MAX_MEGAPIXELS,
        help=f"refuse larger images (default: {DEFAULT_MAX_MEGAPIXELS:g})",
    )
    parser.add_argument(
        "--max-faces",
        type=int,
        default=DEFAULT_MAX_FACES,
        help=f"restore at most this many faces per photo, the largest (default: {DEFAULT_MAX_FACES})",
    )
    parser.add_argument("--max-file-size", default="30mb", help="largest upload, e.g. 30mb (default: 30mb)")
    args = parser.parse_args(argv)
    if args.queue_size < 1:
        parser.error(f"--queue-size must be at least 1, got {args.queue_size}")
    if args.concurrency is not None and args.concurrency < 1:
        parser.error(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.max_megapixels <= 0:
        parser.error(f"--max-megapixels must be > 0, got {args.max_megapixels}")
    if args.max_faces < 1:
        parser.error(f"--max-faces must be at least 1, got {args.max_faces}")
    studio = StudioSettings(
        weights=args.weights,
        base_model=args.base_model,
        device=args.device,
        facexlib_dir=Path(args.facexlib_dir) if args.facexlib_dir else None,
        max_megapixels=args.max_megapixels,
        max_faces=args.max_faces,
        zero_gpu=os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true"),
    )
    launch = LaunchSettings(
        share=args.share,
        host=args.host,
        port=args.port,
        queue_size=args.queue_size,
        concurrency=args.concurrency,
        max_file_size=args.max_file_size,
    )
    return studio, launch


def main(argv: Sequence[str] | None = None) -> None:
    settings, launch = parse_args(argv)
    studio, hub_note = load_studio(settings)
    if hub_note:
        print(f"* {hub_note}", flush=True)
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
    )
    print(
        launch_message(demo.local_url, demo.share_url, launch.share, time.perf_counter() - STARTED),
        flush=True,
    )
    demo.block_thread()


def launch_message(local_url: str, share_url: str | None, share: bool, seconds: float) -> str:
    """What the terminal shows once the page is up."""
    lines = [f"* Running on local URL:  {local_url} (started in {seconds:.1f} s)"]
    if share and share_url:
        lines.append(
            f"* Running on public URL: {share_url}\n"
            "  This link is PUBLIC: anyone who has it can use this app, for up to 1 week (Gradio's "
            "limit, best effort) or until you stop the app."
        )
    elif share:
        lines.append("* The public link could not be created (see the message above); the app is local only.")
    else:
        lines.append("* Local only. To get a temporary public link (gradio.live), restart with --share.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
