"""OSDFace Studio: the Gradio app (a Hugging Face Space, a local app, or a public link).

    python app.py [--share] [--host HOST] [--port PORT] [--weights REPO_OR_DIR]
                  [--base-model REPO_OR_DIR] [--device DEVICE] ...      (python app.py --help)

This file is the user interface only; the work is in ``osdface.app_logic``. Models load once,
at start-up (on a ZeroGPU Space: on the CPU, then moved to "cuda", which ZeroGPU defers). Only
the restoration holds a GPU, in a function decorated with ``@spaces.GPU`` whose duration grows
with the number of faces; off ZeroGPU that decorator does nothing, so this file runs unchanged
on any GPU or on the CPU.
"""

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

from app_compare import add_compare_panel, wire_compare_panel
from osdface.app_logic import (
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
from osdface.app_peers import PeerStudio

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

ABOUT = f"""
**OSDFace** restores a face in a *single* diffusion step. The degraded face is encoded by
Stable Diffusion 2.1's VAE, the UNet (fine-tuned with LoRA) predicts the noise once at
timestep 399, and the clean latent is decoded: about 0.1 s per face on a GPU instead of the tens
of steps of earlier diffusion restorers.

**VRE, the visual representation embedder.** Instead of a text prompt, the UNet's
cross-attention is conditioned on what the degraded face itself looks like: a VQ tokenizer
trained on faces turns the input into 77 visual tokens from a face codebook, which a small
projection maps into SD 2.1's prompt space. **Without VRE** (the paper's ablation) the same
one-step model is conditioned on SD 2.1's text encoder instead, with your prompt or the empty
(null) prompt, and so knows much less about the face.

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

CSS = """
.osd-banner { border: 2px solid #d9534f; background: rgba(217, 83, 79, 0.10); border-radius: 8px;
              padding: 12px 16px; }
.osd-banner strong { color: #d9534f; }
.osd-banner .osd-reason { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 0.9em; }
.osd-notes { font-size: 0.92em; opacity: 0.9; }
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
        # The message is shown as HTML: escape it, or a "<folder>" in a fix would vanish.
        raise gr.Error(html.escape(str(exc), quote=False), duration=None, print_exception=False) from exc


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


def build_demo(studio: Studio) -> gr.Blocks:
    """The page and its endpoints (``restore`` and ``degrade``)."""

    @spaces.GPU(duration=studio.gpu_seconds)
    def restore_on_gpu(prepared):
        return studio.run(prepared)

    demo = gr.Blocks(title="OSDFace Studio: one-step diffusion face restoration", delete_cache=CACHE_CLEANUP)

    def restore(image, mode, turbulence, propagation_length, seed, ablation, prompt, color_fix):
        """Restore the faces of an image with OSDFace (VRE), optionally after simulated turbulence
        and alongside the text-conditioned ablation. Returns PNG paths (input, turbulent input or
        None, OSDFace, without VRE or None), the before/after pair, the face gallery, and the
        timing and identity tables (Markdown)."""
        with _errors_for_the_user():
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
            prepared = studio.prepare(request)
            result = restore_on_gpu(prepared)
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
        if not studio.available:
            gr.HTML(
                '<div class="osd-banner" role="alert" id="weights-banner"><strong>Restoring is unavailable: '
                "the model weights could not be loaded.</strong><br>"
                f'<span class="osd-reason">{html.escape(studio.load_error or "", quote=False)}</span><br>'
                "The turbulence preview below still works; <em>Restore</em> will answer with this error "
                "until the app is restarted with the weights available.</div>"
            )
        for summary, details in studio.status_notes():
            gr.Markdown(note_markdown(summary, details), elem_classes="osd-notes")

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
                run = gr.Button("Restore", variant="primary", size="lg", elem_id="restore-button")
            with gr.Column(scale=4):
                mode = gr.Radio(
                    [
                        ("Whole photo (find every face)", MODE_PHOTO),
                        ("Aligned face (512x512, FFHQ)", MODE_ALIGNED),
                    ],
                    value=MODE_PHOTO,
                    label="Mode",
                )
                with gr.Group():
                    turbulence = gr.Checkbox(
                        label="Atmospheric turbulence: degrade the input first",
                        value=False,
                        elem_id="turbulence",
                    )
                    low, high = PROPAGATION_LENGTH_RANGE
                    propagation_length = gr.Slider(
                        low, high, value=DEFAULT_PROPAGATION_LENGTH, step=1000, label="Propagation length (m)"
                    )
                    seed = gr.Number(
                        value=0, precision=0, minimum=0, label="Seed (turbulence and VAE sample)"
                    )
                preview = gr.Button("Preview turbulence only", variant="secondary", elem_id="preview-button")
                with gr.Group():
                    ablation = gr.Checkbox(
                        label="Compare without VRE (text-conditioned ablation)",
                        value=False,
                        elem_id="ablation",
                    )
                    prompt = gr.Textbox(
                        value="",
                        label="Prompt for the ablation",
                        placeholder="empty = null prompt",
                        max_lines=2,
                        visible=False,
                    )

        gr.Examples(
            examples=[
                [str(EXAMPLES_DIR / row[0]), *row[1:]]
                for row, _ in EXAMPLES
                if (EXAMPLES_DIR / row[0]).is_file()
            ],
            example_labels=[label for row, label in EXAMPLES if (EXAMPLES_DIR / row[0]).is_file()],
            inputs=[image, mode, turbulence, propagation_length, seed, ablation, prompt, color_fix],
            cache_examples=False,
            label="Examples (public-domain portraits; see examples/SOURCES.md)",
        )
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
            out_without = gr.Image(
                label="OSDFace without VRE", elem_id="out-without", visible=False, **output_kwargs
            )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                slider = gr.ImageSlider(
                    label="Before / after (OSDFace)", type="filepath", interactive=False, max_height=512
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

        compare_panel = add_compare_panel()  # "Compare with other restorers" (app_compare.py)

        with gr.Accordion("About OSDFace, VRE and the turbulence setting", open=False):
            gr.Markdown(ABOUT)

        # The image input is not preprocessed: the file goes to the handler unread, so that its
        # pixel count is checked from the header before anything decodes it.
        restored = run.click(
            restore,
            inputs=[image, mode, turbulence, propagation_length, seed, ablation, prompt, color_fix],
            outputs=[out_input, out_turbulent, out_restored, out_without, slider, gallery, timing, identity],
            api_name="restore",
            preprocess=False,
            # On failure only the main result shows "Error", not every output.
            show_progress_on=[out_restored],
        )
        wire_compare_panel(
            compare_panel,
            restored,
            [image, mode, turbulence, propagation_length, seed, color_fix],
            PeerStudio(studio),
            spaces.GPU,
            lambda: _request_folder(demo.GRADIO_CACHE),
            _upload_path,
        )
        preview.click(
            degrade,
            inputs=[image, propagation_length, seed],
            outputs=[out_turbulent, timing],
            api_name="degrade",
            preprocess=False,
            show_progress_on=[out_turbulent],
        ).success(
            lambda: gr.Image(visible=True), outputs=out_turbulent, api_visibility="private", queue=False
        )

        turbulence.change(
            lambda on: gr.Image(visible=on), turbulence, out_turbulent, api_visibility="private", queue=False
        )
        ablation.change(
            lambda on: (gr.Image(visible=on), gr.Textbox(visible=on)),
            ablation,
            [out_without, prompt],
            api_visibility="private",
            queue=False,
        )
        mode.change(
            lambda value: gr.Gallery(visible=value == MODE_PHOTO),
            mode,
            gallery,
            api_visibility="private",
            queue=False,
        )
    return demo


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
    studio = Studio.load(settings)
    demo = build_demo(studio)
    concurrency = launch.concurrency or (2 if studio.device.type == "cuda" or settings.zero_gpu else 1)
    demo.queue(max_size=launch.queue_size, default_concurrency_limit=concurrency)
    demo.launch(
        share=launch.share,
        server_name=launch.host,
        server_port=launch.port,
        ssr_mode=False,
        max_file_size=launch.max_file_size,
        show_error=True,
        theme=gr.themes.Soft(),
        css=CSS,
    )


if __name__ == "__main__":
    main()
