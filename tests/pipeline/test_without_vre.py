"""With and without VRE: encoding once (osdface.pipeline.without_vre) gives what two separate restores give."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.faces import FixedDetector, group_photo

from osdface.faces import FaceRestorer, RestoreOptions
from osdface.pipeline.without_vre import restore_with_and_without_vre


class CountingPipeline:
    """Wraps the real pipeline and counts VAE encoder forwards."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.encodes = 0
        self.original = pipeline.vae.encode

    def __enter__(self):
        def counted(*args, **kwargs):
            self.encodes += 1
            return self.original(*args, **kwargs)

        self.pipeline.vae.encode = counted
        return self

    def __exit__(self, *exc):
        del self.pipeline.vae.encode


def _restorer(pipeline, batch_size=2):
    group = group_photo()
    options = RestoreOptions(seed=3, batch_size=batch_size)
    return FaceRestorer(pipeline, detector=FixedDetector(group.faces[:3]), options=options), group.image


@pytest.mark.slow
def test_encode_once_equals_two_restores(tiny_pipeline):
    restorer, photo = _restorer(tiny_pipeline)
    with CountingPipeline(tiny_pipeline) as counter:
        expected = restorer.restore(photo), restorer.restore(photo, prompt="a face")
        assert counter.encodes == 4  # 3 faces in chunks of 2, twice
        counter.encodes = 0
        both = restore_with_and_without_vre(
            restorer, photo, restorer.detect(photo).faces, "a face", batch_conditions=False
        )
        assert counter.encodes == 2  # once per chunk
    for got, want in zip(both, expected):
        np.testing.assert_array_equal(np.asarray(got.image), np.asarray(want.image))
        for face, face_want in zip(got.faces, want.faces):
            np.testing.assert_array_equal(np.asarray(face.restored_crop), np.asarray(face_want.restored_crop))
    assert "vae_encode" in both[0].timings and "vae_encode" not in both[1].timings
    assert "text_encoder" in both[1].timings and "vre" not in both[1].timings
    # The conditions differ, so the two restorations do too.
    assert not np.array_equal(np.asarray(both[0].image), np.asarray(both[1].image))


@pytest.mark.slow
def test_batched_conditions_match_within_rounding(tiny_pipeline):
    restorer, photo = _restorer(tiny_pipeline, batch_size=4)
    expected = restorer.restore(photo), restorer.restore(photo, prompt="")
    both = restore_with_and_without_vre(
        restorer, photo, restorer.detect(photo).faces, "", batch_conditions=True
    )
    for got, want in zip(both, expected):
        difference = np.abs(np.asarray(got.image).astype(int) - np.asarray(want.image).astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() < 0.01


@pytest.mark.slow
def test_pipeline_reuses_given_latents_and_condition(tiny_pipeline):
    faces = [np.full((512, 512, 3), v, np.uint8) for v in (40, 200)]
    generator = [torch.Generator().manual_seed(i) for i in range(2)]
    plain = tiny_pipeline(faces, generator=generator, output_type="pt").images
    latents = tiny_pipeline.encode_latents(faces, [torch.Generator().manual_seed(i) for i in range(2)])
    condition = tiny_pipeline.encode_condition(faces)
    reused = tiny_pipeline(faces, latents=latents, prompt_embeds=condition, output_type="pt")
    torch.testing.assert_close(reused.images, plain, rtol=0, atol=0)
    assert "vae_encode" not in reused.timings and "vre" not in reused.timings


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(latents=torch.zeros(3, 4, 8, 8)), "one row per image"),
        (dict(prompt_embeds=torch.zeros(2, 77)), "3-D tensor"),
        (dict(prompt_embeds=torch.zeros(2, 77, 1024), prompt="x"), "not both"),
    ],
)
def test_bad_precomputed_inputs_raise(tiny_pipeline, kwargs, message):
    faces = [np.zeros((512, 512, 3), np.uint8)] * 2
    with pytest.raises(ValueError, match=message):
        tiny_pipeline(faces, **kwargs)
