"""The benchmark script runs end to end and prints its table (no timing is asserted)."""

from __future__ import annotations

import pytest

from benchmarks import bench_pipeline as bench


@pytest.mark.slow
def test_bench_prints_costs_and_stage_table(tiny_hub, capsys):
    bench.main(
        [
            "--weights",
            tiny_hub.weights_repo,
            "--base-model",
            tiny_hub.base_repo,
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--compare-memory-format",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert "\npeak: measured " in out and "matrix product" in out and "lanes as executed" in out
    assert "achieved GFLOP/s per stage (percent of the measured float32 peak)" in out
    assert "\ndtype: float32 on the CPU: it has no native bfloat16" in out
    assert "contiguous" in out and "tuned" in out and "tokens equal: True" in out
    assert "VRE parameters: encoder + quant_conv" in out and "VRE MACs at 512x512" in out
    for stage in ("vre", "vae_encode", "unet", "vae_decode", "total", "overhead"):
        assert f"\n{stage}" in out
    assert "parallelized: needs CUDA" in out


@pytest.mark.slow
def test_embedder_cost_counts_the_released_architecture():
    from osdface.pipeline.embedder import VisualRepresentationEmbedder

    cost = bench.embedder_cost(VisualRepresentationEmbedder(), "cpu", bench.torch.float32)
    assert cost["encoder"] == pytest.approx(28.65, abs=0.01)
    assert cost["codebook"] == pytest.approx(1024 * 512 / 1e6)
    assert cost["gmacs"] == pytest.approx(99.47, rel=0.01)
