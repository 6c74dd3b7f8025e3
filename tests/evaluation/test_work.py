"""Where eval-fr's --save-images and evaluate put each face (``osdface.evaluation.work.output_names``)."""

from __future__ import annotations

from pathlib import Path

from osdface.evaluation.work import output_names


def test_inputs_differing_only_in_extension_get_their_own_files():
    names = output_names(["x/a.bmp", "x/a.png", "x/b.jpg", "/abs/c.jpg", "x/a.jpg"])
    assert names == {
        "x/a.png": Path("x/a.png"),  # a .png keeps its name whatever else is there
        "x/a.bmp": Path("x/a.bmp.png"),
        "x/a.jpg": Path("x/a.jpg.png"),
        "x/b.jpg": Path("x/b.png"),
        "/abs/c.jpg": Path("absolute/abs/c.png"),
    }
    assert len(set(names.values())) == len(names)
    # a key that is another key's full name as well
    clash = output_names(["a.bmp", "a.png", "a.bmp.png"])
    assert len(set(clash.values())) == 3 and clash["a.png"] == Path("a.png")
