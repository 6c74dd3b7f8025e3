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


@pytest.mark.parametrize("native", [True, False])
def test_the_cpu_default_follows_native_bfloat16(monkeypatch, native):
    """Issue 23: bfloat16 where the processor computes it natively, float32 elsewhere; the
    reason names the instructions (or their absence); CUDA and --dtype are unchanged."""
    monkeypatch.setattr(devices, "native_bfloat16", lambda: native)
    monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    reason = devices.default_dtype_reason("cpu")
    if native:
        assert devices.resolve_dtype(None, "cpu") == torch.bfloat16
        assert reason.startswith("bfloat16 on the CPU") and "natively (avx512_bf16)" in reason
    else:
        assert devices.resolve_dtype(None, "cpu") == torch.float32
        assert reason.startswith("float32 on the CPU") and "no native bfloat16" in reason
        assert "5x slower" in reason
    assert "the VRE stays float32" in reason
    # --dtype wins either way; its reason says it was asked for
    assert devices.resolve_dtype("float32", "cpu") == torch.float32
    assert devices.resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    assert devices.dtype_reason("float32", "cpu") == "float32: asked for (--dtype)"
    assert devices.dtype_reason(None, "cpu") == reason
    assert devices.resolve_dtype(None, "cuda") == torch.float16


def test_native_bfloat16_is_onednns_answer_on_x86_only(monkeypatch):
    monkeypatch.undo()  # the real probe, not conftest's float32_cpu_default
    answers = []
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: answers.append(1) or True)
    monkeypatch.setattr(devices.platform, "machine", lambda: "x86_64")
    assert devices.native_bfloat16() is True and answers == [1]
    monkeypatch.setattr(devices.platform, "machine", lambda: "arm64")  # not measured there
    assert devices.native_bfloat16() is False and answers == [1]


def test_the_app_device_line_gives_the_dtypes_reason():
    why = devices.default_dtype_reason("cpu")
    line = describe_device(torch.device("cpu"), torch.float32, why)
    assert line.startswith("CPU (") and line.endswith(f"float32) · {why}")
    assert describe_device(torch.device("mps"), torch.float16, None) == "Apple GPU (mps, float16)"
