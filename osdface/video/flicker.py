"""How much a restored clip flickers: the frame-to-frame change inside each face, output
against input.

For every face seen in two consecutive frames, take its box in the later frame and measure the
mean absolute change of the pixels inside it (0-255 scale, all three channels) from the earlier
frame to the later one, in the output and in the input. A face that moves changes both alike;
what the restorer adds on top (a border that shimmers, eyes that change colour, noise drawn
anew every frame) raises only the output's. ``FlickerReport.ratio`` is output over input: near
1 the restored faces change as much as the filmed ones, above 1 they flicker.

The output is compared at the input's size (resized when the clip was upscaled), so the two
figures are on one scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FlickerReport:
    """``output``, ``input``: mean absolute change per pixel and channel (0-255) inside the
    faces between consecutive frames; ``pairs``: face pairs measured; ``ratio``: output / input."""

    output: float
    input: float
    pairs: int

    @property
    def ratio(self) -> float:
        return self.output / self.input if self.input > 0 else float("nan")

    def line(self) -> str:
        if self.pairs == 0:
            return "flicker: no face was seen in two consecutive frames"
        return (
            f"flicker: {self.output:.2f} output vs {self.input:.2f} input (mean |change| per pixel "
            f"between frames inside the faces, 0-255; ratio {self.ratio:.2f}, {self.pairs} face pairs)"
        )


class FlickerMeter:
    """Call ``add`` for every frame in order with the input frame, the output frame and the
    faces (track id, box in input pixels) restored in it; ``report()`` at the end. Holds only
    the previous frame."""

    def __init__(self) -> None:
        self._previous: tuple[np.ndarray, np.ndarray, set[int]] | None = None
        self._output_sum = 0.0
        self._input_sum = 0.0
        self._pairs = 0

    def add(
        self,
        input_frame: np.ndarray,
        output_frame: np.ndarray,
        faces: Sequence[tuple[int, tuple[float, float, float, float]]],
    ) -> None:
        """``input_frame``: (H, W, 3) uint8; ``output_frame``: (H', W', 3) uint8, resized to
        (H, W) here when it differs; ``faces``: (track id, (x0, y0, x1, y1)) in input pixels."""
        height, width = input_frame.shape[:2]
        if output_frame.shape[:2] != (height, width):
            output_frame = cv2.resize(output_frame, (width, height), interpolation=cv2.INTER_AREA)
        ids = {track_id for track_id, _ in faces}
        if self._previous is not None:
            previous_in, previous_out, previous_ids = self._previous
            for track_id, box in faces:
                if track_id not in previous_ids:
                    continue
                region = _region(box, width, height)
                if region is None:
                    continue
                self._input_sum += _mean_change(previous_in, input_frame, region)
                self._output_sum += _mean_change(previous_out, output_frame, region)
                self._pairs += 1
        self._previous = (input_frame, output_frame, ids)

    def report(self) -> FlickerReport:
        if self._pairs == 0:
            return FlickerReport(output=float("nan"), input=float("nan"), pairs=0)
        return FlickerReport(
            output=self._output_sum / self._pairs, input=self._input_sum / self._pairs, pairs=self._pairs
        )


def _region(box: tuple[float, float, float, float], width: int, height: int) -> tuple[slice, slice] | None:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return slice(y0, y1), slice(x0, x1)


def _mean_change(before: np.ndarray, after: np.ndarray, region: tuple[slice, slice]) -> float:
    a = before[region].astype(np.float32)
    b = after[region].astype(np.float32)
    return float(np.abs(b - a).mean())
