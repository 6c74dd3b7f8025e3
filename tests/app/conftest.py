"""Fixtures of the app's tests: app.py as a module, a page served in this process without a face
detector, and the headless browser."""

from __future__ import annotations

import pytest
from helpers.running_app import CHROMIUM_ARGS, chromium_path, free_port, load_app_module

from osdface.app.models import LoadedModels, Part
from osdface.app.requests import StudioSettings
from osdface.app.service import Studio


@pytest.fixture(scope="module")
def app_module():
    return load_app_module()


@pytest.fixture(scope="module")
def detectorless(tiny_hub, app_module, tmp_path_factory):
    """(url, demo): the page of a studio with the tiny model and no face detector."""
    from osdface import OSDFacePipeline
    from osdface.weights.facexlib_files import FacexlibWeights, FacexlibWeightsError

    pipeline = OSDFacePipeline.from_pretrained(tiny_hub.weights_repo, base_model=tiny_hub.base_repo)
    pipeline.load_text_encoder()
    empty = tmp_path_factory.mktemp("no-facexlib")
    weights = FacexlibWeights(local_dir=empty, cache_dir=empty / "cache", offline=True)
    with pytest.raises(FacexlibWeightsError) as missing:
        weights.path("detection_Resnet50_Final.pth")
    models = LoadedModels(
        pipeline=pipeline,
        missing={Part.DETECTOR: str(missing.value), Part.IDENTITY: "no ArcFace weights in this test"},
    )
    studio = Studio(models, settings=StudioSettings(max_megapixels=25))
    demo = app_module.build_demo(studio)
    demo.queue(default_concurrency_limit=2)
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, ssr_mode=False, quiet=True, css=app_module.CSS)
    yield f"http://127.0.0.1:{port}/", demo
    demo.close()


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
