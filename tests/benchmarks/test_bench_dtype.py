"""The float32-against-bfloat16 benchmark runs end to end and prints its lines (no timing is
asserted); its verdict compares the measurement with the default's choice."""

from __future__ import annotations

import pytest
import torch

from benchmarks import bench_dtype
from osdface.runtime import devices


@pytest.mark.slow
def test_bench_dtype_prints_both_times_the_choice_and_the_difference(metric_files, capsys):
    seconds, diff = bench_dtype.run(bench_dtype.DtypeSettings(pairs=1, metrics_dir=metric_files / "all"))
    out = capsys.readouterr().out
    assert "processor: " in out and "oneDNN computes bfloat16 natively: no" in out
    assert "default dtype: float32 on the CPU: it has no native bfloat16" in out
    assert "\npeak: measured " in out and "theoretical " in out
    assert f"float32 {seconds['float32']:.2f} s, bfloat16 {seconds['bfloat16']:.2f} s per 512 face" in out
    assert "with the default (float32)" in out
    # LPIPS from the metric files (random weights here: the value means nothing, the path runs)
    assert diff.lpips is not None and f"LPIPS {diff.lpips:.4f}" in out
    assert "VRE tokens equal: yes" in out and diff.tokens_equal


def test_without_its_weights_lpips_says_why(tmp_path):
    meter, note = bench_dtype.lpips_meter(tmp_path)
    assert meter is None and "LPIPS_v0.1_alex-df73285e.pth" in note and "--metrics-dir" in note


@pytest.mark.parametrize("native", [True, False])
def test_the_verdict_says_whether_the_measurement_agrees_with_the_default(monkeypatch, native):
    monkeypatch.setattr(devices, "native_bfloat16", lambda: native)
    default = devices.resolve_dtype(None, "cpu")
    assert default == (torch.bfloat16 if native else torch.float32)
    bf16_faster = bench_dtype.verdict({"float32": 32.09, "bfloat16": 19.09}, default)
    fp32_faster = bench_dtype.verdict({"float32": 40.0, "bfloat16": 200.0}, default)
    assert ("which agrees" in bf16_faster) == native and ("which agrees" in fp32_faster) != native
    assert "DISAGREES" in (fp32_faster if native else bf16_faster)
