"""A GPU that CUDA cannot start is named, with the numbers and the fix, in the app's banner and
log, in ``osdface doctor`` and in ``osdface restore`` (issue 18, item 3). Each condition is
simulated: the driver's files in a temporary /proc and /dev, libcuda's answer, torch's
``cuda.is_available()``, ``version.cuda`` and ``cuda.init()`` patched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement

from osdface.runtime import cuda_diagnosis
from osdface.runtime.cuda_diagnosis import (
    CudaUnavailableError,
    NvidiaDriver,
    TorchCuda,
    check_requested_device,
    cuda_version_text,
    diagnose,
    diagnose_cuda,
    find_nvidia_driver,
    read_driver_version,
)

ROOT = Path(__file__).resolve().parents[2]
PROPRIETARY = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024\n"
    "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
)
OPEN = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (dvs-builder@U16)\n"
)
PINNED_INSTALL = "pip install torch==2.8.0 torchvision==0.23.0"


def driver_535(**changes) -> NvidiaDriver:
    return NvidiaDriver(
        **{"version": "535.183.01", "cuda": "12.2", "device_nodes": ("/dev/nvidia0",), **changes}
    )


def torch_build(cuda: str | None = "13.0", **changes) -> TorchCuda:
    return TorchCuda(**{"version": "2.11.0", "cuda": cuda, "available": False, **changes})


def test_the_pinned_torch_in_the_fix_is_the_one_requirements_txt_installs():
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith(("#", "-")):  # comments, pip options
            requirement = Requirement(line)
            if requirement.name in ("torch", "torchvision"):
                pins.setdefault(requirement.name, set()).add(next(iter(requirement.specifier)).version)
    assert pins == {
        "torch": {cuda_diagnosis.PINNED_TORCH},
        "torchvision": {cuda_diagnosis.PINNED_TORCHVISION},
    }


def test_driver_files_are_read_without_starting_cuda(tmp_path):
    (tmp_path / "version").write_text(PROPRIETARY)
    assert read_driver_version(tmp_path / "version") == "535.183.01"
    (tmp_path / "version").write_text(OPEN)
    assert read_driver_version(tmp_path / "version") == "580.159.04"
    assert read_driver_version(tmp_path / "missing") is None
    assert cuda_version_text(12020) == "12.2" and cuda_version_text(13000) == "13.0"
    assert cuda_version_text(12090) == "12.9"

    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidiactl", "nvidia-uvm", "nvidia0", "nvidia1"):
        (dev / name).touch()
    driver = find_nvidia_driver(tmp_path / "version", dev, library="libcuda-not-here.so.1")
    assert driver.present and driver.version == "580.159.04"
    assert driver.device_nodes == (str(dev / "nvidia0"), str(dev / "nvidia1"))
    assert driver.cuda is None and "libcuda-not-here.so.1" in driver.library_error
    # no driver, no node: not a GPU machine, and libcuda is not even asked
    assert (
        find_nvidia_driver(tmp_path / "missing", tmp_path / "empty", "libcuda-not-here.so.1")
        == NvidiaDriver()
    )


def test_a_driver_older_than_the_build_names_both_versions_and_the_pinned_build():
    problem = diagnose(driver_535(), torch_build("13.0"), environ={})
    assert problem.kind == "driver_too_old"
    assert "535.183.01" in problem.reason and "CUDA up to 12.2" in problem.reason
    assert (
        "2.11.0" in problem.reason and "CUDA 13.0 build" in problem.reason and "580.65.06" in problem.reason
    )
    assert (
        problem.fix.startswith(PINNED_INSTALL) and "CUDA 12.8 build that runs on this driver" in problem.fix
    )
    assert "580 series" in problem.fix
    assert (problem.driver_cuda, problem.torch_cuda) == ("12.2", "13.0")
    message = problem.message()
    assert message.splitlines()[0] == "A GPU is present but CUDA cannot start, so the models run on the CPU."
    assert "Fix: " + PINNED_INSTALL in message


def test_a_driver_for_cuda_11_must_be_upgraded_first():
    problem = diagnose(
        driver_535(version="470.256.02", cuda="11.4"), torch_build("12.8", version="2.8.0"), {}
    )
    assert problem.kind == "driver_too_old" and "CUDA up to 11.4" in problem.reason
    assert (
        problem.fix.startswith("upgrade the NVIDIA driver to 525.60.13 or newer")
        and PINNED_INSTALL in problem.fix
    )


def test_a_cuda_12_build_on_a_cuda_12_driver_is_not_called_too_old():
    # 12.8 on a 12.2 driver runs (minor-version compatibility): a failure there is something else
    problem = diagnose(
        driver_535(), torch_build("12.8", version="2.8.0", init_error="CUDA error: unknown error"), {}
    )
    assert problem.kind == "cuda_error" and "CUDA error: unknown error" in problem.reason
    assert "nvidia-smi" in problem.fix


@pytest.mark.parametrize(
    ("driver", "build", "environ", "kind", "words"),
    [
        (
            driver_535(),
            torch_build(None, version="2.8.0+cpu"),
            {},
            "cpu_build",
            ["CPU-only build", "2.8.0+cpu"],
        ),
        (
            driver_535(),
            torch_build("12.8"),
            {"CUDA_VISIBLE_DEVICES": ""},
            "hidden",
            ["CUDA_VISIBLE_DEVICES=''"],
        ),
        (driver_535(), torch_build("12.8"), {"CUDA_VISIBLE_DEVICES": "-1"}, "hidden", ["hides every GPU"]),
        (
            driver_535(device_nodes=()),
            torch_build("12.8"),
            {},
            "no_device_node",
            ["/dev/nvidia0", "535.183.01"],
        ),
        (
            driver_535(cuda=None, library_error="libcuda.so.1 could not be loaded (not found)"),
            torch_build("12.8"),
            {},
            "no_driver_library",
            ["libcuda.so.1 could not be loaded"],
        ),
    ],
)
def test_each_cause_is_named_with_its_fix(driver, build, environ, kind, words):
    problem = diagnose(driver, build, environ)
    assert problem.kind == kind
    for word in words:
        assert word in problem.reason
    assert problem.fix and problem.fix in problem.message()


def test_no_problem_when_cuda_works_or_there_is_no_gpu():
    assert diagnose(driver_535(), torch_build("12.8", available=True), {}) is None
    assert diagnose(NvidiaDriver(), torch_build("12.8"), {}) is None


@pytest.fixture
def gpu_machine(tmp_path, monkeypatch):
    """This machine as one with a 535 driver whose CUDA torch cannot start: the driver's files
    in a temporary /proc and /dev, libcuda answering 12020, torch's CUDA patched."""
    (tmp_path / "version").write_text(PROPRIETARY)
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "nvidia0").touch()
    monkeypatch.setattr(cuda_diagnosis, "PROC_DRIVER_VERSION", tmp_path / "version")
    monkeypatch.setattr(cuda_diagnosis, "DEV_DIR", tmp_path / "dev")
    monkeypatch.setattr(cuda_diagnosis, "read_driver_cuda_version", lambda library=None: ("12.2", None))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")

    def init():
        raise RuntimeError("The NVIDIA driver on your system is too old (found version 12020).")

    monkeypatch.setattr(torch.cuda, "init", init)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_this_machine_diagnosed_through_the_real_probes(gpu_machine):
    problem = diagnose_cuda()
    assert problem.kind == "driver_too_old"
    assert (problem.driver_version, problem.driver_cuda, problem.torch_cuda) == ("535.183.01", "12.2", "13.0")
    assert problem.torch_version == torch.__version__


def test_no_gpu_here_means_no_problem_and_cuda_is_not_even_tried(tmp_path, monkeypatch):
    monkeypatch.setattr(cuda_diagnosis, "PROC_DRIVER_VERSION", tmp_path / "none")
    monkeypatch.setattr(cuda_diagnosis, "DEV_DIR", tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(
        torch.cuda, "init", lambda: pytest.fail("CUDA was started on a machine without a GPU")
    )
    assert diagnose_cuda() is None


def test_the_command_line_warns_by_default_and_refuses_an_explicit_cuda(gpu_machine):
    assert check_requested_device(None).kind == "driver_too_old"
    assert check_requested_device("cpu") is None
    with pytest.raises(CudaUnavailableError) as raised:
        check_requested_device("cuda")
    assert raised.value.source == "--device cuda" and raised.value.fix.startswith(PINNED_INSTALL)
    assert "12.2" in str(raised.value) and "13.0" in str(raised.value)
    assert "--device cpu, or leave --device out" in raised.value.fix


@pytest.fixture
def machine_without_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(cuda_diagnosis, "PROC_DRIVER_VERSION", tmp_path / "none")
    monkeypatch.setattr(cuda_diagnosis, "DEV_DIR", tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.mark.parametrize("asked", ["cuda", "cuda:0"])
def test_an_explicit_cuda_on_a_machine_without_a_gpu_is_refused_before_anything_loads(
    machine_without_gpu, asked
):
    """No NVIDIA GPU at all is no problem by default (the CPU is expected), but --device cuda
    would fail later, with torch's traceback, once the models have loaded."""
    assert check_requested_device(None) is None
    with pytest.raises(CudaUnavailableError) as raised:
        check_requested_device(asked)
    assert raised.value.source == f"--device {asked}"
    assert "no NVIDIA GPU" in raised.value.reason
    assert (
        raised.value.fix
        == "--device cpu, or leave --device out (the GPU is used when CUDA works, else the CPU)."
    )


def test_a_gpu_index_past_the_last_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_requested_device("cuda:1") is None
    with pytest.raises(CudaUnavailableError) as raised:
        check_requested_device("cuda:2")
    assert "CUDA sees 2 GPUs (cuda:0 to cuda:1)" in raised.value.reason
    assert raised.value.fix.startswith("--device cuda:0")


# --------------------------------------------------------------------------- the app and doctor


def _settings(tiny_hub, **model):
    from osdface.app.requests import StudioSettings
    from osdface.commands.model_options import ModelOptions

    return StudioSettings(
        model=ModelOptions(weights=tiny_hub.weights_repo, base_model=tiny_hub.base_repo, **model)
    )


@pytest.mark.slow
def test_the_app_serves_on_the_cpu_under_a_banner_that_says_why(gpu_machine, tiny_hub, tmp_path, capsys):
    import app
    from osdface.app.layout import gpu_banner_html
    from osdface.app.requests import RestoreRequest
    from osdface.app.service import Studio

    studio = Studio.load(_settings(tiny_hub, device="cuda", facexlib_dir=tmp_path))
    assert studio.available and studio.device.type == "cpu"
    problem = studio.models.gpu_problem
    assert problem.kind == "driver_too_old"
    banner = gpu_banner_html(studio)
    assert 'id="gpu-banner"' in banner and "CUDA up to 12.2" in banner and "CUDA 13.0 build" in banner
    assert PINNED_INSTALL in banner and "CPU speed" in banner

    demo = app.build_demo(studio)
    config = demo.get_config_file()
    assert any("gpu-banner" in str(c["props"].get("value", "")) for c in config["components"])

    face = ROOT / "examples" / "astronaut_aligned.jpg"
    request = RestoreRequest(str(face), "aligned")
    prepared = studio.prepare(request)
    outcome = studio.finish(prepared, studio.run(prepared), tmp_path / "out")
    assert Path(outcome.restored).is_file()


@pytest.mark.slow
def test_the_app_logs_the_problem_at_start_up(gpu_machine, tiny_hub, tmp_path, monkeypatch, capsys):
    import app

    launched = {}

    class Demo:
        local_url, share_url = "http://127.0.0.1:7860/", None
        server_name, server_port = "127.0.0.1", 7860

        def queue(self, **kwargs):
            return self

        def launch(self, **kwargs):
            launched.update(kwargs)

        def block_thread(self):
            pass

    monkeypatch.setattr(app, "build_demo", lambda studio, **kwargs: Demo())
    app.main(
        [
            "--weights", tiny_hub.weights_repo, "--base-model", tiny_hub.base_repo,
            "--facexlib-dir", str(tmp_path),
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "* A GPU is present but CUDA cannot start" in out and "Fix: " + PINNED_INSTALL in out
    assert launched


@pytest.mark.slow
def test_out_of_memory_at_load_falls_back_to_the_cpu_and_says_so(tiny_hub, tmp_path, monkeypatch):
    from osdface.app import models
    from osdface.app.service import Studio

    real_place = models._place_models
    calls = []

    def place(settings, pipeline, device, missing):
        calls.append(torch.device(device).type)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.56 GiB")
        return real_place(settings, pipeline, device, missing)

    monkeypatch.setattr(models, "choose_device", lambda settings: (torch.device("cuda"), None))
    monkeypatch.setattr(models, "_place_models", place)
    studio = Studio.load(_settings(tiny_hub, facexlib_dir=tmp_path))
    assert calls == ["cuda", "cpu"]
    assert studio.available and studio.device.type == "cpu" and studio.pipeline.dtype == torch.float32
    problem = studio.models.gpu_problem
    assert problem.kind == "out_of_memory" and "Tried to allocate 1.56 GiB" in problem.reason
    assert problem.summary.startswith("The models did not fit in the GPU's memory")
    assert "--device cpu" in problem.fix


@pytest.mark.slow
def test_doctor_fails_the_cuda_check_and_still_restores_on_the_cpu(gpu_machine, tiny_hub):
    from osdface.commands.doctor import DoctorSettings, format_text, run_doctor

    report = run_doctor(DoctorSettings(weights=tiny_hub.weights_repo, base_model=tiny_hub.base_repo))
    cuda = next(check for check in report.checks if check.name == "CUDA")
    assert not cuda.ok and "CUDA up to 12.2" in cuda.detail and cuda.fix.startswith(PINNED_INSTALL)
    assert report.runtime["device"] == "cpu" and report.runtime["cuda_problem"]["torch_cuda"] == "13.0"
    assert report.exit_code == 1
    assert "output not constant" in {check.name for check in report.checks}  # the restore still ran
    text = format_text(report)
    assert "[FAIL] CUDA: The NVIDIA driver 535.183.01 runs CUDA up to 12.2, but this PyTorch" in text
    assert f"fix: {PINNED_INSTALL}" in text


def test_doctor_says_when_there_is_no_gpu(monkeypatch):
    from osdface.commands.doctor import DoctorReport, _cuda_section

    monkeypatch.setattr(cuda_diagnosis, "find_nvidia_driver", lambda *a, **k: NvidiaDriver())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = DoctorReport()
    assert _cuda_section(report, None).type == "cpu"
    (check,) = report.checks
    assert check.ok and "no NVIDIA GPU" in check.detail
