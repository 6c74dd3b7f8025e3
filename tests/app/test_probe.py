"""Start-up checks (osdface.app.probe) and progress by stage and face (osdface.runtime.progress)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osdface.app.models import Part
from osdface.app.probe import missing_sources_message, needs_hub, unreachable_note
from osdface.app.requests import StudioSettings
from osdface.app.service import Studio
from osdface.commands.model_options import ModelOptions
from osdface.runtime import progress
from osdface.weights.reachability import probe_hub


def test_probe_of_a_closed_port_says_unreachable_at_once():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        probe = probe_hub(f"http://127.0.0.1:{port}", timeout=3)
    assert not probe.reachable and probe.reason and probe.seconds < 3
    assert "could not be reached at start-up" in unreachable_note(probe)


def test_probe_of_a_listening_port_says_reachable():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        probe = probe_hub(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=3)
    assert probe.reachable and probe.reason is None and unreachable_note(probe) is None


def test_needs_hub_only_for_repo_ids(tmp_path):
    assert needs_hub("owner/name", str(tmp_path))
    assert not needs_hub(str(tmp_path), str(tmp_path))


def test_both_missing_sources_are_named_with_their_flags(tiny_hub):
    message = missing_sources_message("osdface-test/absent-weights", "osdface-test/absent-base")
    assert message.startswith("2 of 2 model sources could not be loaded:")
    lines = message.splitlines()
    assert lines[1].startswith("  - OSDFace weights (app flag --weights, or OSDFACE_WEIGHTS): ")
    assert "osdface-test/absent-weights" in lines[1]
    assert lines[2].startswith(
        "  - Stable Diffusion 2.1 base model (app flag --base-model, or OSDFACE_BASE_MODEL): "
    )
    assert "osdface-test/absent-base" in lines[2]
    assert "--facexlib-dir FOLDER" in lines[-1]
    only_weights = missing_sources_message("osdface-test/absent-weights", tiny_hub.base_repo)
    assert only_weights.startswith("1 of 2") and "base model" not in only_weights
    assert missing_sources_message(tiny_hub.weights_repo, tiny_hub.base_repo) is None


def test_studio_load_names_both_missing_sources():
    studio = Studio.load(
        StudioSettings(
            model=ModelOptions(weights="osdface-test/absent-weights", base_model="osdface-test/absent-base")
        )
    )
    assert not studio.available
    reason = studio.models.why_missing(Part.PIPELINE)
    assert "osdface-test/absent-weights" in reason and "osdface-test/absent-base" in reason


class Recorder:
    def __init__(self):
        self.reports: list[tuple[float | None, str]] = []

    def __call__(self, fraction, text):
        self.reports.append((fraction, text))


def test_run_progress_stages_faces_and_a_shrinking_estimate(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    times = progress.StageTimes(seconds_per_face=20.0)
    recorder = Recorder()
    run = progress.RunProgress(recorder, times)
    run.step("detect")
    assert recorder.reports[-1] == (None, "Detecting faces")
    clock[0] += 1
    run.plan(faces=3, passes=1, paste=True)
    # Batch of two faces, then one; each stage takes 1 s per face.
    for batch in (2, 1):
        for stage in progress.PIPELINE_STAGES:
            run.pipeline_stage(stage, batch, "vre" if stage == "vre" else None)
            clock[0] += batch
        run.batch_done(batch)
    clock[0] += 3
    texts = [text for _, text in recorder.reports]
    assert texts[1] == "Faces 1-2 of 3 (with VRE): visual tokens (VRE) · about 60 s left"
    assert texts[5].startswith(
        "Face 3 of 3 (with VRE): visual tokens (VRE) · about 5 s left"
    )  # 4 s of stages + pasting (its prior, scaled)
    assert texts[-1].startswith("Pasting the faces back")
    fractions = [fraction for fraction, _ in recorder.reports[1:]]
    assert fractions == sorted(fractions) and all(0 <= f < 1 for f in fractions)
    # Measured per face: 1 s each stage.
    estimates = times.estimates()
    assert all(estimates[stage] == pytest.approx(1.0) for stage in progress.PIPELINE_STAGES)


def test_unmeasured_stages_scale_with_the_measured_ones():
    times = progress.StageTimes(seconds_per_face=20.0)
    times.record("vre", 0.2)  # a tenth of its prior (0.1 * 20 s)
    estimates = times.estimates()
    assert estimates["vre"] == pytest.approx(0.2)
    assert estimates["unet"] == pytest.approx(0.25 * 20.0 * 0.1)


def test_hooks_report_the_real_pipelines_stages(tiny_pipeline):
    seen = []

    class Spy(progress.Listener):
        def pipeline_stage(self, stage, batch, kind):
            seen.append((stage, batch, kind))

        def batch_done(self, batch):
            seen.append(("done", batch, None))

    progress.attach(tiny_pipeline)
    faces = [Image.fromarray(np.full((512, 512, 3), value, np.uint8)) for value in (60, 120)]
    tiny_pipeline(faces)  # nobody listening: nothing recorded
    assert seen == []
    with progress.tracking(Spy()):
        tiny_pipeline(faces)
    assert seen == [
        ("vre", 2, "vre"),
        ("vae_encode", 2, None),
        ("unet", 2, None),
        ("vae_decode", 2, None),
        ("done", 2, None),
    ]


def test_the_page_is_built_without_importing_the_models():
    """`python app.py` builds its page (and its missing-weights banner) before torch, diffusers
    or spandrel are imported: importing app.py and its command line loads none of them."""
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys; sys.path.insert(0, '.'); import app; app.parse_args([]); "
        "print(sorted(m for m in ('torch', 'diffusers', 'spandrel', 'facexlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
