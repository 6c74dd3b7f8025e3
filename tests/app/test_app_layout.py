"""The page's widgets (``osdface.app.layout``): every example the page lists is a file the
repository ships, so the examples row is never silently short."""

from __future__ import annotations

from pathlib import Path

from osdface.app.layout import EXAMPLES, EXAMPLES_DIR

ROOT = Path(__file__).resolve().parents[2]


def test_every_listed_example_is_a_shipped_file():
    assert EXAMPLES_DIR == ROOT / "examples"
    missing = [
        example.request.image for example in EXAMPLES if not (EXAMPLES_DIR / example.request.image).is_file()
    ]
    assert len(EXAMPLES) >= 4 and missing == []
