"""The per-stage thread benchmark runs on the tiny architecture and leaves torch's threads as
it found them (it switches the process-wide setting while it measures)."""

from __future__ import annotations

import pytest
import torch

from benchmarks.bench_threads import STAGES, run


@pytest.mark.slow
def test_thread_benchmark_measures_every_stage(capsys):
    default = torch.get_num_threads()
    medians = run("tiny", pairs=1, counts=[1, default])
    assert torch.get_num_threads() == default
    assert sorted(medians) == sorted({1, default})
    for timings in medians.values():
        assert set(timings) == set(STAGES) and all(seconds > 0 for seconds in timings.values())
        assert timings["total"] >= sum(timings[s] for s in STAGES[:-1]) * 0.99
    printed = capsys.readouterr().out
    assert all(stage in printed for stage in STAGES) and "fastest" in printed
