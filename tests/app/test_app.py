"""The Gradio app end to end: ``python app.py`` as a subprocess, offline, with the tiny test
weights, driven by ``gradio_client`` and by headless Chromium (Playwright).

Two apps are started, each shared by the tests of this module:

* ``app``: the tiny OSDFace weights; a RetinaFace whose weights are random and whose
  classifier never says "face" (so whole photos give the "no face found" message: RetinaFace's
  real weights cannot be downloaded here); no ArcFace weights (identity scores are off, with a
  note); a 1-megapixel input limit, a 2 MB upload limit, a queue of 4 and 3 requests at once;
* ``app_without_weights``: OSDFACE_WEIGHTS names a repo that is not in the offline cache.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.running_app import (
    DECODED_WIDTH,
    EXAMPLES,
    SHOWN_SIZE,
    RunningApp,
    base_env,
    faceless_env,
    free_port,
)
from PIL import Image

QUEUE_SIZE = 4
CONCURRENCY = 3

pytestmark = pytest.mark.timeout(600)


# --------------------------------------------------------------------------- running apps


@pytest.fixture(scope="module")
def app(tiny_hub, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("app")
    env = faceless_env(tiny_hub, workdir)
    args = ["--queue-size", str(QUEUE_SIZE), "--concurrency", str(CONCURRENCY)]
    args += ["--max-megapixels", "1", "--max-file-size", "2mb"]
    running = RunningApp(args, env, workdir)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def app_with_metrics(tiny_hub, metric_files, tmp_path_factory):
    """The metrics' files (random weights) in a local folder, as ``--metrics-dir`` gives them."""
    workdir = tmp_path_factory.mktemp("app-metrics")
    env = faceless_env(tiny_hub, workdir)
    env["OSDFACE_METRICS_DIR"] = str(metric_files / "all")
    running = RunningApp([], env, workdir)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def app_without_weights(tiny_hub, tmp_path_factory):
    """Neither repo cached, and the Hub unreachable (its endpoint a closed local port; not
    offline by HF_HUB_OFFLINE): the app must find that out once and show the banner at once."""
    workdir = tmp_path_factory.mktemp("app-no-weights")
    env = base_env(tiny_hub, workdir)
    env.pop("HF_HUB_OFFLINE", None)
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    env["OSDFACE_WEIGHTS"] = "osdface-test/weights-not-cached"
    env["OSDFACE_BASE_MODEL"] = "osdface-test/base-not-cached"
    running = RunningApp([], env, workdir)
    yield running
    running.stop()


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def restore_args(
    file,
    mode="aligned",
    turbulence=False,
    length=30000,
    seed=0,
    ablation=False,
    prompt="",
    fix="none",
    metrics=True,
):
    from gradio_client import handle_file

    image = handle_file(str(file)) if file is not None else None
    return (image, mode, turbulence, length, seed, ablation, prompt, fix, metrics)


# --------------------------------------------------------------------------- restore


@pytest.mark.slow
@pytest.mark.parametrize("turbulence", [False, True], ids=["clean", "turbulence"])
@pytest.mark.parametrize("ablation", [False, True], ids=["vre", "ablation"])
def test_restore_each_toggle_combination(app, turbulence, ablation):
    file = EXAMPLES / "astronaut_aligned_classic.jpg"
    result = app.client().predict(
        *restore_args(file, turbulence=turbulence, ablation=ablation, seed=7), api_name="/restore"
    )
    assert len(result) == 13
    source, turbulent, restored, without_vre, slider, gallery, timing, identity = result[:8]

    images = [path for path in (source, turbulent, restored, without_vre) if path is not None]
    assert len(images) == 2 + turbulence + ablation
    assert (turbulent is not None) == turbulence and (without_vre is not None) == ablation
    for path in images:
        assert Path(path).suffix == ".png" and pixels(path).shape == (512, 512, 3)
    original = pixels(file)
    assert np.array_equal(pixels(source), original)
    restored_pixels = pixels(restored)
    assert np.abs(restored_pixels - original).mean() > 5
    if turbulence:
        assert np.abs(pixels(turbulent) - original).mean() > 1
    if ablation:
        assert np.abs(pixels(without_vre) - restored_pixels).mean() > 1

    assert len(slider) == 2 and np.array_equal(pixels(slider[1]), restored_pixels)
    assert np.array_equal(pixels(slider[0]), pixels(turbulent) if turbulence else original)
    assert gallery == []
    assert timing.startswith("**1 face restored in") and "UNet (one step)" in timing
    assert ("Turbulence simulation" in timing) == turbulence
    assert ("without VRE" in timing) == ablation and ("Text encoder" in timing) == ablation
    assert "Device: CPU" in timing
    assert identity.startswith("Identity scores are off: the ArcFace model could not be loaded.")
    assert "recognition_arcface_ir_se50.pth" in identity
    # This app has no metric weights: the metrics say why, the restoration is served.
    metrics, *tables = result[8:]
    assert set(metrics["unavailable"]) >= {"musiq", "niqe"}
    # PSNR and SSIM need no weights: they are there whenever the clean face is the reference
    assert set(metrics["scores"]["osdface"]) == ({"psnr", "ssim"} if turbulence else set())
    assert "Not computed: MUSIQ" in tables[2]


@pytest.mark.slow
def test_the_api_returns_the_metrics_as_json(app_with_metrics):
    client = app_with_metrics.client()
    file = EXAMPLES / "astronaut_aligned_classic.jpg"
    result = client.predict(*restore_args(file, turbulence=True, ablation=True, seed=3), api_name="/restore")
    metrics = result[8]
    assert metrics["reference"] == "the clean input face, before turbulence"
    assert list(metrics["unavailable"]) == ["deg"] and "ArcFace" in metrics["unavailable"]["deg"]  # none here
    assert set(metrics["scores"]) == {"turbulent_input", "osdface", "without_vre"}
    for values in metrics["scores"].values():
        assert set(values) == {"psnr", "ssim", "lpips", "dists", "musiq", "niqe"}  # no ArcFace here: no Deg.
        assert all(isinstance(v, float) for v in values.values())
    assert metrics["higher_is_better"]["lpips"] is False and metrics["higher_is_better"]["psnr"] is True
    # the baseline: restored faces are compared with the turbulent input against the same clean face
    assert metrics["scores"]["turbulent_input"]["psnr"] != metrics["scores"]["osdface"]["psnr"]
    _, _, turbulent_table, restored_table, without_table = result[8:]
    assert "PSNR↑" in turbulent_table and "LPIPS↓" in restored_table and "MUSIQ↑" in without_table

    plain = client.predict(*restore_args(file), api_name="/restore")[8]
    assert plain["reference"] is None
    assert {k: set(v) for k, v in plain["scores"].items()} == {
        "input": {"musiq", "niqe"},
        "osdface": {"musiq", "niqe"},
    }
    off = client.predict(*restore_args(file, metrics=False), api_name="/restore")
    assert off[8] is None and list(off[9:]) == ["", "", "", ""]


@pytest.mark.browser
@pytest.mark.slow
def test_browser_shows_the_metrics_under_each_result(app_with_metrics, browser, artifacts_dir):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    try:
        page.goto(app_with_metrics.url)
        page.get_by_role("button", name="Restore", exact=True).wait_for(timeout=60_000)
        page.locator("#input-image input[type=file]").set_input_files(
            str(EXAMPLES / "astronaut_aligned_classic.jpg")
        )
        page.get_by_label("Aligned face (512x512, FFHQ)").check()
        page.locator("#turbulence input").check()
        assert page.locator("#metrics input").is_checked()
        page.locator("#restore-button").click()
        page.locator("#scores-restored table").wait_for(timeout=180_000)
        for element in ("scores-turbulent", "scores-restored"):
            table = page.locator(f"#{element}")
            assert table.is_visible(), element
            for header in ("PSNR↑", "SSIM↑", "LPIPS↓", "DISTS↓", "MUSIQ↑", "NIQE↓"):
                assert table.get_by_text(header, exact=True).is_visible(), (element, header)
            assert table.get_by_text("vs the clean face").is_visible()
        assert not page.locator("#scores-without").is_visible()  # the ablation is off
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts_dir / "app_metrics.png"), full_page=True)
    finally:
        page.close()


@pytest.mark.slow
def test_whole_photo_mode_reports_no_face(app):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="No face was found in this photo"):
        app.client().predict(*restore_args(EXAMPLES / "grace_hopper.jpg", mode="photo"), api_name="/restore")


@pytest.mark.slow
def test_bad_inputs_give_messages_and_the_app_keeps_serving(app, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client = app.client()
    text = tmp_path / "notes.txt"
    text.write_text("these are notes, not a photo")
    with pytest.raises(AppError, match="cannot be read as an image.*Upload a JPEG, PNG"):
        client.predict(*restore_args(text), api_name="/restore")
    with pytest.raises(AppError, match="No image yet: upload a photo"):
        client.predict(*restore_args(None), api_name="/restore")
    big = tmp_path / "big.png"
    Image.new("RGB", (1200, 1000), (90, 120, 150)).save(big)
    with pytest.raises(
        AppError,
        match=r"too large for the app \(image is 1200x1000 = 1\.2 megapixels, over the limit of 1\.0 megapixels\)",
    ):
        client.predict(*restore_args(big), api_name="/restore")
    with pytest.raises(AppError, match="Propagation length 50000.* choose 20,000 to 40,000 m"):
        client.predict(
            *restore_args(EXAMPLES / "astronaut_aligned.jpg", turbulence=True, length=50000),
            api_name="/restore",
        )
    heavy = tmp_path / "heavy.png"  # under the pixel limit, over the 2 MB upload limit
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (900, 1000, 3), dtype=np.uint8)).save(heavy)
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict(*restore_args(heavy), api_name="/restore")

    # Still serving: the preview and a restore both work.
    path, note = client.predict(
        handle_file(str(EXAMPLES / "astronaut_aligned.jpg")), 20000, 4, api_name="/degrade"
    )
    assert pixels(path).shape == (512, 512, 3) and "20,000 m (seed 4)" in note
    result = client.predict(*restore_args(EXAMPLES / "astronaut_aligned.jpg"), api_name="/restore")
    assert pixels(result[2]).shape == (512, 512, 3)


@pytest.mark.slow
def test_concurrent_clients_each_get_their_own_result(app, tiny_pipeline):
    cases = [
        (EXAMPLES / "astronaut_aligned.jpg", 1),
        (EXAMPLES / "grace_hopper_aligned.jpg", 2),
        (EXAMPLES / "grace_hopper_aligned_classic.jpg", 3),
    ]
    clients = [app.client() for _ in cases]
    jobs = [
        client.submit(*restore_args(file, seed=seed), api_name="/restore")
        for client, (file, seed) in zip(clients, cases)
    ]
    restored = [pixels(job.result(timeout=300)[2]) for job in jobs]
    for (file, seed), got in zip(cases, restored):
        face = Image.open(file).convert("RGB")
        expected = tiny_pipeline([face], generator=[torch.Generator().manual_seed(seed)]).images[0]
        difference = np.abs(got - np.asarray(expected).astype(np.int16))
        # Another process computes it: allow float rounding to move a level here and there.
        assert difference.max() <= 2 and difference.mean() < 0.02, (
            file.name,
            difference.max(),
            difference.mean(),
        )
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(restored[a] - restored[b]).mean() > 5


@pytest.mark.slow
def test_a_request_writes_only_what_it_returns_and_a_refused_one_nothing(app):
    """Gradio's delete_cache removes only the files it handed out, never a folder: the agents'
    restore_faces writes the one PNG it returns, and a refused request makes no folder."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    cache = app.log.parent / "gradio"  # GRADIO_TEMP_DIR (base_env)

    def request_folders() -> dict[str, list[str]]:
        return {folder.name: sorted(p.name for p in folder.rglob("*")) for folder in cache.glob("osdface-*")}

    before = request_folders()
    client = app.client()
    face = handle_file(str(EXAMPLES / "astronaut_aligned.jpg"))
    restored = client.predict(face, "aligned", True, 30000, 0, "none", api_name="/restore_faces")
    assert pixels(restored).shape == (512, 512, 3)
    for api_name in ("/degrade", "/simulate_turbulence"):
        with pytest.raises(AppError, match="Propagation length 5 m is outside"):
            client.predict(face, 5, 0, api_name=api_name)
    new = {name: files for name, files in request_folders().items() if name not in before}
    assert list(new.values()) == [["osdface.png"]], new


@pytest.mark.slow
def test_requests_beyond_the_queue_are_refused(app):
    from gradio_client.utils import QueueError

    total = CONCURRENCY + QUEUE_SIZE + 5
    clients = [app.client() for _ in range(total)]
    barrier = threading.Barrier(total)
    outcomes: list[object] = [None] * total

    def send(index: int) -> None:
        barrier.wait()
        job = clients[index].submit(
            *restore_args(EXAMPLES / "astronaut_aligned.jpg", seed=index), api_name="/restore"
        )
        try:
            outcomes[index] = job.result(timeout=300)
        except QueueError as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(total)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=400)
    refused = [o for o in outcomes if isinstance(o, QueueError)]
    served = [o for o in outcomes if isinstance(o, tuple)]
    assert len(refused) + len(served) == total, outcomes
    assert refused and all("Queue is full" in str(o) for o in refused)
    # Those running plus those waiting always get in; how many more depends on timing.
    assert len(served) >= CONCURRENCY + QUEUE_SIZE
    assert all(pixels(o[2]).shape == (512, 512, 3) for o in served)
    # And the app serves again once the queue has drained.
    result = app.client().predict(*restore_args(EXAMPLES / "astronaut_aligned.jpg"), api_name="/restore")
    assert pixels(result[2]).shape == (512, 512, 3)


@pytest.mark.slow
def test_the_terminal_names_the_share_flag_not_launch(app):
    log = app.output_once("restart with --share")
    assert "restart with --share" in log and "share=True" not in log
    assert re.search(r"Running on local URL:  http://127\.0\.0\.1:\d+/ \(started in \d+\.\d s\)", log)


@pytest.mark.slow
def test_a_normal_start_prints_the_load_report_and_no_library_warning(app):
    log = app.output_once("Running on local URL")
    start = log[: log.index("Running on local URL")]
    assert "* LoRA pytorch_lora_weights.safetensors: " in start and " pairs applied" in start
    assert "* running on cpu: UNet and VAE float32, VRE float32" in start
    assert not re.search(r"(?i)warn|deprecat|should be kept in float32", start), start


@pytest.mark.slow
def test_without_the_password_the_page_and_the_api_refuse_with_it_they_serve(tiny_hub, tmp_path):
    """--auth (here from OSDFACE_AUTH) protects the page and the API alike (issue 22, item 3);
    the unit tests of the flag, the file and the messages are in test_app_auth.py."""
    from gradio_client import handle_file

    password = "correct horse:battery"
    env = base_env(tiny_hub, tmp_path)
    # no weights needed: the turbulence preview works without them, and the app starts at once
    env.pop("HF_HUB_OFFLINE", None)
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    env["OSDFACE_WEIGHTS"] = "osdface-test/weights-not-cached"
    env["OSDFACE_AUTH"] = f"ann:{password}"
    running = RunningApp([], env, tmp_path)
    try:
        for path in ("config", "gradio_api/info"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(running.url + path, timeout=30)
            assert refused.value.code == 401, path
        with pytest.raises(Exception, match="(?i)login|auth|401|credentials"):
            running.client()
        with pytest.raises(Exception, match="(?i)login|auth|401|credentials|incorrect"):
            running.client(auth=("ann", "wrong"))
        path, note = running.client(auth=("ann", password)).predict(
            handle_file(str(EXAMPLES / "astronaut_aligned.jpg")), 30000, 0, api_name="/degrade"
        )
        assert "30,000 m" in note
        assert password not in running.output_once("Running on local URL")
    finally:
        running.stop()


# --------------------------------------------------------------------------- no weights


@pytest.mark.slow
def test_without_weights_the_page_loads_with_a_banner_and_the_preview_works(app_without_weights):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    page = app_without_weights.get("")
    assert "<html" in page.lower()
    config = json.loads(app_without_weights.get("config"))
    props = {c["props"].get("elem_id"): c["props"] for c in config["components"]}
    banner = next(c["props"]["value"] for c in config["components"] if "weights-banner" in str(c["props"]))
    assert "Restoring is unavailable" in banner
    # Every missing source at once, with the app's flags next to the environment variables.
    assert "2 of 2 model sources could not be loaded" in banner
    assert "osdface-test/weights-not-cached" in banner and "osdface-test/base-not-cached" in banner
    for flag in ("--weights", "--base-model", "--facexlib-dir", "OSDFACE_WEIGHTS", "OSDFACE_BASE_MODEL"):
        assert flag in banner, flag
    assert "could not be reached at start-up" in banner
    # Restore says so on the button, and cannot be pressed.
    assert props["restore-button"]["interactive"] is False
    assert props["restore-button"]["value"].startswith("Restore is off: the model weights are missing")
    # The Hub was probed once, not retried file by file.
    deadline = time.monotonic() + 30  # printed just after the server answers
    while "started in" not in app_without_weights.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    log = app_without_weights.log.read_text()
    assert "could not be reached at start-up" in log and "Retrying in" not in log
    assert "Running on local URL:" in log and "started in" in log
    # The banner's reason and fix on the terminal too (a Space's log shows no banner).
    assert "* Restoring is unavailable: the model weights could not be loaded" in log
    assert "osdface-test/weights-not-cached" in log and "Fix: start the app with --weights" in log

    client = app_without_weights.client()
    path, note = client.predict(
        handle_file(str(EXAMPLES / "grace_hopper_aligned.jpg")), 35000, 0, api_name="/degrade"
    )
    clean = pixels(EXAMPLES / "grace_hopper_aligned.jpg")
    assert pixels(path).shape == clean.shape and np.abs(pixels(path) - clean).mean() > 1
    assert "35,000 m" in note
    with pytest.raises(
        AppError, match="(?s)weights could not be loaded.*osdface-test/weights-not-cached.*Fix"
    ):
        client.predict(*restore_args(EXAMPLES / "grace_hopper_aligned.jpg"), api_name="/restore")


@pytest.mark.browser
@pytest.mark.slow
def test_browser_restore_with_turbulence_and_ablation(app, browser, artifacts_dir, tmp_path):
    # A 1000x1000 aligned face: the turbulence stage lasts long enough to be seen.
    face = tmp_path / "face_1000.png"
    Image.open(EXAMPLES / "astronaut_aligned_classic.jpg").convert("RGB").resize((1000, 1000)).save(face)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(app.url)
        page.get_by_role("button", name="Restore", exact=True).wait_for(timeout=60_000)
        page.locator("#input-image input[type=file]").set_input_files(str(face))
        page.get_by_label("Aligned face (512x512, FFHQ)").check()
        page.locator("#turbulence input").check()
        page.locator("#ablation input").check()
        page.locator("#ablation-note").get_by_text("not retrained").wait_for(timeout=10_000)
        page.locator("#restore-button").click()
        # The progress element, by stage and face, while the request runs.
        stage = page.get_by_text(re.compile(r"Simulating turbulence|Face 1 of 1 \(with"))
        stage.first.wait_for(timeout=60_000)
        page.screenshot(path=str(artifacts_dir / "app_progress.png"), full_page=True)
        page.locator("#timing table").wait_for(timeout=180_000)
        widths = {"out-input": 1000, "out-turbulent": 1000, "out-restored": 512, "out-without": 512}
        labels = {
            "out-input": "Input",
            "out-turbulent": "Turbulent input",
            "out-restored": "OSDFace (VRE)",
            "out-without": "OSDFace without VRE",
        }
        for element, label in labels.items():
            block = page.locator(f"#{element}")
            image = block.locator("img").first
            image.wait_for(timeout=30_000)
            assert block.get_by_text(label, exact=True).first.is_visible()
            assert image.evaluate(DECODED_WIDTH) == widths[element], element
        assert page.locator("#timing").get_by_text("1 face restored in").is_visible()
        # The before/after slider shows the square face square.
        slider_image = page.locator("#before-after img").first
        slider_image.wait_for(timeout=30_000)
        slider_image.evaluate(DECODED_WIDTH)
        shown = slider_image.evaluate(SHOWN_SIZE)
        assert shown["width"] > 100 and abs(shown["width"] / shown["height"] - 1) < 0.05, shown
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts_dir / "app_restore.png"), full_page=True)
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_browser_an_example_restores(app, browser):
    """An example's file is Gradio's copy in its cache, which the endpoints' upload check must
    take as an upload (it refuses paths elsewhere on the server)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(app.url)
        page.get_by_role("button", name="Restore", exact=True).wait_for(timeout=60_000)
        page.get_by_role("button", name="Aligned face, blurred", exact=True).click()
        page.locator("#input-image img").first.wait_for(timeout=30_000)
        page.locator("#restore-button").click()
        page.locator("#timing table").wait_for(timeout=180_000)
        assert page.locator("#timing").get_by_text("1 face restored in").is_visible()
        assert page.locator(".toast-body").count() == 0
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_browser_without_weights_shows_the_banner_and_previews(app_without_weights, browser, artifacts_dir):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(app_without_weights.url)
        banner = page.locator("#weights-banner")
        banner.wait_for(timeout=60_000)
        text = banner.inner_text()
        assert "Restoring is unavailable" in text and "2 of 2 model sources could not be loaded" in text
        assert "--weights" in text and "--base-model" in text
        restore = page.locator("#restore-button")
        assert restore.is_disabled()
        assert "Restore is off: the model weights are missing" in restore.inner_text()
        page.locator("#input-image input[type=file]").set_input_files(
            str(EXAMPLES / "grace_hopper_aligned.jpg")
        )
        page.locator("#preview-button").click()
        turbulent = page.locator("#out-turbulent img").first
        turbulent.wait_for(timeout=120_000)
        assert turbulent.evaluate(DECODED_WIDTH) == 512
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts_dir / "app_without_weights.png"), full_page=True)
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_browser_toast_shows_the_plain_message_line_by_line(detectorless, browser, artifacts_dir):
    url, _ = detectorless
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url)
        page.locator("#restore-button").wait_for(timeout=60_000)
        assert page.locator("#mode input[value=aligned]").is_checked()
        page.locator("#input-image input[type=file]").set_input_files(str(EXAMPLES / "grace_hopper.jpg"))
        page.locator("#mode input[value=photo]").check()
        page.locator("#restore-button").click()
        toast = page.locator("[data-testid=toast-text]").first
        toast.wait_for(timeout=60_000)
        text = toast.inner_text()
        assert "OSDFACE_FACEXLIB_DIR=FOLDER" in text and "--facexlib-dir FOLDER" in text
        assert (
            "&lt;" not in text and "Places tried:\n" in text and "\n- local folder" in text.replace("  ", "")
        )
        page.screenshot(path=str(artifacts_dir / "app_toast_without_detector.png"))
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_browser_outputs_show_only_what_the_last_run_gave(detectorless, browser, artifacts_dir):
    """No label that lies: without a detector (the mode starts on aligned faces) no faces
    gallery; a Restore without turbulence after a preview hides the turbulent column; after an
    error, no result of the previous run is left beside the "Error"."""
    url, _ = detectorless
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url)
        page.locator("#restore-button").wait_for(timeout=60_000)
        assert page.locator("#mode input[value=aligned]").is_checked()
        assert not page.locator("#faces-gallery").is_visible()
        page.locator("#input-image input[type=file]").set_input_files(str(EXAMPLES / "astronaut_aligned.jpg"))
        page.locator("#metrics input").uncheck()
        page.locator("#preview-button").click()
        page.locator("#out-turbulent img").first.wait_for(timeout=120_000)
        assert not page.locator("#turbulence input").is_checked()
        page.locator("#restore-button").click()
        page.locator("#timing table").wait_for(timeout=180_000)
        page.locator("#out-turbulent").wait_for(state="hidden", timeout=10_000)
        page.locator("#before-after img").first.wait_for(timeout=30_000)

        page.locator("#mode input[value=photo]").check()  # no detector: an error
        page.locator("#restore-button").click()
        page.locator("[data-testid=toast-text]").first.wait_for(timeout=60_000)
        page.locator("#timing table").wait_for(state="detached", timeout=10_000)
        assert page.locator("#out-restored").get_by_text("Error", exact=True).is_visible()
        for element in ("out-input", "before-after", "out-without"):
            assert page.locator(f"#{element} img").count() == 0, element
        page.screenshot(path=str(artifacts_dir / "app_after_an_error.png"), full_page=True)
    finally:
        page.close()
