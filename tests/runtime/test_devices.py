"""The device and dtype every command picks by default (``osdface.runtime.devices``), an Apple GPU
(``mps``) included (issue 22, item 4): tested with torch's availability patched, since no Mac runs
the tests; what has been run on a Mac is in the README's hosts table (nothing yet)."""

from __future__ import annotations

import pytest
import torch

from osdface.pipeline import stage_clock
from osdface.runtime import devices
from osdface.runtime.devices import describe_device


@pytest.fixture
def apple_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)


def test_mps_is_chosen_when_there_is_no_cuda_and_gets_float16(apple_gpu):
    device = devices.resolve_device()
    assert device == torch.device("mps")
    assert devices.resolve_dtype(None, device) == torch.float16
    assert "Apple GPU" in devices.default_dtype_reason(device)
    # asked for, or given by accelerate, wins
    assert devices.resolve_device("cpu") == torch.device("cpu")
    assert devices.resolve_device(launched=torch.device("cpu")) == torch.device("cpu")
    assert devices.resolve_dtype("float32", device) == torch.float32


def test_cuda_comes_first_and_the_cpu_last(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.resolve_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert devices.resolve_device() == torch.device("cpu")
    assert devices.resolve_dtype(None, "cpu") == torch.float32
    assert "float32 on the CPU" in devices.default_dtype_reason("cpu")


def test_the_stage_clock_waits_for_the_apple_gpu_at_each_edge(monkeypatch):
    waits = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: waits.append(1))
    clock = stage_clock.StageClock(torch.device("mps"))
    clock.start("unet")
    clock.stop("unet")
    assert len(waits) == 2 and clock.result()["unet"] >= 0
    cpu_clock = stage_clock.StageClock(torch.device("cpu"))
    cpu_clock.start("unet")
    cpu_clock.stop("unet")
    assert len(waits) == 2  # the CPU does not wait


def test_the_app_names_the_apple_gpu():
    assert describe_device(torch.device("mps"), torch.float16) == "Apple GPU (mps, float16)"


def test_doctor_says_the_apple_gpu_runs_it(apple_gpu, monkeypatch):
    from osdface.commands.doctor import DoctorReport, _cuda_section
    from osdface.runtime import cuda_diagnosis

    monkeypatch.setattr(cuda_diagnosis, "find_nvidia_driver", lambda *a, **k: cuda_diagnosis.NvidiaDriver())
    report = DoctorReport()
    assert _cuda_section(report, None) == torch.device("mps")
    (check,) = report.checks
    assert check.ok and "restoring runs on an Apple GPU (mps)" in check.detail
