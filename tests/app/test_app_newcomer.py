"""What a newcomer meets first (issue 13), through the page's API with ``gradio_client``.

An app built by ``app.build_demo`` runs in this process with the tiny pipeline (and its text
encoder) but no face detector: whole photos are off, as on a machine where facexlib's weights
cannot be downloaded. Start-up with the Hub unreachable, the banner, the public-link lines and
the browser are in tests/app/test_app.py (``python app.py`` as a subprocess).
"""

from __future__ import annotations

import asyncio
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers.running_app import EXAMPLES
from PIL import Image

from osdface.app.models import LoadedModels, Part
from osdface.app.service import Studio

pytestmark = pytest.mark.timeout(300)


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` but whose data holds two rows: anything
    that decodes it fails, so a refusal that names its size came from the header alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (3 * width + 1) * 2)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )
    return path


def client_for(url: str, tmp_path: Path):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=str(tmp_path))


def restore_args(file, mode="aligned", turbulence=False, ablation=False):
    from gradio_client import handle_file

    return (handle_file(str(file)), mode, turbulence, 30000, 0, ablation, "", "none")


def component(demo, elem_id: str) -> dict:
    for block in demo.config["components"]:
        if block["props"].get("elem_id") == elem_id:
            return block["props"]
    raise AssertionError(f"no component #{elem_id}")


# --------------------------------------------------------------------------- item 3: default mode


def test_without_a_detector_the_mode_starts_on_aligned_and_says_why(detectorless):
    url, demo = detectorless
    mode = component(demo, "mode")
    assert mode["value"] == "aligned"
    labels = {value: label for label, value in mode["choices"]}
    assert labels["photo"].startswith("Whole photo: off, the face detector's weights are missing")
    assert labels["aligned"] == "Aligned face (512x512, FFHQ)"
    restore = component(demo, "restore-button")
    assert restore["value"] == "Restore" and restore["interactive"] is not False


# --------------------------------------------------------------------------- item 4: plain text


@pytest.mark.slow
def test_messages_over_the_api_are_plain_text_with_one_place_a_line(detectorless, tmp_path):
    from gradio_client.exceptions import AppError

    url, _ = detectorless
    client = client_for(url, tmp_path)
    with pytest.raises(AppError) as info:
        client.predict(*restore_args(EXAMPLES / "grace_hopper.jpg", mode="photo"), api_name="/restore")
    message = str(info.value)
    assert "Whole-photo mode is unavailable" in message
    assert "OSDFACE_FACEXLIB_DIR=FOLDER" in message and "--facexlib-dir FOLDER" in message
    for entity in ("&lt;", "&gt;", "&amp;", "&quot;", "&#"):
        assert entity not in message
    lines = message.splitlines()
    assert lines[0] == "Whole-photo mode is unavailable because the face detector could not be loaded."
    tried = lines.index("facexlib weight file 'detection_Resnet50_Final.pth' is not available. Places tried:")
    assert lines[tried + 1].startswith("  - local folder ") and lines[tried + 2].startswith("  - cache ")
    assert "Fix, any one of:" in lines

    # Text a user typed comes back readable, without entities and without anything a browser
    # would take for a tag.
    with pytest.raises(AppError) as info:
        client.predict(
            *restore_args(EXAMPLES / "astronaut_aligned.jpg", mode="<b>aligned</b> & co"), api_name="/restore"
        )
    message = str(info.value)
    assert "Unknown mode" in message and "\u2039b\u203aaligned\u2039/b\u203a & co" in message
    assert "<" not in message and "&amp;" not in message


# --------------------------------------------------------------------------- item 5: size limits


@pytest.mark.slow
@pytest.mark.parametrize(
    ("width", "height", "mode", "expected"),
    [
        (
            30000,
            30000,
            "aligned",
            "image is 30000x30000 = 900.0 megapixels, over the limit of 25.0 megapixels",
        ),
        (
            10000,
            10000,
            "aligned",
            "image is 10000x10000 = 100.0 megapixels, over the limit of 25.0 megapixels",
        ),
        (6000, 4000, "aligned", "An aligned face must be square, and this image is 6000x4000"),
    ],
    ids=["pillow-bomb-size", "over-our-limit", "non-square-aligned"],
)
def test_oversize_and_non_square_inputs_are_refused_from_the_header(
    detectorless, tmp_path, width, height, mode, expected
):
    from gradio_client.exceptions import AppError

    url, _ = detectorless
    claimed = png_header_only(tmp_path / f"claims_{width}x{height}.png", width, height)
    with pytest.raises(AppError) as info:
        client_for(url, tmp_path / "downloads").predict(
            *restore_args(claimed, mode=mode), api_name="/restore"
        )
    message = str(info.value)
    assert expected in message
    assert "decompression bomb" not in message and "cannot be read" not in message
    if width * height > 25e6:
        assert message.startswith("This image is too large for the app")
    # The turbulence preview speaks with the same voice.
    if width * height > 25e6:
        from gradio_client import handle_file

        with pytest.raises(AppError, match="too large for the app"):
            client_for(url, tmp_path / "downloads").predict(
                handle_file(str(claimed)), 30000, 0, api_name="/degrade"
            )


# --------------------------------------------------------------------------- item 6: progress


async def _all_updates(job) -> list:
    return [update async for update in job]


@pytest.mark.slow
def test_progress_reports_each_stage_and_face_with_the_time_left(detectorless, tmp_path):
    url, _ = detectorless
    job = client_for(url, tmp_path).submit(
        *restore_args(EXAMPLES / "astronaut_aligned.jpg", turbulence=True, ablation=True), api_name="/restore"
    )
    updates = asyncio.run(_all_updates(job))
    assert job.result(timeout=120)[2] is not None
    texts = [
        unit.desc for update in updates for unit in getattr(update, "progress_data", None) or [] if unit.desc
    ]
    joined = "\n".join(texts)
    for part in (
        "Simulating turbulence",
        "Face 1 of 1 (with VRE): visual tokens (VRE)",
        "Face 1 of 1 (with VRE): VAE encode",
        "Face 1 of 1 (with VRE): UNet step",
        "Face 1 of 1 (with VRE): VAE decode",
        "Face 1 of 1 (without VRE): text tokens",
        "Face 1 of 1 (without VRE): UNet step",
        "Writing the PNGs",
    ):
        assert part in joined, (part, texts)
    assert any(text.endswith(" left") for text in texts if "UNet step" in text), texts


# --------------------------------------------------------------------------- items 7, 8, 11: the page


def page_order(demo) -> list[int]:
    """Component ids in the order the page shows them (the layout tree, depth first)."""

    def walk(node):
        yield node["id"]
        for child in node.get("children", []):
            yield from walk(child)

    return list(walk(demo.config["layout"]))[1:]  # without the page itself


def component_id(demo, elem_id: str) -> int:
    (found,) = [c["id"] for c in demo.config["components"] if c["props"].get("elem_id") == elem_id]
    return found


def test_only_the_shared_page_says_it_is_public_at_the_top(app_module):
    studio = Studio(LoadedModels(missing={Part.PIPELINE: "no weights in this test"}))
    shared = app_module.build_demo(studio, share=True)
    local = app_module.build_demo(studio)

    def mentions_the_link(demo):
        return [
            c["props"].get("elem_id")
            for c in demo.config["components"]
            if "gradio.live" in str(c["props"].get("value", ""))
        ]

    assert mentions_the_link(shared) == ["share-note"] and mentions_the_link(local) == []
    # Right under the title: above the missing-weights banner and every input.
    order = page_order(shared)
    assert order.index(component_id(shared, "share-note")) == 1
    assert order.index(component_id(shared, "share-note")) < order.index(component_id(shared, "input-image"))
    # The page and the terminal line printed with the link give it the same lifetime.
    lifetime = re.compile(r"for up to (\d+ \w+)")
    on_page = lifetime.search(component(shared, "share-note")["value"])
    printed = lifetime.search(
        app_module.launch_message("http://127.0.0.1:7860/", "https://abc.gradio.live", True, 3.2)
    )
    assert on_page and printed and on_page.group(1) == printed.group(1)


def test_the_public_note_shows_only_once_the_share_link_exists(app_module):
    """--share may fail (offline, a blocked tunnel): the app then stays local, and the page must
    not tell its visitors that it is public. The note is hidden until a page loads while the
    share link exists (Gradio sets ``demo.share_url`` in launch, after the page is built)."""
    studio = Studio(LoadedModels(missing={Part.PIPELINE: "no weights in this test"}))
    shared = app_module.build_demo(studio, share=True)
    note = component_id(shared, "share-note")
    assert component(shared, "share-note")["visible"] is False
    (shows,) = [d for d in shared.config["dependencies"] if note in d["outputs"]]
    assert [event for _, event in shows["targets"]] == ["load"]
    assert shared.fns[shows["id"]].fn().visible is False  # no link: launch could not create one
    shared.share_url = "https://abc.gradio.live"
    assert shared.fns[shows["id"]].fn().visible is True


def test_launch_lines_name_the_share_flag_and_the_public_links_lifetime(app_module):
    local = app_module.launch_message("http://127.0.0.1:7860/", None, False, 3.2)
    assert "restart with --share" in local and "share=True" not in local and "started in 3.2 s" in local
    public = app_module.launch_message("http://127.0.0.1:7860/", "https://abc.gradio.live", True, 3.2)
    assert "Running on public URL: https://abc.gradio.live" in public
    assert "PUBLIC" in public and "1 week" in public
    failed = app_module.launch_message("http://127.0.0.1:7860/", None, True, 3.2)
    assert "could not be created" in failed and "local only" in failed


def test_the_contain_rule_reaches_the_before_after_slider(detectorless, app_module):
    """The slider keeps the image's aspect ratio through the page's CSS: the rule must name an
    element the page really has, and that element must be the slider."""
    _, demo = detectorless
    types = {c["props"].get("elem_id"): c["type"] for c in demo.config["components"]}
    rules = re.findall(r"([^{}]+)\{([^}]*)\}", re.sub(r"/\*.*?\*/", "", app_module.CSS, flags=re.S))
    contained = [
        element
        for selectors, body in rules
        if re.search(r"object-fit:\s*contain", body)
        for element in re.findall(r"#([\w-]+)[^,]*\bimg\b", selectors)
    ]
    assert contained and all(types.get(element) == "imageslider" for element in contained), contained
    assert component(demo, "before-after")["height"] == app_module.SLIDER_HEIGHT


def test_the_ablation_note_shows_exactly_when_the_without_vre_result_does(detectorless, app_module):
    _, demo = detectorless
    parents = {}

    def walk(node, parent=None):
        parents[node["id"]] = parent
        for child in node.get("children", []):
            walk(child, node["id"])

    walk(demo.config["layout"])
    column = parents[component_id(demo, "ablation-note")]
    assert parents[component_id(demo, "out-without")] == column
    kinds = {c["id"]: c for c in demo.config["components"]}
    assert kinds[column]["type"] == "column" and kinds[column]["props"]["visible"] is False
    # The "compare without VRE" switch shows and hides that column (with the prompt box).
    switch = component_id(demo, "ablation")
    (toggle,) = [d for d in demo.config["dependencies"] if [switch, "change"] in map(list, d["targets"])]
    assert column in toggle["outputs"]
    for on in (True, False):
        updates = dict(zip(toggle["outputs"], demo.fns[toggle["id"]].fn(on)))
        assert updates[column].visible is on
    assert component(demo, "ablation-note")["value"] == app_module.ABLATION_NOTE


# --------------------------------------------------------------------------- labels that tell the truth


def weightless(app_module, **settings):
    from osdface.app.requests import StudioSettings

    missing = LoadedModels(missing={Part.PIPELINE: "no weights in this test"})
    return app_module.build_demo(Studio(missing, settings=StudioSettings(**settings)))


def chained(demo, after: dict, when: str) -> dict:
    """The one event that runs after ``after`` (when: "then", "success" or "failure")."""
    found = [
        d
        for d in demo.config["dependencies"]
        if d["trigger_after"] == after["id"]
        and (d["trigger_only_on_success"], d["trigger_only_on_failure"])
        == {"then": (False, False), "success": (True, False), "failure": (False, True)}[when]
        and d["api_visibility"] == "private"
    ]
    assert len(found) == 1, found
    return found[0]


def endpoint(demo, api_name: str) -> dict:
    (found,) = [d for d in demo.config["dependencies"] if d["api_name"] == api_name]
    return found


def test_an_example_leaves_the_metrics_switch_alone(app_module):
    """With --no-metrics the switch is off and disabled: an example must not tick it."""
    demo = weightless(app_module, metrics=False)
    assert component(demo, "metrics")["value"] is False and component(demo, "metrics")["interactive"] is False
    (dataset,) = [c["id"] for c in demo.config["components"] if c["type"] == "dataset"]
    loads = [d for d in demo.config["dependencies"] if dataset in [target for target, _ in d["targets"]]]
    assert loads and all(component_id(demo, "metrics") not in d["outputs"] for d in loads)
    assert all(component_id(demo, "mode") in d["outputs"] for d in loads)


def test_the_faces_gallery_starts_hidden_where_the_mode_starts_on_aligned(detectorless, app_module):
    _, demo = detectorless
    assert (
        component(demo, "mode")["value"] == "aligned" and component(demo, "faces-gallery")["visible"] is False
    )
    photo = weightless(app_module)  # no pipeline: the detector is not what is missing
    assert (
        component(photo, "mode")["value"] == "photo"
        and component(photo, "faces-gallery")["visible"] is not False
    )


def test_after_a_restore_the_turbulent_column_follows_the_switch_again(app_module):
    """The preview shows the turbulent column whatever the switch says; a Restore after it with
    turbulence off returns no turbulent image, so the column must go."""
    demo = weightless(app_module)
    follow = chained(demo, endpoint(demo, "restore"), "then")
    column = follow["outputs"]
    assert follow["inputs"] == [component_id(demo, "turbulence")]
    assert chained(demo, endpoint(demo, "degrade"), "success")["outputs"] == column  # what it undoes
    for on in (False, True):
        assert demo.fns[follow["id"]].fn(on).visible is on


def test_after_an_error_no_output_shows_the_previous_run(app_module):
    """Only the OSDFace result shows "Error" (show_progress_on); every other result of the
    previous run, and the comparison's, is cleared beside it."""
    demo = weightless(app_module)
    restore = endpoint(demo, "restore")
    clear = chained(demo, restore, "failure")
    restored = component_id(demo, "out-restored")
    assert restore["show_progress_on"] == [restored]
    stale = set(restore["outputs"]) - {restored} | set(endpoint(demo, "compare")["outputs"])
    assert set(clear["outputs"]) == stale and clear["show_progress"] == "hidden"
    values = demo.fns[clear["id"]].fn()
    kinds = {c["id"]: c["type"] for c in demo.config["components"]}
    compared = set(endpoint(demo, "compare")["outputs"])
    for output, value in zip(clear["outputs"], values, strict=True):
        update = value if isinstance(value, dict) else {"value": value}
        assert update["value"] in (None, ""), (kinds[output], value)
        if output in compared and kinds[output] == "image":  # hidden, as when none is chosen
            assert update["visible"] is False


# --------------------------------------------------------------------------- headers


def test_header_size_reads_only_the_header(tmp_path):
    from osdface.app.uploads import header_size

    assert header_size(png_header_only(tmp_path / "a.png", 30000, 20000)) == (30000, 20000)
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "b.jpg")
    assert header_size(tmp_path / "b.jpg") == (30, 20)
    (tmp_path / "c.txt").write_text("not an image")
    assert header_size(tmp_path / "c.txt") is None
