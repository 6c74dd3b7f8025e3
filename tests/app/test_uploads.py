"""Reading an upload for the app (``osdface.app.uploads``): one voice for every refusal, from
the header when it can be."""

from __future__ import annotations

import io
import os
import struct

import numpy as np
import pytest
from PIL import Image, features

from osdface.app.models import LoadedModels, Part
from osdface.app.requests import RequestError
from osdface.app.service import Studio
from osdface.app.uploads import EXPIRED_UPLOAD, NOT_AN_UPLOAD, check_upload, read_image, upload_path

MAX_PIXELS = 25_000_000


def gif_with_huge_frame(screen: int, frame: int) -> bytes:
    """A GIF whose logical screen is ``screen`` pixels square and whose one frame is declared
    ``frame`` pixels square, with a 1-pixel LZW stream: a decompression bomb that Pillow's GIF
    plugin refuses while still parsing the header."""
    header = b"GIF89a" + struct.pack("<HH", screen, screen) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    descriptor = b"\x2c" + struct.pack("<HHHH", 0, 0, frame, frame) + b"\x00"
    return header + descriptor + b"\x02\x02\x44\x01\x00" + b"\x3b"


def test_a_gif_declaring_a_huge_frame_gets_the_apps_too_large_message(tmp_path):
    path = tmp_path / "frame_bomb.gif"
    path.write_bytes(gif_with_huge_frame(16, 60000))
    with pytest.raises(Image.DecompressionBombError):  # what Pillow says on its own
        Image.open(path)
    studio = Studio(LoadedModels(missing={Part.PIPELINE: "no weights in this test"}))
    calls = {
        "check_upload": lambda: check_upload(str(path), MAX_PIXELS),
        "read_image": lambda: read_image(str(path), MAX_PIXELS),
        "Studio.degrade": lambda: studio.degrade(str(path), 30_000.0, 0, tmp_path / "out"),
    }
    for name, call in calls.items():
        with pytest.raises(RequestError) as caught:
            call()
        message = str(caught.value)
        assert message.startswith(
            "This image is too large for the app (its header declares 3,600 megapixels"
        ), name
        assert "limit of 25.0 megapixels" in message and "Downscale it" in message, name
        assert "decompression bomb" not in message and str(path) not in message, name


def avif_bytes() -> bytes:
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "AVIF")
    return buffer.getvalue()


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow reads no AVIF")
def test_a_damaged_avif_is_refused_as_unreadable(tmp_path):
    data = bytearray(avif_bytes())
    pixels = data.find(b"mdat") + 8
    data[pixels : pixels + 36] = b"\xff" * 36  # what a bad transfer leaves
    path = tmp_path / "damaged.avif"
    path.write_bytes(bytes(data))
    check_upload(str(path), MAX_PIXELS)  # the header is fine
    with pytest.raises(RequestError, match=r"cannot be read as an image \(broken image data \(RuntimeError"):
        read_image(str(path), MAX_PIXELS)
    # The box that locates the image renamed: Pillow's AVIF plugin raises RuntimeError while
    # reading the header, which the header check took for a bug (a bare "Error" in the app).
    path.write_bytes(avif_bytes().replace(b"iloc", b"free", 1))
    check_upload(str(path), MAX_PIXELS)  # no size known: left to the loader, which says why
    with pytest.raises(
        RequestError, match=r"cannot be read as an image \(broken image header \(RuntimeError"
    ):
        read_image(str(path), MAX_PIXELS)


# --------------------------------------------------------------------------- only uploads are read


def test_upload_path_takes_only_files_in_the_upload_folder(tmp_path):
    folder = tmp_path / "gradio"
    (folder / "0123abcd").mkdir(parents=True)
    uploaded = folder / "0123abcd" / "face.png"
    Image.new("RGB", (32, 32)).save(uploaded)
    secret = tmp_path / "private_photo.png"
    Image.new("RGB", (32, 32)).save(secret)
    (folder / "link.png").symlink_to(secret)
    payload = {"path": str(uploaded), "meta": {"_type": "gradio.FileData"}}
    assert upload_path(payload, folder) == str(uploaded)
    assert upload_path({"path": str(uploaded)}, folder) == str(uploaded)
    assert upload_path(None, folder) is None
    refused = [
        str(secret),  # a bare path: never read
        str(uploaded),  # ... even of an upload: a client names files by Gradio's payload
        secret,
        {"path": str(secret), "meta": {"_type": "gradio.FileData"}},
        {"path": str(folder / ".." / "private_photo.png")},
        {"path": str(folder / "link.png")},  # a link in the folder to a file outside it
        {"path": str(tmp_path / "missing.png")},  # the same answer: no hint of what exists
        {"path": 12},
        "https://example.com/face.png",
    ]
    for value in refused:
        with pytest.raises(RequestError) as caught:
            upload_path(value, folder)
        assert str(caught.value) == NOT_AN_UPLOAD, value
    with pytest.raises(
        RequestError, match=r"Unexpected image input of type bytes\. The image must be uploaded"
    ):
        upload_path(b"\x89PNG", folder)


def test_an_upload_gone_from_the_upload_folder_has_expired(tmp_path):
    """Gradio deletes uploads after an hour (app.py's delete_cache): a page left open longer
    sends the name of a file that is gone, and is told to upload it again, not that it is no image."""
    folder = tmp_path / "gradio"
    (folder / "0123abcd").mkdir(parents=True)
    for payload in (
        {"path": str(folder / "0123abcd" / "face.png"), "meta": {"_type": "gradio.FileData"}},
        {"path": str(folder / "gone" / "face.png")},
    ):
        with pytest.raises(RequestError) as caught:
            upload_path(payload, folder)
        assert str(caught.value) == EXPIRED_UPLOAD
    assert (
        EXPIRED_UPLOAD == "This upload has expired (the app deletes uploads after an hour): upload it again."
    )
    # Outside the folder a missing file is answered as any other path: no hint of what exists.
    with pytest.raises(RequestError, match="must be uploaded to the app"):
        upload_path({"path": str(tmp_path / "gone.png")}, folder)


@pytest.fixture(scope="module")
def weightless_app(app_module):
    """(url, demo): the app without model weights (the turbulence works), in this process."""
    from helpers.running_app import free_port

    demo = app_module.build_demo(Studio(LoadedModels(missing={Part.PIPELINE: "no weights in this test"})))
    demo.queue()
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, ssr_mode=False, quiet=True, show_error=True)
    yield f"http://127.0.0.1:{port}/", demo
    demo.close()


def test_the_endpoints_refuse_a_server_path_that_was_never_uploaded(weightless_app, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    url, _demo = weightless_app
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    secret = tmp_path / "private_photo.png"  # a file on the server that no client uploaded
    Image.fromarray(rgb).save(secret)
    client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
    never_uploaded = (str(secret), {"path": str(secret)}, str(tmp_path / "missing.png"), "/etc")
    endpoints = {"/simulate_turbulence": (30_000, 0), "/restore_faces": (), "/degrade": (30_000, 0)}
    for api_name, settings in endpoints.items():
        for image in never_uploaded:
            with pytest.raises(AppError) as caught:
                client.predict(image, *settings, api_name=api_name)
            message = str(caught.value)
            if api_name == "/degrade" and isinstance(image, str):
                continue  # the page's image widget: Gradio itself refuses a string (as not an image)
            assert "must be uploaded to the app, not named by a path on the server" in message, (
                api_name,
                image,
            )
            assert "handle_file" in message and str(tmp_path) not in message
    # The same photo uploaded by the client is read.
    turbulent = client.predict(handle_file(str(secret)), 30_000, 0, api_name="/simulate_turbulence")
    assert Image.open(turbulent).size == (64, 64)
    with pytest.raises(AppError, match="no weights in this test"):  # past the upload check
        client.predict(handle_file(str(secret)), api_name="/restore_faces")


def test_the_endpoints_say_an_expired_upload_has_expired(weightless_app, tmp_path):
    import httpx
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url, _demo = weightless_app
    face = tmp_path / "face.png"
    Image.new("RGB", (64, 64), (120, 90, 60)).save(face)
    with open(face, "rb") as stream:
        (uploaded,) = httpx.post(url + "gradio_api/upload", files={"files": stream}).json()
    client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
    assert Image.open(client.predict({"path": uploaded}, 30_000, 0, api_name="/degrade")[0]).size == (64, 64)
    os.remove(uploaded)  # what delete_cache does an hour later
    for api_name in ("/degrade", "/simulate_turbulence", "/restore_faces"):
        with pytest.raises(AppError, match=r"This upload has expired .*: upload it again\.") as caught:
            client.predict(
                {"path": uploaded}, *(() if api_name == "/restore_faces" else (30_000, 0)), api_name=api_name
            )
        assert "cannot be read as an image" not in str(caught.value)
