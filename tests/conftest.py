"""Test set-up: every test runs offline against a temporary Hugging Face cache.

The environment is set here, at import, because huggingface_hub reads HF_HUB_CACHE and
HF_HUB_OFFLINE once when it is first imported.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="osdface-tests-"))
os.environ["HF_HOME"] = str(_SESSION_DIR / "hf-home")
os.environ["HF_HUB_CACHE"] = str(_SESSION_DIR / "hub")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["OSDFACE_CACHE"] = str(_SESSION_DIR / "osdface-cache")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
for name in ("OSDFACE_WEIGHTS", "OSDFACE_BASE_MODEL", "OSDFACE_WEIGHTS_REVISION", "OSDFACE_BASE_REVISION"):
    os.environ.pop(name, None)

import pytest  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_hub():
    """Tiny random OSDFace + SD 2.1 base repos in the session's Hub cache (see
    ``osdface.random_weights.TinyHub``: ``.weights_repo``, ``.base_repo``, ``.env``)."""
    from osdface.random_weights import write_tiny_hub

    return write_tiny_hub(os.environ["HF_HUB_CACHE"])


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_hub):
    """The tiny pipeline loaded through ``from_pretrained``, shared read-only by tests."""
    from osdface import OSDFacePipeline

    return OSDFacePipeline.from_pretrained(tiny_hub.weights_repo, base_model=tiny_hub.base_repo)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests keep files for people to look at (screenshots, plots)."""
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
