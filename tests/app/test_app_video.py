"""The Video tab: the restore_clip endpoint through gradio_client and the tab in a real browser,
with the tiny test weights and a stand-in detector (RetinaFace needs real weights to find a
face), on real H.264 clips with audio."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from helpers.clips import MovingPortrait, PortraitFinder
from helpers.faces import RecordingPipeline
from helpers.running_app import free_port

from osdface.app.clip_service import CPU_LIMITS, ClipRequest, ClipStudio
from osdface.app.models import LoadedModels, Part
from osdface.app.requests import RequestError, StudioSettings
from osdface.app.service import Studio
from osdface.faces import FaceRestorer
from osdface.testing.clips import make_clip
from osdface.video import read_frames

FRAMES = 3


@pytest.fixture(scope="module")
def clip_app(tiny_hub, app_module):
    """The page of a studio with the tiny model and the stand-in detector."""
    from osdface import OSDFacePipeline

    pipeline = OSDFacePipeline.from_pretrained(tiny_hub.weights_repo, base_model=tiny_hub.base_repo)
    models = LoadedModels(
        pipeline=pipeline,
        restorer=FaceRestorer(pipeline, PortraitFinder()),
        missing={
            Part.IDENTITY: "no ArcFace weights in this test",
            Part.ABLATION: "no text encoder in this test",
        },
    )
    demo = app_module.build_demo(Studio(models, settings=StudioSettings(metrics=False)))
    demo.queue(default_concurrency_limit=2)
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, ssr_mode=False, quiet=True, css=app_module.CSS)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return make_clip(folder / "walk.mp4", frames=FRAMES, fps=25, size=(320, 240), draw=MovingPortrait().draw)


def clip_args(path, **overrides):
    args = {
        "video": handle_file(str(path)),
        "turbulence": False,
        "propagation_length": 30000,
        "seed": 0,
        "side_by_side": True,
        "ablation": False,
        "restorers": [],
        "color_fix": "none",
    }
    return {**args, **overrides}


def video_path(value) -> str:
    return value["video"] if isinstance(value, dict) else value


@pytest.mark.slow
def test_the_api_returns_a_playable_clip_with_its_audio_and_a_report(clip_app, clip):
    client = Client(clip_app, verbose=False)
    restored, beside, without, files, report = client.predict(**clip_args(clip), api_name="/restore_clip")
    with av.open(video_path(restored)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert container.format.name.startswith("mov,mp4")
        assert container.streams.audio, "the audio track was kept"
    assert len(list(read_frames(video_path(restored)))) == FRAMES
    assert next(read_frames(video_path(beside))).image.shape == (240, 640, 3)
    assert without is None and len(files) == 2
    assert f"**{FRAMES} frames**, {FRAMES} faces restored in 1 track(s)" in report
    assert "Flicker added inside the faces" in report


@pytest.mark.slow
def test_clips_over_the_limits_or_broken_or_asking_for_a_missing_part_get_a_message(clip_app, clip, tmp_path):
    client = Client(clip_app, verbose=False)
    long_clip = make_clip(tmp_path / "long.mp4", frames=int(CPU_LIMITS.seconds * 2) + 2, fps=2, audio=False)
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    cases = [
        (clip_args(long_clip), "over the limit max_seconds"),
        (clip_args(broken), "not a readable video file"),
        (clip_args(clip, ablation=True), "no text encoder in this test"),
    ]
    for args, expected in cases:
        with pytest.raises(Exception) as error:
            client.predict(**args, api_name="/restore_clip")
        assert expected in str(error.value), str(error.value)
    # still serving
    assert client.predict(**clip_args(clip, side_by_side=False), api_name="/restore_clip")[1] is None


@pytest.mark.browser
@pytest.mark.slow
def test_browser_video_tab_restores_a_clip(clip_app, clip, browser, artifacts_dir):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    try:
        page.goto(clip_app)
        page.get_by_role("tab", name="Video").click()
        page.locator("#clip-limits").get_by_text("Limits here (CPU)").wait_for(timeout=30_000)
        page.locator("#clip-input input[type=file]").set_input_files(str(clip))
        page.locator("#clip-run").click()
        page.locator("#clip-report").get_by_text("faces restored").wait_for(timeout=180_000)
        restored = page.locator("#clip-restored video")
        restored.wait_for(timeout=30_000)
        assert restored.get_attribute("src")
        # the browser decodes it: a duration and a frame size
        page.wait_for_function(
            "document.querySelector('#clip-restored video').readyState >= 1", timeout=30_000
        )
        width = page.evaluate("document.querySelector('#clip-restored video').videoWidth")
        assert width == 320
        assert page.locator("#clip-beside video").get_attribute("src")
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts_dir / "app_video.png"), full_page=True)
    finally:
        page.close()


def stand_in_clip_studio() -> ClipStudio:
    """The Video tab's steps on a CPU with the stand-in model and detector."""
    pipeline = RecordingPipeline()
    pipeline.device = torch.device("cpu")
    models = LoadedModels(pipeline=pipeline, restorer=FaceRestorer(pipeline, PortraitFinder()))
    return ClipStudio(Studio(models, settings=StudioSettings(metrics=False)))


def test_a_browser_recording_without_a_duration_is_held_to_the_limit(tmp_path):
    """MediaRecorder's WebM has no duration in its header: the GPU time is planned for the
    limit, and the clip is refused once it passes the limit."""
    fps = 2
    frames = int(CPU_LIMITS.seconds * fps * 2)
    source = make_clip(tmp_path / "recorded.webm", frames=frames, fps=fps, live=True, audio=False)
    studio = stand_in_clip_studio()
    prepared = studio.prepare(ClipRequest(str(source), side_by_side=False))
    assert prepared.frames == CPU_LIMITS.seconds * fps
    with pytest.raises(RequestError, match=f"over the limit max_seconds={CPU_LIMITS.seconds:g}"):
        studio.run(prepared, tmp_path / "out")


def test_a_clip_without_faces_that_could_not_be_copied_is_not_called_unchanged(tmp_path):
    """A camcorder's AVI with PCM sound: MP4 cannot hold the PCM as it is, so the clip comes
    back re-encoded (its sound as AAC), and the report says so."""
    black = np.zeros((64, 96, 3), np.uint8)
    source = make_clip(tmp_path / "cam.avi", frames=3, audio_codec="pcm_s16le", draw=lambda index: black)
    studio = stand_in_clip_studio()
    outcome = studio.run(studio.prepare(ClipRequest(str(source), side_by_side=False)), tmp_path / "out")
    assert "No face was found" in outcome.report and "re-encoded" in outcome.report
    assert "unchanged" not in outcome.report
