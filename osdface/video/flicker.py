"""How much a restored clip flickers: the frame-to-frame change inside each face, output
against input.

For every face seen in two consecutive frames, take its box in the later frame and, pixel by
pixel (0-255 scale, all three channels), the change from the earlier frame to the later one in
the output (``dO``) and in the input (``dI``). Three figures, means over those pixels:

- ``output``: mean |dO|, ``input``: mean |dI|; a face that moves changes both;
- ``added``: mean |dO - dI| after motion compensation: the earlier frame of both is first
  warped by the optical flow of the input (Farneback, OpenCV), so a face that moves or turns
  changes neither term, and what is left is the change the restorer adds to the filmed one. A
  restorer that followed the input exactly would add none; a border that shimmers, details that
  jump with a jittery crop, eyes that change colour or noise drawn anew every frame all raise it.
  This is the flicker figure (the flow comes from the input, never from our landmarks, so a
  jittery crop cannot hide itself).

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
    """Means per pixel and channel (0-255) inside the faces between consecutive frames (see the
    module docstring): ``added`` (the flicker figure), ``output``, ``input``; ``pairs``: face
    pairs measured; ``ratio``: output / input."""

    added: float
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
            f"flicker: {self.added:.2f} added (mean |output change - input change| per pixel between frames "
            f"inside the faces, 0-255); change {self.output:.2f} output vs {self.input:.2f} input; "
            f"{self.pairs} face pairs"
        )


class FlickerMeter:
    """Call ``add`` for every frame in order with the input frame, the output frame and the
    faces (track id, box in input pixels) restored in it; ``report()`` at the end. Holds only
    the previous frame."""

    def __init__(self) -> None:
        self._previous: tuple[np.ndarray, np.ndarray, set[int]] | None = None
        self._added_sum = 0.0
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
                before_in, after_in = previous_in[region], input_frame[region]
                before_out, after_out = previous_out[region], output_frame[region]
                self._input_sum += float(np.abs(_float(after_in) - before_in).mean())
                self._output_sum += float(np.abs(_float(after_out) - before_out).mean())
                flow = _flow_back(before_in, after_in)
                change_in = _float(after_in) - _warp(before_in, flow)
                change_out = _float(after_out) - _warp(before_out, flow)
                self._added_sum += float(np.abs(change_out - change_in).mean())
                self._pairs += 1
        self._previous = (input_frame, output_frame, ids)

    def report(self) -> FlickerReport:
        if self._pairs == 0:
            return FlickerReport(added=float("nan"), output=float("nan"), input=float("nan"), pairs=0)
        return FlickerReport(
            added=self._added_sum / self._pairs,
            output=self._output_sum / self._pairs,
            input=self._input_sum / self._pairs,
            pairs=self._pairs,
        )


def _region(box: tuple[float, float, float, float], width: int, height: int) -> tuple[slice, slice] | None:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return slice(y0, y1), slice(x0, x1)


def _float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32)


def _flow_back(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """For each pixel of ``after``, where it was in ``before`` (pixels, (h, w, 2) float32):
    Farneback's dense flow between the two (H, W, 3) uint8 crops, on their grey levels."""
    gray_after = cv2.cvtColor(np.ascontiguousarray(after), cv2.COLOR_RGB2GRAY)
    gray_before = cv2.cvtColor(np.ascontiguousarray(before), cv2.COLOR_RGB2GRAY)
    return cv2.calcOpticalFlowFarneback(gray_after, gray_before, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` (h, w, 3) resampled along ``flow``: the earlier frame moved onto the later one."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(
        _float(image),
        grid_x + flow[..., 0],
        grid_y + flow[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
