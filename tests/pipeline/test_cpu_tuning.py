"""Per-module memory format (same outputs, same tokens), the bfloat16 warning, the GFLOP/s figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks import cpu_figures as bench_cpu
from osdface.pipeline import cpu_tuning
from osdface.testing.random_weights import random_pipeline


def _is_channels_last(module) -> bool:
    weights = [p for p in module.parameters() if p.ndim == 4 and p.shape[-1] > 1]
    return all(p.is_contiguous(memory_format=torch.channels_last) for p in weights) and bool(weights)


def test_loaded_pipeline_uses_the_measured_formats(tiny_pipeline):
    for name, channels_last in cpu_tuning.CHANNELS_LAST.items():
        assert _is_channels_last(getattr(tiny_pipeline, name)) == channels_last


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
    assert not _is_channels_last(pipe.unet)
    before, tokens_before = run()
    cpu_tuning.apply_memory_format(pipe)
    assert _is_channels_last(pipe.unet) and _is_channels_last(pipe.vae) and _is_channels_last(pipe.embedder)
    after, tokens_after = run()
    assert (after - before).abs().max().item() < 1e-4
    assert torch.equal(tokens_after, tokens_before)


def test_unknown_module_raises():
    with pytest.raises(ValueError, match="text_encoder"):
        cpu_tuning.apply_memory_format(object(), {"text_encoder": True})


def test_bfloat16_without_native_support_warns(monkeypatch):
    monkeypatch.setattr(cpu_tuning, "native_bfloat16", lambda: False)
    with pytest.warns(UserWarning, match="5x slower"):
        assert "bfloat16" in cpu_tuning.check_cpu_dtype("cpu", torch.bfloat16)
    assert cpu_tuning.check_cpu_dtype("cpu", torch.float32) is None
    assert cpu_tuning.check_cpu_dtype("cuda", torch.bfloat16) is None
    monkeypatch.setattr(cpu_tuning, "native_bfloat16", lambda: True)
    assert cpu_tuning.check_cpu_dtype("cpu", torch.bfloat16) is None


@pytest.mark.slow
def test_peak_estimate_and_stage_operations(tiny_pipeline):
    peak, how = bench_cpu.peak_gflops()
    assert peak > 0 and "float32 lanes" in how
    face = np.zeros((512, 512, 3), np.uint8)
    flops = bench_cpu.stage_flops(tiny_pipeline, [face])
    assert set(flops) == {"vre", "vae_encode", "unet", "vae_decode"} and min(flops.values()) > 0
    # The VAE decoder at 512 costs more than its encoder, as in SD 2.1.
    assert flops["vae_decode"] > flops["vae_encode"]
