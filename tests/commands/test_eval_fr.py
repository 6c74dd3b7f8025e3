"""``osdface eval-fr`` end to end on a tiny LFW-style set, with the tiny pipeline and a random
ArcFace loaded from a facexlib-format file. Scores mean nothing here: the tests check the
files, their schema and their consistency with each other and with the inputs."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.evaluation import PEOPLE, degraded_copy, portraits, write_face_set, write_random_arcface
from PIL import Image

from osdface.choices import ColorFix
from osdface.cli import main
from osdface.degradations import TurbulenceParams, simulate_turbulence
from osdface.errors import ImageError
from osdface.evaluation.cache import EmbeddingCache
from osdface.evaluation.conditions import (
    CLEAN,
    Condition,
    EvalFRConfig,
    conditions_of,
    item_seed,
    required_conditions,
)
from osdface.evaluation.identity import ArcFaceEmbedder
from osdface.evaluation.metrics import FRMetrics, compute_metrics
from osdface.evaluation.pairs import parse_lfw_pairs, read_pairs
from osdface.evaluation.run import run_eval_fr
from osdface.evaluation.work import FaceLoader, NoFaceFoundError
from osdface.faces import DetectedFace, align_face
from osdface.weights.facexlib_files import FacexlibWeights

CONDITIONS = ["clean", "turbulent_30000", "osdface_30000", "no_vre_30000"]


class _NoPipeline:
    """Stands in for the pipeline where nothing may be restored."""

    def __call__(self, *args, **kwargs):
        raise AssertionError("the pipeline was called, but every restoration should come from the cache")


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_hub):
    """One full run of the command: 4 aligned faces, 4 pairs, 1 length, all three methods."""
    root = tmp_path_factory.mktemp("eval-fr")
    faces_dir, pairs_file = write_face_set(root)
    facexlib_dir = root / "facexlib"
    write_random_arcface(facexlib_dir)
    output = root / "out"
    args = [
        "eval-fr", str(faces_dir), str(pairs_file), "-o", str(output),
        "--aligned", "--extension", "png", "--lengths", "30000",
        "--without-vre", "--without-restoration", "--save-images", "--no-progress",
        "--weights", tiny_hub.weights_repo, "--base-model", tiny_hub.base_repo,
        "--facexlib-dir", str(facexlib_dir),
    ]  # fmt: skip
    status = main(args)
    return {
        "status": status,
        "faces": faces_dir,
        "pairs": pairs_file,
        "out": output,
        "fx": facexlib_dir,
        "hub": tiny_hub,
    }


def _config(study, **changes) -> EvalFRConfig:
    base = EvalFRConfig(
        faces_dir=study["faces"],
        pairs_file=study["pairs"],
        output_dir=study["out"],
        lengths=(30000.0,),
        methods=("turbulent", "osdface", "no_vre"),
        aligned=True,
        extension="png",
        facexlib_dir=study["fx"],
        weights=study["hub"].weights_repo,
        base_model=study["hub"].base_repo,
        progress=False,
    )
    return dataclasses.replace(base, **changes)


def _read_scores(path: Path) -> tuple[list[dict], list[str]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader), list(reader.fieldnames or [])


@pytest.mark.slow
def test_command_writes_every_file(study, artifacts_dir):
    out = study["out"]
    assert study["status"] == 0
    for name in ("metrics.json", "scores.csv", "fr_curves.png", "fr_histograms.png"):
        assert (out / name).is_file(), name
    for name in ("fr_curves.png", "fr_histograms.png"):  # for people to look at
        shutil.copyfile(out / name, artifacts_dir / f"eval_fr_{name}")
    with Image.open(out / "fr_curves.png") as image:
        assert image.size == (1800, 672)
    with Image.open(out / "fr_histograms.png") as image:
        assert image.format == "PNG" and image.width > 1000
    saved = sorted(p.relative_to(out / "images").as_posix() for p in (out / "images").rglob("*.png"))
    assert len(saved) == 16  # 4 images x 4 conditions
    assert "osdface_30000/Eileen_Collins/Eileen_Collins_0002.png" in saved
    with Image.open(out / "images" / saved[0]) as image:
        assert image.size == (512, 512) and image.mode == "RGB"


@pytest.mark.slow
def test_metrics_json_schema(study):
    report = json.loads((study["out"] / "metrics.json").read_text())
    assert report["format"] == "osdface-eval-fr/1"
    assert report["num_pairs"] == report["num_pairs_evaluated"] == 4
    assert report["skipped_images"] == []
    assert report["config"]["lengths"] == [30000.0] and report["config"]["degrade"] == "both"
    assert [c["name"] for c in report["conditions"]] == CONDITIONS
    assert [c["label"] for c in report["conditions"]] == [
        "clean",
        "turbulent, 30 km",
        "OSDFace, 30 km",
        "OSDFace w/o VRE, 30 km",
    ]
    fields = [f.name for f in dataclasses.fields(FRMetrics)]
    for condition in report["conditions"]:
        metrics = condition["metrics"]
        assert list(metrics) == fields
        assert (metrics["num_pairs"], metrics["num_positive"], metrics["num_negative"]) == (4, 2, 2)
        for key in ("roc_auc", "accuracy", "f1", "tpr_at_far_1e_3", "tpr_at_far_1e_2", "average_precision"):
            assert 0.0 <= metrics[key] <= 1.0, key
        assert -1.0 <= metrics["best_threshold"] <= 1.0
    assert report["conditions"][0]["propagation_length"] is None
    assert report["conditions"][2]["propagation_length"] == 30000.0


@pytest.mark.slow
def test_scores_metrics_and_embeddings_agree(study):
    out = study["out"]
    rows, columns = _read_scores(out / "scores.csv")
    assert columns == ["path_a", "path_b", "same", *CONDITIONS]
    pairs = read_pairs(study["pairs"], extension="png")
    assert [(r["path_a"], r["path_b"], r["same"] == "1") for r in rows] == [(p.a, p.b, p.same) for p in pairs]

    # metrics.json is what compute_metrics gives on the scores in scores.csv
    report = json.loads((out / "metrics.json").read_text())
    labels = np.array([int(r["same"]) for r in rows])
    for condition in report["conditions"]:
        scores = np.array([float(r[condition["name"]]) for r in rows])
        assert np.all((scores >= -1) & (scores <= 1))
        assert compute_metrics(scores, labels).to_json_dict() == condition["metrics"]

    # the scores are the cosine similarities of the cached embeddings...
    config = _config(study)
    embedder = ArcFaceEmbedder.from_pretrained(FacexlibWeights.from_env(local_dir=study["fx"]))
    hashes = {
        c.name: next((out / "cache" / c.name).iterdir()).name for c in conditions_of(config)
    }  # one settings hash per condition
    cached = EmbeddingCache(out / "cache", hashes).load()
    assert len(cached) == 16
    for row in rows:
        for name in CONDITIONS:
            expected = float(cached[(name, row["path_a"])] @ cached[(name, row["path_b"])])
            assert float(row[name]) == pytest.approx(expected, abs=1e-5)

    # ...and the embeddings are those of the saved faces, which are the inputs' pipeline outputs
    key = "Grace_Hopper/Grace_Hopper_0002.png"
    saved = {name: np.asarray(Image.open(out / "images" / name / key)) for name in CONDITIONS}
    np.testing.assert_array_equal(saved["clean"], np.asarray(Image.open(study["faces"] / key)))
    fresh = embedder.embed([saved[name] for name in CONDITIONS]).numpy()
    for name, vector in zip(CONDITIONS, fresh):
        np.testing.assert_allclose(cached[(name, key)], vector, atol=1e-5)
    # the turbulence is the simulator's, with the seed fixed by (seed, image, length)
    expected = simulate_turbulence(
        saved["clean"],
        TurbulenceParams(propagation_length=30000.0),
        seed=item_seed(0, key, 30000.0, "turbulence"),
    )
    np.testing.assert_array_equal(saved["turbulent_30000"], expected)
    assert not np.array_equal(saved["osdface_30000"], saved["no_vre_30000"])  # VRE vs null prompt


@pytest.mark.slow
def test_rerun_resumes_from_the_cache(study):
    config = _config(study, output_dir=study["out"], save_images=False)
    before = (study["out"] / "metrics.json").read_text()
    result = run_eval_fr(config, pipeline=_NoPipeline())
    assert result is not None
    assert [r.condition.name for r in result.conditions] == CONDITIONS
    assert (study["out"] / "metrics.json").read_text().replace(
        '"save_images": false', '"save_images": true'
    ) == before
    # another colour fix changes the restorations' settings: those must be recomputed
    with pytest.raises(AssertionError, match="pipeline was called"):
        run_eval_fr(dataclasses.replace(config, color_fix="adain"), pipeline=_NoPipeline())


# --------------------------------------------------------------------------- unaligned photos


def _landmark_detector(expected: dict[tuple[int, int], np.ndarray]):
    """A detector that knows the measured landmarks of each portrait (by image size)."""

    def detect(image: np.ndarray) -> list[DetectedFace]:
        landmarks = expected.get(image.shape[:2])
        if landmarks is None:
            return []
        x0, y0 = landmarks.min(axis=0) - 30
        x1, y1 = landmarks.max(axis=0) + 30
        return [DetectedFace(box=(x0, y0, x1, y1), landmarks=landmarks, score=0.99)]

    return detect


@pytest.mark.slow
def test_photos_are_detected_aligned_and_faceless_ones_left_out(tmp_path):
    photos = portraits()
    raw = tmp_path / "raw"
    for i, (name, (photo, _)) in enumerate(photos.items()):
        person = PEOPLE[name]
        (raw / person).mkdir(parents=True)
        Image.fromarray(photo).save(raw / person / "1.png")
        Image.fromarray(degraded_copy(photo, seed=i)).save(raw / person / "2.png")
    Image.fromarray(np.full((300, 200, 3), 128, np.uint8)).save(raw / "blank.png")
    pairs_file = tmp_path / "pairs.csv"
    pairs_file.write_text(
        "path_a,path_b,same\n"
        "Eileen_Collins/1.png,Eileen_Collins/2.png,1\n"
        "Grace_Hopper/1.png,Grace_Hopper/2.png,1\n"
        "Eileen_Collins/1.png,Grace_Hopper/2.png,0\n"
        "Grace_Hopper/1.png,Eileen_Collins/2.png,0\n"
        "Grace_Hopper/1.png,blank.png,0\n"
    )
    detector = _landmark_detector({photo.shape[:2]: landmarks for photo, landmarks in photos.values()})
    embedder = ArcFaceEmbedder.random(seed=0)
    config = EvalFRConfig(
        faces_dir=raw,
        pairs_file=pairs_file,
        output_dir=tmp_path / "out",
        lengths=(20000.0, 40000.0),
        methods=("turbulent",),
        degrade="one",
        save_images=True,
        progress=False,
    )
    result = run_eval_fr(config, embedder=embedder, pipeline=_NoPipeline(), detector=detector)

    assert [key for key, _ in result.skipped] == ["blank.png"]
    assert "no face found" in result.skipped[0][1]
    assert len(result.pairs) == 4
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (report["num_pairs"], report["num_pairs_evaluated"]) == (5, 4)
    assert report["skipped_images"][0]["image"] == "blank.png"
    # clean faces are aligned from the detector's landmarks
    clean = np.asarray(Image.open(tmp_path / "out" / "images" / "clean" / "Grace_Hopper" / "1.png"))
    np.testing.assert_array_equal(clean, align_face(*photos["grace_hopper"])[0])
    # degrade="one": only second images are degraded, and compared with the clean first ones
    turbulent = sorted(p.name for p in (tmp_path / "out" / "images" / "turbulent_20000").rglob("*.png"))
    assert turbulent == ["2.png", "2.png"]
    by_name = {r.condition.name: r for r in result.conditions}
    first, second = result.pairs[0].a, result.pairs[0].b
    images = tmp_path / "out" / "images"
    expected = embedder.similarity(
        np.asarray(Image.open(images / "clean" / first)),
        np.asarray(Image.open(images / "turbulent_40000" / second)),
    )
    assert by_name["turbulent_40000"].scores[0] == pytest.approx(expected, abs=1e-5)
    # different lengths, different turbulence
    assert by_name["turbulent_20000"].scores[0] != pytest.approx(
        by_name["turbulent_40000"].scores[0], abs=1e-6
    )


# --------------------------------------------------------------------------- small parts


def test_conditions_and_requirements():
    config = EvalFRConfig(
        Path("f"), Path("p"), Path("o"), lengths=(20000, 30000.5), methods=("no_vre", "osdface")
    )
    names = [c.name for c in conditions_of(config)]
    assert names == ["clean", "osdface_20000", "no_vre_20000", "osdface_30000.5", "no_vre_30000.5"]
    assert Condition("turbulent", 25000.0).label == "turbulent, 25 km"
    pairs = parse_lfw_pairs("1\nA 1 2\nA 1 B 1\n")
    one = required_conditions(pairs, [CLEAN, Condition("osdface", 1.0)], "one")
    assert {k: [c.name for c in v] for k, v in one.items()} == {
        "A/A_0001.jpg": ["clean"],
        "A/A_0002.jpg": ["clean", "osdface_1"],
        "B/B_0001.jpg": ["clean", "osdface_1"],
    }
    both = required_conditions(pairs, [CLEAN, Condition("osdface", 1.0)], "both")
    assert all(len(v) == 2 for v in both.values())


def test_item_seeds_are_fixed_and_distinct():
    seeds = {
        item_seed(0, k, length, p)
        for k in ("a", "b")
        for length in (2e4, 3e4)
        for p in ("turbulence", "restore")
    }
    assert len(seeds) == 8
    assert item_seed(0, "a", 2e4, "restore") == item_seed(0, "a", 2e4, "restore")
    assert item_seed(1, "a", 2e4, "restore") != item_seed(0, "a", 2e4, "restore")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lengths": ()}, "at least one"),
        ({"lengths": (-5.0,)}, "positive"),
        ({"lengths": (2e4, 2e4)}, "each length once"),
        ({"methods": ("bsrgan",)}, "unknown"),  # gfpgan is a method now (osdface.restorers.loading)
        ({"codeformer_w": 1.5}, "codeformer_w"),
        ({"degrade": "half"}, "degrade"),
        ({"max_pairs": 0}, "max_pairs"),
        ({"extension": ".jpg"}, "without the dot"),
        ({"color_fix": "sepia"}, "unknown colour fix 'sepia'"),
        ({"dtype": "float64"}, "dtype must be one of"),
    ],
)
def test_config_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        EvalFRConfig(Path("f"), Path("p"), Path("o"), **changes)


def test_colour_fix_names_are_stored_as_before():
    # None for no fix: the value is part of metrics.json and of the cache's settings hash
    assert EvalFRConfig(Path("f"), Path("p"), Path("o"), color_fix="none").color_fix is None
    assert EvalFRConfig(Path("f"), Path("p"), Path("o"), color_fix=ColorFix.ADAIN).color_fix == "adain"


def _two_people(tmp_path: Path) -> EvalFRConfig:
    """Four small grey photos of two "people" and a pair list with same and different pairs."""
    for name in ("A/1.png", "A/2.png", "B/1.png", "B/2.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((64, 48, 3), 100, np.uint8)).save(tmp_path / name)
    pairs_file = tmp_path / "pairs.csv"
    pairs_file.write_text("path_a,path_b,same\nA/1.png,A/2.png,1\nA/1.png,B/2.png,0\nB/1.png,B/2.png,1\n")
    return EvalFRConfig(
        tmp_path, pairs_file, tmp_path / "out", lengths=(20000.0,), methods=("turbulent",), progress=False
    )


def test_no_face_is_an_image_error_with_fields(tmp_path):
    config = _two_people(tmp_path)
    load = FaceLoader(config.faces_dir, aligned=False, get_detector=lambda: lambda image: [])
    with pytest.raises(NoFaceFoundError) as caught:
        load("A/1.png")
    assert isinstance(caught.value, ImageError)
    assert (caught.value.source, caught.value.reason) == (str(tmp_path / "A" / "1.png"), "no face found")


def test_a_failing_detector_stops_the_run_instead_of_skipping_the_image(tmp_path):
    def broken_detector(image):
        raise ValueError("detector bug")

    config = _two_people(tmp_path)
    embedder = ArcFaceEmbedder.random(seed=0)
    with pytest.raises(ValueError, match="detector bug"):
        run_eval_fr(config, embedder=embedder, pipeline=_NoPipeline(), detector=broken_detector)


def test_missing_images_are_reported(tmp_path, capsys):
    (tmp_path / "pairs.txt").write_text("1\nA 1 2\nA 1 B 1\n")
    status = main(["eval-fr", str(tmp_path), str(tmp_path / "pairs.txt"), "-o", str(tmp_path / "out")])
    assert status == 2
    message = capsys.readouterr().err
    assert "3 of 3 images" in message and "A_0001.jpg" in message
