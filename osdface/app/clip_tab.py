"""The Video tab's widgets and their wiring (the logic is ``osdface.app.clip_service``); ``app.py``
places them. UI only, like ``osdface.app.restorers_panel``."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from osdface.app.clip_service import ClipOutcome, ClipRequest, ClipStudio
from osdface.app.requests import DEFAULT_PROPAGATION_LENGTH, PROPAGATION_LENGTH_RANGE
from osdface.app.restorers import RESTORER_CHOICES
from osdface.app.text import CPU_SECONDS_PER_FACE, GPU_SECONDS_PER_FACE


@dataclass
class ClipWidgets:
    """The clip endpoint's inputs (the fields of ``ClipRequest``, in order) and outputs."""

    video: gr.Video
    turbulence: gr.Checkbox
    propagation_length: gr.Slider
    seed: gr.Number
    side_by_side: gr.Checkbox
    ablation: gr.Checkbox
    restorers: gr.CheckboxGroup
    color_fix: gr.Radio
    run: gr.Button
    restored: gr.Video
    beside: gr.Video
    without_vre: gr.Video
    downloads: gr.File
    report: gr.Markdown

    def inputs(self) -> list:
        return [
            self.video,
            self.turbulence,
            self.propagation_length,
            self.seed,
            self.side_by_side,
            self.ablation,
            self.restorers,
            self.color_fix,
        ]

    def outputs(self) -> list:
        return [self.restored, self.beside, self.without_vre, self.downloads, self.report]


def limits_markdown(clips: ClipStudio) -> str:
    limits = clips.limits()
    where = "GPU" if clips.on_gpu else "CPU"
    per_face = GPU_SECONDS_PER_FACE if clips.on_gpu else CPU_SECONDS_PER_FACE
    text = (
        f"**Limits here ({where}):** up to {limits.text()}; more faces than that and the largest are "
        f"restored. Every face of every frame is restored: about {per_face:g} s per face and frame"
    )
    if not clips.on_gpu:
        text += " on this CPU, so a 2-second clip at 25 frames/s with one face takes about " + (
            f"{round(50 * per_face / 60)} minutes. Run it on a GPU for longer clips"
        )
    return (
        text
        + ". The audio is copied unchanged (re-encoded to AAC where MP4 cannot hold it); the output is H.264 in MP4."
    )


def clip_widgets(clips: ClipStudio) -> ClipWidgets:
    """The tab's content: the clip and its settings on the left, the results on the right."""
    gr.Markdown(
        "Restore every face of a short clip. Faces are **tracked** from frame to frame and their landmarks "
        "**steadied** (One Euro filter), and each face keeps the same noise in every frame, so the "
        "restored faces do not flicker. The report gives the flicker figure: the change inside the faces "
        "between frames, restored against input."
    )
    gr.Markdown(limits_markdown(clips), elem_id="clip-limits", elem_classes="osd-notes")
    low, high = PROPAGATION_LENGTH_RANGE
    with gr.Row():
        with gr.Column():
            video = gr.Video(
                label="Clip (upload or record)",
                sources=["upload", "webcam"],
                include_audio=True,
                webcam_options=gr.WebcamOptions(mirror=False),  # mirroring would need a system ffmpeg
                elem_id="clip-input",
            )
            turbulence = gr.Checkbox(
                label="Add atmospheric turbulence to every frame first (independent draws per frame)",
                value=False,
                elem_id="clip-turbulence",
            )
            length = gr.Slider(
                low, high, value=DEFAULT_PROPAGATION_LENGTH, step=1000, label="Propagation length (m)"
            )
            seed = gr.Number(value=0, precision=0, label="Seed (turbulence and the faces' noise)")
            side_by_side = gr.Checkbox(label="Side-by-side clip (input | restored)", value=True)
            ablation = gr.Checkbox(
                label="Also without VRE (twice the time)", value=False, elem_id="clip-ablation"
            )
            restorers = gr.CheckboxGroup(
                RESTORER_CHOICES, value=[], label="Also restore with (each adds its time)"
            )
            color_fix = gr.Radio(["none", "adain", "wavelet"], value="none", label="Colour fix")
            run = gr.Button("Restore clip", variant="primary", elem_id="clip-run")
        with gr.Column():
            restored = gr.Video(label="Restored", interactive=False, elem_id="clip-restored")
            beside = gr.Video(label="Side by side", interactive=False, elem_id="clip-beside")
            without_vre = gr.Video(
                label="Without VRE", interactive=False, visible=False, elem_id="clip-without"
            )
            downloads = gr.File(
                label="Download", file_count="multiple", interactive=False, elem_id="clip-downloads"
            )
            report = gr.Markdown(elem_id="clip-report")
    ablation.change(
        lambda on: gr.Video(visible=on), ablation, without_vre, queue=False, api_visibility="private"
    )
    return ClipWidgets(
        video, turbulence, length, seed, side_by_side, ablation, restorers, color_fix, run, restored, beside,
        without_vre, downloads, report,
    )  # fmt: skip


def wire_clip_tab(
    widgets: ClipWidgets,
    clips: ClipStudio,
    gpu: Callable,
    new_folder: Callable[[], AbstractContextManager[Path]],
    upload_path: Callable,
    errors_for_the_user: Callable,
    concurrency_id: str = "restorations",
) -> None:
    """The Video tab's button and the ``restore_clip`` endpoint (app.py passes ``spaces.GPU``,
    a lease on a new request folder, its upload reader and its error translation). On ZeroGPU the GPU is
    asked for a duration that grows with frames x faces x restorers (``ClipStudio.gpu_seconds``)."""

    def gpu_duration(prepared, folder, on_frame=None) -> int:
        return clips.gpu_seconds(prepared)

    @gpu(duration=gpu_duration)
    def restore_clip_on_gpu(prepared, folder, on_frame=None):
        return clips.run(prepared, folder, on_frame)

    def restore_clip(
        video: dict | str | None,
        turbulence: bool,
        propagation_length: float,
        seed: int,
        side_by_side: bool,
        ablation: bool,
        restorers: list[str],
        color_fix: str,
        bar=gr.Progress(),
    ) -> dict:
        """Restore every face of a short video clip with OSDFace: faces tracked across frames, landmarks steadied, the audio copied.

        Args:
            video: the clip (MP4, MOV, WebM, MKV or AVI; within the limits the page states).
            turbulence: degrade every frame with simulated atmospheric turbulence first (independent draws per frame).
            propagation_length: the turbulence's propagation length in metres, 20000 to 40000.
            seed: the seed of the turbulence and of the faces' VAE noise (face track i gets seed + i).
            side_by_side: also return a clip with the input and the restored clip side by side.
            ablation: also restore without VRE (the text-conditioned ablation).
            restorers: other restorers to run on the same tracked faces: gfpgan, restoreformer, codeformer.
            color_fix: match the input's colours: "none", "adain" or "wavelet".

        Returns:
            the restored clip (MP4), the side-by-side clip (or None), the clip without VRE (or None), every clip written (for download) and a report in Markdown (frames, faces, flicker, time per stage).
        """
        with errors_for_the_user():
            request = ClipRequest(
                upload_path(video),
                bool(turbulence),
                propagation_length,
                seed,
                bool(side_by_side),
                bool(ablation),
                tuple(restorers or ()),
                color_fix,
            )
            bar(0.0, desc="reading the clip's header and first frame")
            prepared = clips.prepare(request)
            # ZeroGPU runs the GPU function in another process and pickles its arguments: a local
            # callback cannot go there, so on ZeroGPU the bar shows the start and the end only.
            callback = None if clips.studio.settings.zero_gpu else _frame_progress(bar, prepared.frames)
            # The folder is kept from the cache's clean-up while the clip is restored: on a CPU
            # that takes hours, with nothing written for long stretches.
            with new_folder() as folder:
                outcome = restore_clip_on_gpu(prepared, folder, callback)
        return _output_values(widgets, outcome)

    # Not preprocessed: Gradio would convert some uploads with a system ffmpeg; the clip is read
    # by PyAV, from its header first.
    widgets.run.click(
        restore_clip,
        inputs=widgets.inputs(),
        outputs=widgets.outputs(),
        api_name="restore_clip",
        preprocess=False,
        show_progress_on=[widgets.restored],
        concurrency_id=concurrency_id,
    )


def _frame_progress(bar, frames: int) -> Callable[[int, int | None], None]:
    """``on_frame`` for ``ClipRestorer``: the bar counts frames and estimates the time left."""
    started = time.perf_counter()

    def on_frame(done: int, total: int | None) -> None:
        total = max(total or frames, done)
        left = (time.perf_counter() - started) / done * (total - done)
        bar((done, total), desc=f"frame {done} of {total}, about {left:.0f} s left", unit="frames")

    return on_frame


def _output_values(widgets: ClipWidgets, outcome: ClipOutcome) -> dict:
    files = [outcome.restored, outcome.side_by_side, outcome.without_vre, *outcome.others.values()]
    return {
        widgets.restored: str(outcome.restored),
        widgets.beside: None if outcome.side_by_side is None else str(outcome.side_by_side),
        widgets.without_vre: None if outcome.without_vre is None else str(outcome.without_vre),
        widgets.downloads: [str(path) for path in files if path is not None],
        widgets.report: outcome.report,
    }
