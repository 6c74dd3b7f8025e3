"""``python app.py`` in a subprocess (``RunningApp``), the environment it runs in, and what the
browser tests share. Fixtures that start apps are in ``tests/app/conftest.py``."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
START_TIMEOUT = 240
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# JavaScript: wait until an <img> is decoded, then give its width in pixels.
DECODED_WIDTH = "img => img.decode().then(() => img.naturalWidth)"
# JavaScript: the size of the picture as shown (object-fit: contain fits it inside the box).
SHOWN_SIZE = """img => {
    const box = img.getBoundingClientRect();
    const scale = Math.min(box.width / img.naturalWidth, box.height / img.naturalHeight);
    const fit = getComputedStyle(img).objectFit;
    return fit === "contain"
        ? {width: img.naturalWidth * scale, height: img.naturalHeight * scale, fit}
        : {width: box.width, height: box.height, fit};
}"""


class RunningApp:
    """``python app.py`` in a subprocess, serving on ``url``; its output goes to ``log``."""

    def __init__(self, args: list[str], env: dict[str, str], workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = workdir / "app.log"
        self.downloads = workdir / "downloads"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py"), "--port", str(self.port), *args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_serving()

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"app.py exited with status {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "config", timeout=5) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as error:
                if error.code == 401:  # serving, behind --auth
                    return
                time.sleep(0.5)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        self.stop()
        pytest.fail(f"app.py did not serve within {START_TIMEOUT} s:\n{self.log_tail()}")

    def client(self, auth: tuple[str, str] | None = None):
        from gradio_client import Client

        return Client(self.url, verbose=False, download_files=str(self.downloads), auth=auth)

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return response.read().decode("utf-8")

    def output_once(self, text: str, timeout: float = 30) -> str:
        """The log once ``text`` is in it (lines printed just after the server answers)."""
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.log.read_text()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(tiny_hub, workdir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OSDFACE_", "GRADIO_"))}
    env.update(tiny_hub.env)
    env.update(
        {
            "OSDFACE_CACHE": str(workdir / "osdface-cache"),
            # no metric weights unless a test gives them (see tests/conftest.py)
            "OSDFACE_METRICS_REPO": os.environ["OSDFACE_METRICS_REPO"],
            "GRADIO_TEMP_DIR": str(workdir / "gradio"),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def write_faceless_retinaface(folder: Path) -> Path:
    """facexlib's RetinaFace ResNet-50, random weights, its face/background classifier set to
    answer "background" everywhere: a real detector that finds no face in any photo."""
    from facexlib.detection.retinaface import RetinaFace

    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))
    with torch.no_grad():
        for head in model.ClassHead:
            head.conv1x1.weight.zero_()
            # (background, face) logits per anchor
            head.conv1x1.bias.copy_(torch.tensor([8.0, -8.0]).repeat(head.num_anchors))
    torch.save(model.state_dict(), folder / "detection_Resnet50_Final.pth")
    return folder


def faceless_env(tiny_hub, workdir: Path) -> dict[str, str]:
    """``base_env`` with the tiny weights and a RetinaFace that finds no face (see
    ``write_faceless_retinaface``): whole photos answer "no face found"."""
    env = base_env(tiny_hub, workdir)
    env["OSDFACE_FACEXLIB_DIR"] = str(write_faceless_retinaface(workdir / "facexlib"))
    return env


def load_app_module():
    """app.py imported as a module (its ``build_demo``, ``CSS``), not run."""
    spec = importlib.util.spec_from_file_location("osdface_app_under_test", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chromium_path() -> str:
    """Debian's chromium; missing: a failure on CI (CI=true), else a skip."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    problem = None
    if not Path(path).exists():
        problem = "Debian's chromium is not installed (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "Python Playwright is not installed (pip install playwright)"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    return path
