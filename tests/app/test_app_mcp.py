"""The app as an MCP server (issue 22, item 2): ``python app.py --mcp`` serves the API's
endpoints as tools at /gradio_api/mcp/, driven here by the ``mcp`` package's own client over
the loopback; with a password the app refuses to start, because Gradio's MCP endpoint does not
check it (the last test shows that, on a bare Gradio app). Parsing the flag and the environment
variables is tested in test_arguments.py."""

from __future__ import annotations

import asyncio
import base64
import io
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
from helpers.running_app import EXAMPLES, ROOT, RunningApp, base_env, faceless_env, free_port
from PIL import Image

pytestmark = pytest.mark.timeout(600)

MCP_PATH = "gradio_api/mcp/"
# The page's endpoints (several outputs) and the agents' (one image out; see app._wire_agent_tools).
PAGE_RESTORE = [
    "image",
    "mode",
    "turbulence",
    "propagation_length",
    "seed",
    "ablation",
    "prompt",
    "color_fix",
    "metrics",
]
TOOLS = {
    "restore": PAGE_RESTORE,
    "degrade": ["image", "propagation_length", "seed"],
    "restore_faces": [name for name in PAGE_RESTORE if name not in ("ablation", "prompt", "metrics")],
    "simulate_turbulence": ["image", "propagation_length", "seed"],
}


@pytest.fixture(scope="module")
def mcp_app(tiny_hub, tmp_path_factory):
    """The tiny weights and a face detector that finds no face (so: aligned faces only)."""
    workdir = tmp_path_factory.mktemp("app-mcp")
    running = RunningApp(["--mcp"], faceless_env(tiny_hub, workdir), workdir)
    yield running
    running.stop()


async def _with_session(url: str, work):
    """``work(session)`` on an initialised MCP session over streamable HTTP."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(url) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        return await work(session)


def mcp(url: str, work):
    return asyncio.run(_with_session(url, work))


def list_tools(session):
    return session.list_tools()


def data_uri(path) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(np.int16)


@pytest.mark.slow
def test_the_tools_and_their_arguments_are_described(mcp_app):
    tools = {tool.name: tool for tool in mcp(mcp_app.url + MCP_PATH, list_tools).tools}
    for name, arguments in TOOLS.items():
        tool = tools[name]
        properties = tool.inputSchema["properties"]
        assert list(properties) == arguments, name
        assert tool.inputSchema["required"] == ["image"], name
        assert "Gradio File Input" in properties["image"]["format"], name
        for argument, schema in properties.items():
            assert schema["description"].strip(), (name, argument)
    assert tools["restore_faces"].description.startswith("Restore the faces in a photo with OSDFace")
    assert tools["simulate_turbulence"].description.startswith("Degrade an image with simulated atmospheric")
    assert "restore_faces returns the restored image alone" in tools["restore"].description
    for name in ("restore", "restore_faces"):
        assert tools[name].inputSchema["properties"]["mode"]["enum"] == ["photo", "aligned"], name
    assert (
        "http(s) URL or a data: URI"
        in tools["restore_faces"].inputSchema["properties"]["image"]["description"]
    )
    # the terminal names the endpoint and says it takes no password
    log = mcp_app.output_once("MCP server")
    assert f"{mcp_app.url}{MCP_PATH}" in log and "It takes no password" in log


def call(url: str, tool: str, arguments: dict) -> tuple[list[Image.Image], list[str]]:
    """The tool's images (all PNG) and texts; fails on an error result."""
    from mcp.types import ImageContent, TextContent

    result = mcp(url, lambda session: session.call_tool(tool, arguments))
    texts = [item.text for item in result.content if isinstance(item, TextContent)]
    assert not result.isError, texts
    contents = [item for item in result.content if isinstance(item, ImageContent)]
    assert [item.mimeType for item in contents] == ["image/png"] * len(contents)
    return [Image.open(io.BytesIO(base64.b64decode(item.data))) for item in contents], texts


@pytest.mark.slow
def test_an_agent_restores_a_face_and_simulates_turbulence_through_mcp(mcp_app):
    face = EXAMPLES / "astronaut_aligned.jpg"
    original = pixels(Image.open(face))
    url = mcp_app.url + MCP_PATH

    [restored], texts = call(url, "restore_faces", {"image": data_uri(face), "mode": "aligned", "seed": 0})
    assert restored.size == (512, 512)
    assert np.abs(pixels(restored) - original).mean() > 5
    # beside the image, its address on the app, which serves it
    [address] = [text.removeprefix("Image URL: ") for text in texts if text.startswith("Image URL: ")]
    assert address.startswith(mcp_app.url + "gradio_api/file=")
    with urllib.request.urlopen(address, timeout=30) as response:
        assert np.array_equal(pixels(Image.open(io.BytesIO(response.read()))), pixels(restored))

    arguments = {"image": data_uri(face), "propagation_length": 35000, "seed": 0}
    [turbulent], _ = call(url, "simulate_turbulence", arguments)
    assert turbulent.size == (512, 512) and np.abs(pixels(turbulent) - original).mean() > 1
    [again], _ = call(url, "simulate_turbulence", arguments)
    assert np.array_equal(pixels(again), pixels(turbulent))


@pytest.mark.slow
def test_a_request_the_app_cannot_serve_is_an_error_result_that_says_what_to_do(mcp_app):
    """The detector here finds no face: a whole photo gives the app's own message, as a tool error."""
    from mcp.types import TextContent

    photo = {"image": data_uri(EXAMPLES / "grace_hopper.jpg"), "mode": "photo"}
    result = mcp(mcp_app.url + MCP_PATH, lambda session: session.call_tool("restore_faces", photo))
    assert result.isError
    assert "No face was found in this photo" in " ".join(
        item.text for item in result.content if isinstance(item, TextContent)
    )


def test_the_page_and_the_agents_share_one_limit_of_restorations(app_module):
    """--concurrency bounds the restorations at once, whether they come from the page or MCP."""
    from osdface.app.models import LoadedModels, Part
    from osdface.app.requests import StudioSettings
    from osdface.app.service import Studio

    studio = Studio(
        LoadedModels(missing={Part.PIPELINE: "no weights in this test"}), settings=StudioSettings()
    )
    groups = {fn.api_name: fn.concurrency_id for fn in app_module.build_demo(studio).fns.values()}
    assert groups["restore"] == groups["restore_faces"]
    assert len({groups[name] for name in ("restore", "degrade", "simulate_turbulence")}) == 3


@pytest.mark.slow
def test_mcp_with_a_password_is_refused_at_start(tiny_hub, tmp_path):
    """A Space's two settings (OSDFACE_MCP and the OSDFACE_AUTH secret) together: the app stops
    before loading anything, says why and what to do, and never prints the password."""
    password = "correct horse:battery"
    env = base_env(tiny_hub, tmp_path)
    env.update({"OSDFACE_MCP": "1", "OSDFACE_AUTH": f"ann:{password}"})
    run = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert "OSDFACE_MCP (the MCP server) and a password (OSDFACE_AUTH) cannot be combined" in run.stderr
    assert "does not ask for the password" in run.stderr and "remove OSDFACE_AUTH to serve MCP" in run.stderr
    assert password not in run.stderr + run.stdout
    assert "Running on" not in run.stdout


@pytest.mark.slow
def test_gradios_mcp_endpoint_does_not_ask_for_the_apps_password():
    """Why the app refuses MCP with a password: with launch(auth=...) Gradio's API answers 401
    while its MCP endpoint lists the tools to a client that sent no credentials (gradio/mcp.py
    mounts its app beside the routes that check the login). When this fails, Gradio protects
    MCP and osdface.app.arguments.mcp_and_password can be revisited."""
    import gradio as gr

    def shout(text: str) -> str:
        """Shout.

        Args:
            text: what to shout.
        """
        return text.upper()

    with gr.Blocks() as demo:
        box = gr.Textbox()
        gr.Button().click(shout, box, box, api_name="shout")
    port = free_port()
    demo.queue().launch(
        server_port=port, prevent_thread_lock=True, quiet=True, auth=[("ann", "secret")], mcp_server=True
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "gradio_api/info", timeout=30)
        assert refused.value.code == 401
        assert [tool.name for tool in mcp(url + MCP_PATH, list_tools).tools] == ["shout"]
    finally:
        demo.close()
