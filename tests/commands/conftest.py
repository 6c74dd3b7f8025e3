"""Fixtures of the commands' tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.faces import PortraitDetector, identity_pipeline, portrait

from osdface.faces import FaceRestorer


@pytest.fixture(scope="module")
def aligned_faces(tmp_path_factory) -> Path:
    """The two portraits' aligned 512x512 crops, as PNG files."""
    folder = tmp_path_factory.mktemp("aligned")
    for name in ("astronaut", "grace_hopper"):
        result = FaceRestorer(identity_pipeline(), PortraitDetector()).restore(portrait(name))
        result.faces[0].input_crop.save(folder / f"{name}.png")
    return folder
