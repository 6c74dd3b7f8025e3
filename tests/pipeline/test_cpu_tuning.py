"""Per-module memory format (same outputs, same tokens), the bfloat16 warning, the peak and the GFLOP/s figures."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from benchmarks import cpu_figures as bench_cpu
from osdface import OSDFacePipeline
from osdface.pipeline import cpu_tuning
from osdface.runtime import devices
from osdface.testing.random_weights import random_pipeline


def _memory_format(module) -> str:
    """How every spatial convolution weight is laid out: channels_last, contiguous or mixed
    (a 1x1 kernel is both, so it is left out)."""
    weights = [p for p in module.parameters() if p.ndim == 4 and p.shape[-1] > 1]
    assert weights, "no spatial convolution to tell the format by"
    if all(p.is_contiguous(memory_format=torch.channels_last) for p in weights):
        return "channels_last"
    if all(p.is_contiguous() for p in weights):
        return "contiguous"
    return "mixed"


def _formats(pipe) -> dict[str, str]:
    return {name: _memory_format(getattr(pipe, name)) for name in ("embedder", "vae", "unet")}


def _expected(table: dict[str, bool]) -> dict[str, str]:
    return {name: "channels_last" if on else "contiguous" for name, on in table.items()}


def test_loaded_pipeline_uses_the_measured_formats(tiny_pipeline):
    assert _formats(tiny_pipeline) == _expected(cpu_tuning.CHANNELS_LAST)


@pytest.mark.parametrize(
    "table",
    [{"embedder": False, "vae": True, "unet": False}, {"embedder": True, "vae": False, "unet": True}],
    ids=["vae-only", "all-but-vae"],
)
def test_from_pretrained_follows_each_entry_of_the_table(tiny_hub, monkeypatch, table):
    """The measured table says True for every module today: a table with False entries shows
    that loading reads each module's own entry rather than converting everything."""
    monkeypatch.setattr(cpu_tuning, "CHANNELS_LAST", table)
    pipe = OSDFacePipeline.from_pretrained(tiny_hub.weights_repo, base_model=tiny_hub.base_repo)
    assert _formats(pipe) == _expected(table)


def test_apply_memory_format_converts_back_to_contiguous():
    pipe = random_pipeline("tiny")
    assert cpu_tuning.apply_memory_format(pipe, True) == {"embedder": True, "vae": True, "unet": True}
    assert _formats(pipe) == {"embedder": "channels_last", "vae": "channels_last", "unet": "channels_last"}
    # Only the named module changes.
    assert cpu_tuning.apply_memory_format(pipe, {"vae": False}) == {"vae": False}
    assert _formats(pipe) == {"embedder": "channels_last", "vae": "contiguous", "unet": "channels_last"}
    cpu_tuning.apply_memory_format(pipe, False)
    assert _formats(pipe) == {"embedder": "contiguous", "vae": "contiguous", "unet": "contiguous"}


@pytest.mark.slow
def test_channels_last_keeps_outputs_and_tokens():
    pipe = random_pipeline("tiny")
    face = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    lq = torch.from_numpy(face).permute(2, 0, 1)[None].float() / 127.5 - 1.0

    def run():
        out = pipe(face, generator=torch.Generator().manual_seed(0), output_type="pt").images
        with torch.no_grad():
            return out, pipe.embedder(lq).token_indices

    assert cpu_tuning.apply_memory_format(pipe, False) == dict.fromkeys(cpu_tuning.CHANNELS_LAST, False)
    assert _memory_format(pipe.unet) == "contiguous"
    before, tokens_before = run()
    cpu_tuning.apply_memory_format(pipe)
    assert {_memory_format(getattr(pipe, name)) for name in ("unet", "vae", "embedder")} == {"channels_last"}
    after, tokens_after = run()
    assert (after - before).abs().max().item() < 1e-4
    assert torch.equal(tokens_after, tokens_before)


def test_unknown_module_raises():
    with pytest.raises(ValueError, match="text_encoder"):
        cpu_tuning.apply_memory_format(object(), {"text_encoder": True})


def test_bfloat16_without_native_support_warns(monkeypatch):
    monkeypatch.setattr(devices, "native_bfloat16", lambda: False)
    with pytest.warns(UserWarning, match="5x slower"):
        assert "bfloat16" in cpu_tuning.check_cpu_dtype("cpu", torch.bfloat16)
    assert cpu_tuning.check_cpu_dtype("cpu", torch.float32) is None
    assert cpu_tuning.check_cpu_dtype("cuda", torch.bfloat16) is None
    monkeypatch.setattr(devices, "native_bfloat16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # where bfloat16 is native (and the default), no warning
        assert cpu_tuning.check_cpu_dtype("cpu", torch.bfloat16) is None


def test_the_measured_peak_is_a_matrix_products_rate():
    assert bench_cpu.measured_peak(torch.float32, size=256, runs=2) > 0
    peak = bench_cpu.peak_gflops(torch.bfloat16, size=256)  # no native bfloat16 here: float32's
    assert peak.dtype == torch.float32 and peak.measured > 0
    assert "measured" in peak.line() and "float32 256x256 matrix product" in peak.measured_how


ZEN4 = {
    "vendor_id": "AuthenticAMD",
    "cpu family": "25",
    "flags": "avx2 avx512f avx512_bf16",
    "cpu MHz": "2600",
}
ZEN5 = {**ZEN4, "cpu family": "26"}
XEON = {"vendor_id": "GenuineIntel", "cpu family": "6", "flags": "avx2 avx512f amx_bf16", "cpu MHz": "2000"}
ZEN3 = {"vendor_id": "AuthenticAMD", "cpu family": "25", "flags": "avx avx2", "cpu MHz": "2450"}


@pytest.mark.parametrize(
    ("info", "lanes", "halves"), [(ZEN4, 8, True), (ZEN5, 16, False), (XEON, 16, False), (ZEN3, 8, False)]
)
def test_the_theoretical_peak_counts_the_lanes_as_executed(monkeypatch, info, lanes, halves):
    """A Zen 4 runs 512-bit instructions as two 256-bit halves: 8 float32 lanes per FMA, as
    with AVX2 (issue 23: the 16 lanes counted before doubled its peak)."""
    monkeypatch.setattr(bench_cpu, "_cpuinfo", lambda: info)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    peak, how = bench_cpu.theoretical_peak()
    assert peak == pytest.approx(2 * 2 * lanes * 2 * float(info["cpu MHz"]) / 1000)
    assert f"x {lanes} float32 lanes as executed" in how and "nominal clock" in how
    assert ("two 256-bit halves" in how) == halves


@pytest.mark.slow
def test_peak_and_stage_operations(tiny_pipeline):
    peak = bench_cpu.peak_gflops()
    assert peak.measured > 0 and peak.theoretical > 0 and "float32 lanes" in peak.theoretical_how
    face = np.zeros((512, 512, 3), np.uint8)
    flops = bench_cpu.stage_flops(tiny_pipeline, [face])
    assert set(flops) == {"vre", "vae_encode", "unet", "vae_decode"} and min(flops.values()) > 0
    # The VAE decoder at 512 costs more than its encoder, as in SD 2.1.
    assert flops["vae_decode"] > flops["vae_encode"]
