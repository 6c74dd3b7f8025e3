"""Seconds per pipeline stage, measured only when asked for (``OSDFacePipeline.record_timings``):
on CUDA the events make ``result`` synchronise the device, which a throughput run must avoid; on
an Apple GPU (``mps``, no timing events) each stage's edges synchronise it."""

from __future__ import annotations

import time

import torch


class StageClock:
    """Seconds per stage. On CUDA, events on the stream doing the work (stages may overlap on
    two streams); elsewhere wall time, on ``mps`` after waiting for the queued work (the GPU
    runs asynchronously, so the clock would otherwise time the launches)."""

    def __init__(self, device: torch.device, enabled: bool = True):
        self.cuda = device.type == "cuda"
        self.mps = device.type == "mps"
        self.enabled = enabled
        self.events: dict[str, tuple] = {}
        self.seconds: dict[str, float] = {}

    def start(self, stage: str, stream=None):
        if not self.enabled:
            return
        if self.cuda:
            begin = torch.cuda.Event(enable_timing=True)
            begin.record(stream)
            self.events[stage] = (begin, stream)
        else:
            self._wait_for_mps()
            self.seconds[stage] = -time.perf_counter()

    def stop(self, stage: str):
        if not self.enabled:
            return
        if self.cuda:
            begin, stream = self.events[stage]
            end = torch.cuda.Event(enable_timing=True)
            end.record(stream)
            self.events[stage] = (begin, end)
        else:
            self._wait_for_mps()
            self.seconds[stage] += time.perf_counter()

    def _wait_for_mps(self) -> None:
        if self.mps:
            torch.mps.synchronize()

    def result(self) -> dict[str, float]:
        if not self.enabled:
            return {}
        if self.cuda:
            torch.cuda.synchronize()
            for stage, (begin, end) in self.events.items():
                self.seconds[stage] = begin.elapsed_time(end) / 1000.0
        return dict(self.seconds)
