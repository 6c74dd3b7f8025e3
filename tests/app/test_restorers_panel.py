"""The app's "Compare with other restorers": ``python app.py`` in a subprocess (as in
``test_app``), offline, the tiny OSDFace weights, a tiny RestoreFormer release file in
OSDFACE_RESTORERS_DIR and no GFPGAN file; driven by gradio_client and headless Chromium."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.restorer_files import write_face_release
from helpers.running_app import (
    DECODED_WIDTH,
    EXAMPLES,
    RunningApp,
    faceless_env,
)
from PIL import Image

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def app(tiny_hub, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("app-compare")
    env = faceless_env(tiny_hub, workdir)
    env["OSDFACE_RESTORERS_DIR"] = str(workdir / "restorers")
    write_face_release("restoreformer", workdir / "restorers")
    running = RunningApp(["--concurrency", "1"], env, workdir)
    yield running
    running.stop()


def _path(output):
    """An image output as gradio_client gives it: a path, or an update dict (when the handler
    changed the label or visibility) holding the path or None."""
    if isinstance(output, dict):
        output = output.get("value")
    if isinstance(output, dict):
        output = output.get("path")
    return output


def compare_args(file, methods, background="none", mode="aligned"):
    from gradio_client import handle_file

    return (handle_file(str(file)), mode, False, 30000, 0, "none", methods, background)


def test_compare_shares_the_restorations_limit(app_module):
    """--concurrency bounds the restorations: /compare (an API endpoint and an MCP tool too) runs
    GFPGAN, CodeFormer, Real-ESRGAN and OSDFace again, so it waits with Restore for a slot."""
    from osdface.app.models import LoadedModels, Part
    from osdface.app.service import Studio

    demo = app_module.build_demo(Studio(LoadedModels(missing={Part.PIPELINE: "no weights in this test"})))
    groups = {fn.api_name: fn.concurrency_id for fn in demo.fns.values() if fn.api_name}
    assert groups["compare"] == groups["restore"] == groups["restore_faces"] == app_module.RESTORATIONS
    assert groups["restore_clip"] == app_module.RESTORATIONS


@pytest.mark.slow
def test_one_restorer_chosen_returns_its_image_and_a_missing_one_its_reason(app):
    file = EXAMPLES / "astronaut_aligned_classic.jpg"
    result = app.client().predict(*compare_args(file, ["restoreformer", "gfpgan"]), api_name="/compare")
    gfpgan, restoreformer, codeformer, osdface_background = (_path(output) for output in result[:4])
    table = result[4]
    assert gfpgan is None and codeformer is None and osdface_background is None
    restored = np.asarray(Image.open(restoreformer).convert("RGB")).astype(int)
    assert Path(restoreformer).suffix == ".png" and restored.shape == (512, 512, 3)
    assert np.abs(restored - np.asarray(Image.open(file).convert("RGB"))).mean() > 1
    assert "| RestoreFormer | Apache-2.0 |" in table
    assert "**GFPGAN v1.4 is unavailable:**" in table and "GFPGANv1.4.pth" in table
    assert "ArcFace similarities are off" in table  # no ArcFace weights in this app


@pytest.mark.slow
def test_nothing_chosen_runs_nothing(app):
    file = EXAMPLES / "astronaut_aligned_classic.jpg"
    result = app.client().predict(*compare_args(file, []), api_name="/compare")
    assert [_path(output) for output in result[:4]] == [None] * 4 and result[4] == ""


@pytest.mark.browser
@pytest.mark.slow
def test_browser_compare_with_two_restorers(app, browser, artifacts_dir):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(app.url)
        page.get_by_role("button", name="Restore", exact=True).wait_for(timeout=60_000)
        page.locator("#input-image input[type=file]").set_input_files(
            str(EXAMPLES / "astronaut_aligned_classic.jpg")
        )
        page.get_by_label("Aligned face (512x512, FFHQ)").check()
        page.get_by_text("Compare with other restorers (same faces)").click()
        page.get_by_label("RestoreFormer (Apache-2.0)").check()
        page.get_by_label("GFPGAN v1.4 (Apache-2.0)").check()
        page.locator("#restore-button").click()
        image = page.locator("#compare-restoreformer img").first
        image.wait_for(timeout=240_000)
        assert image.evaluate(DECODED_WIDTH) == 512
        assert page.locator("#compare-table").get_by_text("GFPGAN v1.4 is unavailable").is_visible()
        assert (
            page.locator("#compare-restoreformer")
            .get_by_text("RestoreFormer ·", exact=False)
            .first.is_visible()
        )
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts_dir / "app_restorers_panel.png"), full_page=True)
    finally:
        page.close()
