"""Exactly one OpenCV, the headless one (issue 22): the environment the tests run in has one
distribution that provides cv2, its cv2 needs no libGL, and cv2, the turbulence preview and a
whole-photo restore work on a host without libGL.so.1 (simulated in a private mount namespace).
``osdface.runtime.opencv`` finds the same without importing cv2, for ``osdface doctor`` and the app."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement

from osdface.commands.doctor import opencv_check
from osdface.runtime import opencv

ROOT = Path(__file__).resolve().parents[1]
HELPER = ROOT / "tests" / "helpers" / "without_libgl.py"
FIX = "pip uninstall -y opencv-python opencv-python-headless && pip install -r requirements.txt"


def cv2_providers() -> dict[str, str]:
    """OpenCV's four distribution names that are installed and ship files under cv2/ (read from
    their RECORD here, apart from the module under test)."""
    found = {}
    for name in opencv.DISTRIBUTIONS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if any(str(path).startswith("cv2/") for path in dist.files or ()):
            found[name] = dist.version
    return found


def test_one_opencv_distribution_is_installed_the_headless_one():
    providers = cv2_providers()
    assert list(providers) == ["opencv-python-headless"], f"{providers}; fix: {FIX}"
    install = opencv.inspect_opencv()
    assert install.providers == providers and install.problem() is None
    # facexlib's opencv-python, where installed, is the stand-in: no files, only the headless one.
    for name, version in install.stand_ins.items():
        assert name == "opencv-python" and version == f"{providers['opencv-python-headless']}+headless"
        dist = metadata.distribution(name)
        assert [Requirement(text) for text in dist.requires] == [
            Requirement(f"opencv-python-headless=={providers['opencv-python-headless']}")
        ]
        assert all(".dist-info/" in str(path) for path in dist.files)
    check = opencv_check()
    assert check.ok and "opencv-python-headless" in check.detail and "links no libGL" in check.detail


def test_cv2s_extension_needs_no_libgl():
    install = opencv.inspect_opencv()
    assert install.extension is not None and install.extension.parent.name == "cv2"
    if sys.platform != "linux":
        pytest.skip("libGL.so.1 is a Linux question: cv2 is not an ELF file here")
    assert install.linked, "the ELF reader found no library at all"
    assert not any(name.startswith("libGL") for name in install.linked), install.gl_libraries
    if shutil.which("ldd"):  # the loader's own view, system libraries included
        listed = subprocess.run(["ldd", str(install.extension)], capture_output=True, text=True).stdout
        assert "libGL." not in listed, listed


def test_the_elf_reader_follows_bundled_libraries_as_the_loader_does():
    """numpy's extension finds its bundled OpenBLAS through its RPATH, and OpenBLAS needs
    gfortran: the reader names both, as `readelf -d` does one file at a time."""
    extension = next(Path(__import__("numpy").__file__).parent.glob("_core/_multiarray_umath*.so"), None)
    if sys.platform != "linux" or extension is None:
        pytest.skip("numpy's extension is not an ELF file here")
    needed, search = opencv.dynamic_entries(extension)
    if shutil.which("readelf"):
        listed = subprocess.run(["readelf", "-d", str(extension)], capture_output=True, text=True).stdout
        assert needed == re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", listed)
    linked = opencv.linked_libraries(extension)
    bundled = [name for name in needed if name not in linked or linked[name] == extension.name]
    assert set(needed) <= set(linked) and bundled
    through = {by for by in linked.values() if by != extension.name}
    assert search and through, (search, linked)  # something was found only through a bundled library


def test_two_distributions_or_a_gui_build_are_named_with_the_fix():
    gl = {"libGL.so.1": "libQt5Gui-1.so.5", "libc.so.6": "cv2.abi3.so"}
    both = opencv.OpenCVInstall(
        {"opencv-python": "5.0.0.93", "opencv-python-headless": "5.0.0.93"}, {}, Path("cv2.abi3.so"), gl
    )
    assert both.problem().startswith("2 OpenCV distributions are installed (opencv-python 5.0.0.93, ")
    assert "links libGL.so.1 (through libQt5Gui-1.so.5)" in both.problem()
    assert both.fix() == FIX
    gui = opencv.OpenCVInstall({"opencv-contrib-python": "4.10.0.84"}, {}, Path("cv2.abi3.so"), gl)
    assert "a GUI build: cv2.abi3.so links libGL.so.1" in gui.problem()
    assert gui.fix().startswith("pip uninstall -y opencv-contrib-python opencv-python opencv-python-headless")
    assert opencv.OpenCVInstall({}, {}, None).problem() == "no OpenCV is installed (nothing provides cv2)"
    fine = opencv.OpenCVInstall({"opencv-python-headless": "5"}, {"opencv-python": "5+headless"}, None, {})
    assert fine.problem() is None and "a stand-in without cv2" in fine.summary()


def test_the_app_logs_the_problem_with_the_fix_at_start(monkeypatch, caplog):
    two = opencv.OpenCVInstall({"opencv-python": "5", "opencv-python-headless": "5"}, {}, None)
    monkeypatch.setattr(opencv, "inspect_opencv", lambda: two)
    import logging

    message = opencv.log_opencv_problem(logging.getLogger("osdface.app.models"))
    assert message in caplog.text and FIX in message and '"One OpenCV"' in message
    monkeypatch.setattr(
        opencv, "inspect_opencv", lambda: opencv.OpenCVInstall({"opencv-python-headless": "5"}, {}, None)
    )
    assert opencv.log_opencv_problem(logging.getLogger("x")) is None


# ---------------------------------------------------------------------- a host without libGL


def libgl_files() -> list[Path]:
    """The libGL.so.1 files the dynamic loader would find (``ldconfig -p``), as real paths."""
    try:
        listed = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        listed = ""
    return sorted({Path(m).resolve() for m in re.findall(r"^\s*libGL\.so\.1 .*=> (\S+)$", listed, re.M)})


def hidden_libgl_command(command: list[str]) -> list[str]:
    """``command`` in a private mount namespace where every libGL.so.1 is /dev/null (the loader
    then fails with "file too short", as on a host without it); skips with the reason where
    that is not permitted. No libGL here: the command as it is."""
    files = libgl_files()
    if not files:
        return command
    if shutil.which("unshare") is None:
        pytest.skip("libGL.so.1 is installed and unshare(1) is missing, so it cannot be hidden")
    mounts = " && ".join(f"mount --bind /dev/null {path}" for path in files)
    probe = subprocess.run(["unshare", "-m", "sh", "-c", mounts], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"cannot hide libGL.so.1 in a private mount namespace here: {probe.stderr.strip()}")
    return ["unshare", "-m", "sh", "-c", f'{mounts} && exec "$0" "$@"', *command]


@pytest.mark.slow
def test_cv2_the_turbulence_preview_and_a_whole_photo_restore_work_without_libgl(tiny_hub, tmp_path):
    from facexlib.detection.retinaface import RetinaFace

    facexlib_dir = tmp_path / "facexlib"
    facexlib_dir.mkdir()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        detector = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))
    torch.save(detector.state_dict(), facexlib_dir / "detection_Resnet50_Final.pth")
    command = [sys.executable, str(HELPER), str(tmp_path / "out"), str(facexlib_dir)]
    command += [tiny_hub.weights_repo, tiny_hub.base_repo]
    env = {**os.environ, **tiny_hub.env}
    run = subprocess.run(hidden_libgl_command(command), env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    if libgl_files():
        assert report["libgl"] != "loaded" and "libGL.so.1" in report["libgl"], report  # it was hidden
    assert Path(report["preview"]).is_file()
    assert report["cli_status"] == 0 and report["cli_outputs"] == ["astronaut.png"], report
    assert report["faces"] == 1 and report["changed"] > 0.1, report
