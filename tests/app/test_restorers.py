"""The app's comparison logic (``osdface.app.restorers``) with the tiny pipeline, a fixed detector
on a photo of two portraits, a tiny RestoreFormer and a random ArcFace."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.faces import measured_face, portrait
from helpers.restorer_files import write_face_release
from PIL import Image

from osdface.app.models import LoadedModels
from osdface.app.requests import RequestError, RestoreRequest, StudioSettings
from osdface.app.restorers import RestorerStudio
from osdface.app.service import Studio
from osdface.evaluation.identity import ArcFaceEmbedder
from osdface.faces import FaceRestorer
from osdface.restorers.loading import RestorerSet
from osdface.restorers.weight_files import RestorerWeights


@pytest.fixture(scope="module")
def restorer_studio(tiny_pipeline, tmp_path_factory):
    folder = tmp_path_factory.mktemp("restorers")
    write_face_release("restoreformer", folder)
    restorer = FaceRestorer(tiny_pipeline, detector=lambda image: [measured_face("astronaut")])
    models = LoadedModels(pipeline=tiny_pipeline, restorer=restorer, identity=ArcFaceEmbedder.random(seed=0))
    studio = Studio(models, settings=StudioSettings())
    restorers = RestorerSet(RestorerWeights(local_dir=folder, cache_dir=folder / "cache", offline=True))
    return RestorerStudio(studio, restorers)


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(portrait("astronaut")).save(path)
    return path


@pytest.mark.slow
def test_other_restorers_and_osdface_on_a_lanczos_background_share_the_faces(
    restorer_studio, photo_file, tmp_path, monkeypatch
):
    monkeypatch.setenv("OSDFACE_OFFLINE", "1")
    request = RestoreRequest(image=str(photo_file), mode="photo", seed=3)
    job = restorer_studio.prepare(request, ["restoreformer", "gfpgan"], "lanczos")
    assert set(job.models) == {"restoreformer", "osdface"} and list(job.unavailable) == ["gfpgan"]
    results = restorer_studio.run(job)
    outcome = restorer_studio.finish(job, results, tmp_path)
    for key in ("restoreformer", "osdface"):
        image = np.asarray(Image.open(outcome.paths[key]))
        assert image.shape == (1024, 1024, 3)  # the 512x512 photo on a 2x background
    restoreformer, osdface = (
        np.asarray(Image.open(outcome.paths[k])).astype(int) for k in ("restoreformer", "osdface")
    )
    assert np.array_equal(restoreformer[:100, :100], osdface[:100, :100])  # one background for all
    assert np.abs(restoreformer[200:300, 400:500] - osdface[200:300, 400:500]).mean() > 1  # the faces differ
    assert all(len(r.similarities) == 1 and -1 <= r.similarities[0] <= 1 for r in results)
    assert (
        outcome.labels["restoreformer"].startswith("RestoreFormer · ")
        and "ArcFace" in outcome.labels["restoreformer"]
    )
    assert "| RestoreFormer | Apache-2.0 |" in outcome.markdown
    assert "**GFPGAN v1.4 is unavailable:**" in outcome.markdown


def test_nothing_asked_prepares_nothing_and_bad_names_are_refused(restorer_studio, photo_file):
    request = RestoreRequest(image=str(photo_file), mode="photo")
    assert restorer_studio.prepare(request, [], "none") is None
    with pytest.raises(RequestError, match="Unknown comparison"):
        restorer_studio.prepare(request, ["bsrgan"])
    with pytest.raises(RequestError, match="Unknown comparison"):
        restorer_studio.prepare(request, [], "bicubic")
    # What a JSON client can send besides names (used to fail as TypeError: unhashable).
    for chosen, background in (([{}], "none"), (["gfpgan"], ["lanczos"]), ("gfpgan", "none"), (5, "none")):
        with pytest.raises(RequestError, match=r"Restorers must be a list of names \(gfpgan, .*got"):
            restorer_studio.prepare(request, chosen, background)


@pytest.mark.slow
def test_a_background_over_the_output_limit_is_not_used_and_the_restorers_still_run(
    restorer_studio, photo_file, tmp_path
):
    capped = RestorerStudio(restorer_studio.studio, restorer_studio.restorers, max_output_pixels=500_000)
    request = RestoreRequest(image=str(photo_file), mode="photo", seed=0)
    job = capped.prepare(request, ["restoreformer"], "lanczos")  # 512x512 -> 1024x1024: 1 MP
    assert job.background is None and job.scale == 1.0 and set(job.models) == {"restoreformer"}
    assert "1024x1024" in job.unavailable["lanczos"] and "0.5 megapixels" in job.unavailable["lanczos"]
    results = capped.run(job)
    outcome = capped.finish(job, results, tmp_path)
    assert np.asarray(Image.open(outcome.paths["restoreformer"])).shape == (512, 512, 3)
    assert "**Lanczos, 2x is unavailable:** this photo on it would be 1024x1024" in outcome.markdown
    assert "Fix: choose a smaller background" in outcome.markdown
