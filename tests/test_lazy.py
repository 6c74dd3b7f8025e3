"""``osdface.lazy``: package namespaces that import a submodule on first use, and stand-ins for
other libraries that import them on first attribute access."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from osdface import lazy


def run_python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_package_imports_a_submodule_only_when_one_of_its_names_is_used():
    code = (
        "import sys, osdface.degradations as d; "
        "print('osdface.degradations.turbulence' in sys.modules, 'torch' in sys.modules); "
        "d.simulate_turbulence; print('osdface.degradations.turbulence' in sys.modules)"
    )
    assert run_python(code).splitlines() == ["False False", "True"]


def test_attach_answers_names_and_submodules_and_refuses_the_rest():
    getattr_, dir_, all_ = lazy.attach("osdface.images", {"reading": ["load_image"]})
    assert all_ == ["load_image"]
    assert getattr_("load_image").__module__ == "osdface.images.reading"
    assert getattr_("reading").__name__ == "osdface.images.reading"
    assert dir_() == ["load_image", "reading"]
    with pytest.raises(AttributeError, match="'osdface.images' has no attribute 'nothing'"):
        getattr_("nothing")
    with pytest.raises(ValueError, match="name both a submodule and an exported name"):
        lazy.attach("osdface.images", {"reading": ["reading"]})


def test_a_stand_in_imports_on_first_attribute_and_forwards_assignments():
    code = (
        "import sys; from osdface import lazy; m = lazy.module('colorsys'); "
        "print('colorsys' in sys.modules); print(m.rgb_to_hsv(1, 0, 0)); "
        "m.ONE_THIRD = 0.5; import colorsys; print(colorsys.ONE_THIRD)"
    )
    assert run_python(code).splitlines() == ["False", "(0.0, 1.0, 1)", "0.5"]


def test_a_stand_in_gives_every_thread_the_same_module():
    stand_in = lazy.module("json.decoder")
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(stand_in.JSONDecoder)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    import json.decoder

    assert seen == [json.decoder.JSONDecoder] * 8
