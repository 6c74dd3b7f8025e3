"""ArcFace identity embeddings: preprocessing, the embedder, loading, similarity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.evaluation import degraded_copy, portraits, write_random_arcface
from PIL import Image

from osdface.evaluation.identity import (
    ARCFACE_WEIGHTS,
    ArcFaceEmbedder,
    IdentityUnavailableError,
    _arcface_crop_box,
    arcface_input,
    cosine_similarity,
    similarity,
)
from osdface.faces import align_face
from osdface.weights.facexlib_files import FacexlibWeights


@pytest.fixture(scope="module")
def faces() -> dict[str, np.ndarray]:
    """The two portraits aligned to 512x512, plus a degraded copy of the astronaut."""
    out = {name: align_face(photo, landmarks)[0] for name, (photo, landmarks) in portraits().items()}
    out["astronaut_degraded"] = degraded_copy(out["astronaut"], seed=0)
    return out


@pytest.fixture(scope="module")
def embedder() -> ArcFaceEmbedder:
    return ArcFaceEmbedder.random(seed=0)


def test_crop_box_maps_ffhq_onto_arcface_template():
    left, top, right, bottom = _arcface_crop_box(512)
    # least-squares scale + shift between the two five-point templates
    assert (left, top, right, bottom) == pytest.approx((64.76, 61.18, 448.21, 444.63), abs=0.01)
    assert right - left == pytest.approx(bottom - top)  # square
    assert _arcface_crop_box(256) == pytest.approx(tuple(v / 2 for v in (left, top, right, bottom)))


def test_arcface_input_layout():
    # a pure red face: after RGB -> BGR, channel 2 is red (+1), channels 0 and 1 are -1
    red = np.zeros((512, 512, 3), np.uint8)
    red[..., 0] = 255
    batch = arcface_input([red, Image.fromarray(red)])
    assert batch.shape == (2, 3, 112, 112) and batch.dtype == torch.float32
    assert batch.is_contiguous()
    torch.testing.assert_close(batch[:, 2], torch.ones(2, 112, 112))
    torch.testing.assert_close(batch[:, :2], -torch.ones(2, 2, 112, 112))


def test_arcface_input_crops_the_face(faces):
    # the 112x112 input is the crop box of the 512 face, resized
    face = faces["astronaut"]
    left, top, right, bottom = _arcface_crop_box(512)
    expected = np.asarray(
        Image.fromarray(face).resize((112, 112), Image.Resampling.BICUBIC, box=(left, top, right, bottom))
    )
    got = (
        ((arcface_input(face)[0].permute(1, 2, 0).numpy()[:, :, ::-1] + 1.0) * 127.5).round().astype(np.uint8)
    )
    np.testing.assert_array_equal(got, expected)
    # a face of another size in the same layout gives nearly the same input
    half = np.asarray(Image.fromarray(face).resize((256, 256), Image.Resampling.LANCZOS))
    assert (arcface_input(half) - arcface_input(face)).abs().mean() < 0.05


@pytest.mark.slow
def test_inputs_are_interchangeable(faces, embedder):
    face = faces["grace_hopper"]
    as_tensor = torch.from_numpy(face).permute(2, 0, 1).float() / 255.0
    embeddings = embedder.embed([face, Image.fromarray(face), as_tensor, face.astype(np.float32) / 255.0])
    assert embeddings.shape == (4, 512) and embeddings.dtype == torch.float32
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(4))
    for row in embeddings[1:]:
        torch.testing.assert_close(row, embeddings[0], atol=1e-5, rtol=0)
    # a (N, 3, H, W) batch tensor too
    torch.testing.assert_close(
        embedder.embed(as_tensor[None].repeat(2, 1, 1, 1))[1], embeddings[0], atol=1e-5, rtol=0
    )


@pytest.mark.slow
def test_similarity_values(faces, embedder):
    a, b, a2 = faces["astronaut"], faces["grace_hopper"], faces["astronaut_degraded"]
    assert embedder.similarity(a, a) == pytest.approx(1.0, abs=1e-5)
    ab, ba = embedder.similarity(a, b), embedder.similarity(b, a)
    assert ab == pytest.approx(ba, abs=1e-5)
    assert -1.0 <= ab < 0.999
    # even random weights see a degraded copy as closer than another person
    assert embedder.similarity(a, a2) > ab
    # similarities() batches against one reference, with the same values
    assert embedder.similarities(a, [a2, b]) == pytest.approx([embedder.similarity(a, a2), ab], abs=1e-5)
    assert embedder.similarities(a, []) == []
    assert similarity(a, b, embedder) == pytest.approx(ab, abs=1e-6)
    expected = embedder.embed([a, b])
    assert cosine_similarity(expected[0], expected[1]) == pytest.approx(
        float(expected[0] @ expected[1]), abs=1e-6
    )


def test_bad_faces_raise(embedder):
    with pytest.raises(ValueError, match="square"):
        embedder.embed(np.zeros((512, 400, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        embedder.embed(np.zeros((512, 512), np.uint8))
    with pytest.raises(ValueError, match="at least 32"):
        embedder.embed(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="no faces"):
        embedder.embed([])


@pytest.mark.slow
def test_state_dict_round_trip_and_mismatch(faces, embedder):
    state = embedder.model.state_dict()
    again = ArcFaceEmbedder.from_state_dict(state)
    torch.testing.assert_close(again.embed(faces["astronaut"]), embedder.embed(faces["astronaut"]))
    assert again.fingerprint == embedder.fingerprint
    assert ArcFaceEmbedder.random(seed=1).fingerprint != embedder.fingerprint
    broken = dict(state)
    del broken["input_layer.0.weight"]
    with pytest.raises(IdentityUnavailableError, match="do not match"):
        ArcFaceEmbedder.from_state_dict(broken)


@pytest.mark.slow
def test_from_pretrained_loads_facexlib_file(tmp_path, faces, embedder):
    write_random_arcface(tmp_path / "facexlib", seed=0)
    loaded = ArcFaceEmbedder.from_pretrained(FacexlibWeights.from_env(local_dir=tmp_path / "facexlib"))
    torch.testing.assert_close(loaded.embed(faces["grace_hopper"]), embedder.embed(faces["grace_hopper"]))
    assert loaded.device == torch.device("cpu")


def test_missing_weights_name_the_file_and_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("OSDFACE_FACEXLIB_DIR", raising=False)
    monkeypatch.delenv("OSDFACE_FACEXLIB_REPO", raising=False)
    weights = FacexlibWeights.from_env(
        local_dir=tmp_path / "empty", cache_dir=tmp_path / "cache", offline=True
    )
    with pytest.raises(IdentityUnavailableError) as info:
        ArcFaceEmbedder.from_pretrained(weights)
    message = str(info.value)
    assert ARCFACE_WEIGHTS in message and "OSDFACE_FACEXLIB_DIR" in message
    assert isinstance(info.value, RuntimeError)
    # a file that is not a state dict
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / ARCFACE_WEIGHTS).write_bytes(b"not a checkpoint")
    with pytest.raises(IdentityUnavailableError, match=ARCFACE_WEIGHTS):
        ArcFaceEmbedder.from_pretrained(FacexlibWeights.from_env(local_dir=tmp_path / "bad", offline=True))


def test_the_embedder_ranks_the_same_picture_then_a_degraded_copy_then_another_person(embedder, faces):
    """The order the identity table is read in: 1.0 for the same picture, then a degraded copy
    of it, then another person, all within cosine's range."""
    same, degraded, other = embedder.similarities(
        faces["astronaut"], [faces["astronaut"], faces["astronaut_degraded"], faces["grace_hopper"]]
    )
    assert same == pytest.approx(1.0, abs=1e-5)
    assert -1.0 <= other < degraded < same <= 1.0


def test_cosine_similarity_matches_torch_and_stays_within_minus_one_and_one():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 64, 512))
    expected = torch.nn.functional.cosine_similarity(torch.from_numpy(a), torch.from_numpy(b), dim=1)
    got = [cosine_similarity(x, y) for x, y in zip(a, b)]
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-12)
    # Tensors, arrays and lists of any shape with the same size compare as flat vectors.
    mixed = cosine_similarity(torch.from_numpy(a[0]), b[0].reshape(16, 32).tolist())
    assert mixed == pytest.approx(got[0], abs=1e-12)
    # The ends of the range, whatever the lengths.
    assert cosine_similarity(a[0], 3.0 * a[0]) == pytest.approx(1.0, abs=1e-12)
    assert cosine_similarity(a[0], -0.5 * a[0]) == pytest.approx(-1.0, abs=1e-12)
    assert cosine_similarity([1.0, 0.0], [0.0, 2.0]) == 0.0
    # Rounding can put a @ b / (|a| |b|) just past 1 for a vector and itself: never shown.
    unclipped = [float(v @ v / (np.linalg.norm(v) * np.linalg.norm(v))) for v in a]
    assert max(unclipped) > 1.0  # the case arises in these vectors
    assert all(-1.0 <= cosine_similarity(v, v) <= 1.0 for v in a)
    assert all(-1.0 <= cosine_similarity(v, -v) <= 1.0 for v in a)
    with pytest.raises(ValueError, match="differ in size"):
        cosine_similarity(a[0], a[0][:256])
    with pytest.raises(ValueError, match="zero embedding"):
        cosine_similarity(a[0], np.zeros(512))
