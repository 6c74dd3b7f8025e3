"""Restore a photo with the VRE and again "without VRE" (a text prompt) without doing work twice.

Both restorations start from the same VAE latents: the posterior sample of the same crops with
generators seeded the same way. So the crops are encoded once and the latents reused; the UNet
and decoder then run for both conditions, one after the other (exactly what two separate
pipeline calls give) or, with ``batch_conditions`` (default: on CUDA, where a doubled batch
costs less than two calls), as one batch of twice the faces (equal up to float rounding; when
that runs out of memory, one condition at a time after all).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch


class _SharedEncoding:
    """Stands in for the pipeline in a ``FaceRestorer``: the first restore's calls (``prompt``
    None) compute both conditions and return the VRE result; the second restore's calls (the
    text prompt) get, in the same order, the results made for them."""

    def __init__(self, pipeline, prompt: str, batch_conditions: bool):
        self.pipeline = pipeline
        self.prompt = prompt
        self.batch_conditions = batch_conditions
        self.pending: list[tuple[list, Any]] = []

    def __getattr__(self, name: str):  # device, dtype ... of the real pipeline
        return getattr(self.pipeline, name)

    def __call__(self, crops, *, prompt=None, color_fix=None, generator=None, **kwargs):
        if prompt is None:
            return self._both(crops, color_fix, generator, kwargs)
        if prompt != self.prompt or not self.pending:
            raise RuntimeError(f"unexpected second-pass call with prompt {prompt!r}")
        expected, output = self.pending.pop(0)
        if len(expected) != len(crops) or any(
            not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(expected, crops)
        ):
            raise RuntimeError("the second pass restores other crops than the first")
        return output

    def _both(self, crops, color_fix, generator, kwargs):
        pipe = self.pipeline
        tick = time.perf_counter()
        latents = pipe.encode_latents(crops, generator)
        if latents.device.type == "cuda" and getattr(pipe, "record_timings", True):
            torch.cuda.synchronize(latents.device)  # the time reported is the encoder's, not its launch
        elif latents.device.type == "mps" and getattr(pipe, "record_timings", True):
            torch.mps.synchronize()
        encode_seconds = time.perf_counter() - tick
        common = dict(color_fix=color_fix, latents=latents, **kwargs)
        with_vre = None
        if self.batch_conditions:
            try:
                with_vre, without = self._batched(crops, latents, color_fix, kwargs)
            except torch.OutOfMemoryError:  # twice the batch did not fit: one condition at a time
                self.batch_conditions = False
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        if with_vre is None:
            with_vre = pipe(crops, prompt=None, **common)
            without = pipe(crops, prompt=self.prompt, **common)
        with_vre.timings["vae_encode"] = encode_seconds
        self.pending.append((list(crops), without))
        return with_vre

    def _batched(self, crops, latents, color_fix, kwargs):
        pipe = self.pipeline
        vre = pipe.encode_condition(crops, None)
        text = pipe.encode_condition(crops, self.prompt)
        both = pipe(
            list(crops) * 2,
            color_fix=color_fix,
            latents=torch.cat([latents, latents]),
            prompt_embeds=torch.cat([vre.to(text.dtype), text]),
            **kwargs,
        )
        count = len(crops)
        halves = []
        for part in (slice(0, count), slice(count, 2 * count)):
            half = copy.copy(both)
            half.images = both.images[part]
            half.timings = dict(both.timings) if part.start == 0 else {}
            halves.append(half)
        return halves[0], halves[1]


def restore_with_and_without_vre(
    restorer, photo: np.ndarray, faces, prompt: str, batch_conditions: bool | None = None
):
    """(with VRE, without VRE) ``RestoreResult``s of ``faces`` (from ``restorer.detect``; None
    for an aligned face) in ``photo`` ((H, W, 3) RGB uint8) by ``restorer`` (a ``FaceRestorer``), equal to
    ``restorer.restore_faces(photo, faces)`` and ``restorer.restore_faces(photo, faces,
    prompt=prompt)`` but encoding each crop once. Pipelines without ``encode_latents`` get the
    two plain calls."""
    pipeline = restorer.pipeline
    if not hasattr(pipeline, "encode_latents"):
        return (
            restorer.restore_faces(photo, faces, prompt=None),
            restorer.restore_faces(photo, faces, prompt=prompt),
        )
    if batch_conditions is None:
        batch_conditions = torch.device(pipeline.device).type == "cuda"
    shared = _SharedEncoding(pipeline, prompt, batch_conditions)
    twin = copy.copy(restorer)
    twin.pipeline = shared
    with_vre = twin.restore_faces(photo, faces, prompt=None)
    without = twin.restore_faces(photo, faces, prompt=prompt)
    if shared.pending:
        raise RuntimeError("the second pass restored fewer crops than the first")
    return with_vre, without
