"""The Video tab's widgets (the logic is ``osdface.app.clip_service``; ``app.py`` wires them).
UI only, like ``osdface.app.layout``."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from osdface.app.clip_service import ClipStudio
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
    return text + ". The audio is copied unchanged; the output is H.264 in MP4."


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
