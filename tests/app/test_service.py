"""The app's request handling (osdface.app.service), driven directly with the tiny pipeline.

Whole photos need a face detector; RetinaFace's weights cannot be downloaded here, so these
tests detect with the landmarks measured on the two public-domain portraits
(tests/fixtures/faces/landmarks.json). Everything after detection is the real code.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from osdface.app.imaging import add_turbulence, clean_crop
from osdface.app.models import LoadedModels, Part
from osdface.app.requests import RequestError, RestoreRequest, ServiceUnavailableError, StudioSettings
from osdface.app.service import (
    GPU_BASE_SECONDS,
    GPU_SECONDS_PER_FACE_METRICS,
    GPU_SECONDS_PER_FACE_PASS,
    Studio,
)
from osdface.app.uploads import read_image
from osdface.commands.model_options import ModelOptions
from osdface.evaluation.identity import ArcFaceEmbedder
from osdface.faces import DetectedFace, FaceRestorer
from osdface.quality.pixels import psnr, ssim
from osdface.runtime import devices

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def measured_faces(fixtures_dir: Path) -> dict[str, DetectedFace]:
    data = json.loads((fixtures_dir / "faces" / "landmarks.json").read_text())
    return {
        name: DetectedFace(
            box=tuple(float(v) for v in entry["box_xyxy"]),
            landmarks=np.asarray(entry["landmarks5_xy"], dtype=np.float64),
            score=0.99,
        )
        for name, entry in data.items()
    }


class PlacedFaces:
    """A face detector for one known photo: returns the given faces when called on an image of
    that size, nothing otherwise."""

    def __init__(self, shape: tuple[int, int], faces: list[DetectedFace]):
        self.shape, self.faces = shape, faces

    def __call__(self, image: np.ndarray) -> list[DetectedFace]:
        return list(self.faces) if image.shape[:2] == self.shape else []


@pytest.fixture(scope="module")
def group_photo(fixtures_dir, tmp_path_factory):
    """The two portraits side by side (600 x 1024), their faces placed accordingly."""
    astronaut = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB"))
    hopper = np.asarray(Image.open(EXAMPLES / "grace_hopper.jpg").convert("RGB"))
    canvas = np.full((600, 1024, 3), 200, dtype=np.uint8)
    canvas[:512, :512] = astronaut
    canvas[:, 512:] = hopper
    path = tmp_path_factory.mktemp("photos") / "group.png"
    Image.fromarray(canvas).save(path)
    faces = measured_faces(fixtures_dir)
    shifted = faces["grace_hopper"]
    x0, y0, x1, y1 = shifted.box
    shifted = DetectedFace(
        box=(x0 + 512, y0, x1 + 512, y1), landmarks=shifted.landmarks + [512.0, 0.0], score=0.98
    )
    return path, canvas, [faces["astronaut"], shifted]


@pytest.fixture(scope="module")
def arcface():
    return ArcFaceEmbedder.random(seed=0)


def make_studio(pipeline, group_photo=None, arcface=None, **settings) -> Studio:
    detector = (
        PlacedFaces(group_photo[1].shape[:2], group_photo[2]) if group_photo else PlacedFaces((0, 0), [])
    )
    models = LoadedModels(
        pipeline=pipeline, restorer=FaceRestorer(pipeline, detector=detector), identity=arcface
    )
    return Studio(models, settings=StudioSettings(**settings))


def restore(studio: Studio, request: RestoreRequest, folder: Path):
    prepared = studio.prepare(request)
    result = studio.run(prepared)
    return prepared, result, studio.finish(prepared, result, folder)


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def direct(pipeline, faces: list[Image.Image], seed: int, prompt=None) -> list[np.ndarray]:
    """The pipeline called directly on ``faces`` in one batch, face i seeded ``seed + i``."""
    generators = [torch.Generator().manual_seed(seed + i) for i in range(len(faces))]
    out = pipeline(faces, prompt=prompt, generator=generators).images
    return [np.asarray(image).astype(np.int16) for image in out]


# --------------------------------------------------------------------------- whole photos


@pytest.mark.slow
def test_whole_photo_with_ablation_restores_the_same_faces_twice(
    tiny_pipeline, group_photo, arcface, tmp_path
):
    path, canvas, _ = group_photo
    studio = make_studio(tiny_pipeline, group_photo, arcface)
    request = RestoreRequest(image=str(path), mode="photo", ablation=True, prompt="", seed=5)
    prepared, result, outcome = restore(studio, request, tmp_path)

    assert outcome.face_count == 2 and prepared.faces_found == 2
    assert outcome.turbulent_input is None
    for file in (outcome.input, outcome.restored, outcome.without_vre):
        assert file.parent == tmp_path and file.suffix == ".png"
        assert pixels(file).shape == canvas.shape
    assert np.array_equal(pixels(outcome.input), canvas)
    restored = pixels(outcome.restored)
    # Only the faces change: the strip below both faces is the input, the faces are not.
    assert np.abs(restored[560:, :, :] - canvas[560:, :, :]).max() <= 1
    assert np.abs(restored[90:150, 190:250] - canvas[90:150, 190:250]).mean() > 10
    assert outcome.slider == (outcome.input, outcome.restored)

    # Faces left to right; before, with VRE, without VRE: each the pipeline's own answer.
    captions = [caption for _, caption in outcome.gallery]
    assert captions == [
        "Face 1: input",
        "Face 1: OSDFace (VRE)",
        "Face 1: without VRE",
        "Face 2: input",
        "Face 2: OSDFace (VRE)",
        "Face 2: without VRE",
    ]
    crops = [Image.open(outcome.gallery[i][0]).convert("RGB") for i in (0, 3)]
    # The restorer sends both faces in one batch, one generator each (seed + face index).
    expected_vre = direct(tiny_pipeline, crops, 5)
    expected_text = direct(tiny_pipeline, crops, 5, prompt="")
    for index in range(2):
        before, vre, text = (pixels(p) for p, _ in outcome.gallery[3 * index : 3 * index + 3])
        assert before.shape == vre.shape == text.shape == (512, 512, 3)
        assert np.array_equal(vre, expected_vre[index])
        assert np.array_equal(text, expected_text[index])
        assert np.abs(vre - text).mean() > 1

    # Without turbulence the clean face, cropped by the app for identity scores, is the crop
    # facexlib made for restoring.
    for face in result.restored.faces:
        assert np.array_equal(np.asarray(clean_crop(prepared, face.affine)), np.asarray(face.input_crop))

    # Identity: each face's scores, against the input face (no turbulence), as ArcFace says.
    assert [row.face for row in result.identity] == [1, 2]
    for index, row in enumerate(result.identity):
        before, vre, text = (Image.open(p) for p, _ in outcome.gallery[3 * index : 3 * index + 3])
        assert row.turbulent_input is None
        assert row.restored == pytest.approx(arcface.similarity(before, vre), abs=1e-4)
        assert row.without_vre == pytest.approx(arcface.similarity(before, text), abs=1e-4)
    assert "Identity similarity to the input face" in outcome.identity_markdown
    assert f"{result.identity[1].without_vre:.3f}" in outcome.identity_markdown

    for stage in ("Read image", "Face detection", "Face alignment", "VRE (visual tokens)", "Text encoder"):
        assert stage in outcome.timing_markdown
    assert outcome.timing_markdown.startswith("**2 faces restored in ")
    assert "Device: CPU" in outcome.timing_markdown and "peak GPU memory" not in outcome.timing_markdown
    assert "float32) · float32 on the CPU: it has no native bfloat16" in outcome.timing_markdown
    assert outcome.timings["without_vre"]["text_encoder"] > 0 and "vre" not in outcome.timings["without_vre"]


@pytest.mark.slow
def test_max_faces_keeps_the_largest_and_says_so(tiny_pipeline, group_photo, tmp_path):
    path, _, faces = group_photo
    studio = make_studio(tiny_pipeline, group_photo, max_faces=1)
    prepared, result, outcome = restore(studio, RestoreRequest(image=str(path), mode="photo"), tmp_path)
    assert prepared.faces_found == 2 and outcome.face_count == 1
    assert result.restored.faces[0].box == faces[1].box  # Grace Hopper's face is the larger
    assert "(2 found; the 1 largest were restored)" in outcome.timing_markdown
    assert result.identity is None and "Identity scores are off" in outcome.identity_markdown


@pytest.mark.slow
def test_turbulence_then_restore_compares_with_the_clean_face(tiny_pipeline, fixtures_dir, arcface, tmp_path):
    path = EXAMPLES / "astronaut.jpg"
    canvas = pixels(path)
    one_face = (path, canvas, [measured_faces(fixtures_dir)["astronaut"]])
    studio = make_studio(tiny_pipeline, one_face, arcface)
    request = RestoreRequest(image=str(path), mode="photo", turbulence=True, propagation_length=40000, seed=3)
    prepared, result, outcome = restore(studio, request, tmp_path)
    turbulent = pixels(outcome.turbulent_input)
    assert turbulent.shape == canvas.shape and np.abs(turbulent - canvas).mean() > 1
    assert outcome.slider == (outcome.turbulent_input, outcome.restored)
    assert outcome.gallery[0][1] == "Face 1: turbulent input"
    assert outcome.without_vre is None and len(outcome.gallery) == 2
    assert "Turbulence simulation" in outcome.timing_markdown
    # The turbulent face against the clean face cropped with the same alignment.
    for row, face in zip(result.identity, result.restored.faces):
        assert row.turbulent_input is not None and row.without_vre is None
        assert -1.0 <= row.turbulent_input <= 1.0 and -1.0 <= row.restored <= 1.0
        expected = arcface.similarity(clean_crop(prepared, face.affine), face.input_crop)
        assert row.turbulent_input == pytest.approx(expected, abs=1e-4)
    assert "to the clean input face (before turbulence)" in outcome.identity_markdown


def test_no_face_found_says_what_to_do(tiny_pipeline, group_photo, tmp_path):
    studio = make_studio(tiny_pipeline, group_photo)
    other = tmp_path / "empty.png"
    Image.fromarray(np.full((300, 400, 3), 128, np.uint8)).save(other)
    with pytest.raises(RequestError, match="No face was found in this photo.*'Aligned face'"):
        studio.prepare(RestoreRequest(image=str(other), mode="photo"))


# --------------------------------------------------------------------------- aligned faces


@pytest.mark.slow
def test_aligned_face_equals_a_direct_pipeline_call(tiny_pipeline, arcface, tmp_path):
    studio = make_studio(tiny_pipeline, arcface=arcface)
    file = EXAMPLES / "grace_hopper_aligned_classic.jpg"
    _, result, outcome = restore(
        studio, RestoreRequest(image=str(file), mode="aligned", seed=11, color_fix="adain"), tmp_path
    )
    face = Image.open(file).convert("RGB")
    expected = tiny_pipeline([face], generator=[torch.Generator().manual_seed(11)], color_fix="adain").images[
        0
    ]
    assert np.array_equal(pixels(outcome.restored), np.asarray(expected).astype(np.int16))
    assert np.abs(pixels(outcome.restored) - np.asarray(face)).mean() > 10
    assert outcome.gallery == [] and outcome.without_vre is None
    assert pixels(outcome.slider[0]).shape == (512, 512, 3)
    assert result.identity[0].restored == pytest.approx(arcface.similarity(face, expected), abs=1e-4)


def test_aligned_mode_refuses_a_non_square_image(tiny_pipeline, tmp_path):
    studio = make_studio(tiny_pipeline)
    with pytest.raises(RequestError, match="must be square, and this image is 512x600.*'Whole photo'"):
        studio.prepare(RestoreRequest(image=str(EXAMPLES / "grace_hopper.jpg"), mode="aligned"))


# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs_give_messages_that_say_what_to_do(tmp_path):
    with pytest.raises(RequestError, match="No image yet: upload a photo"):
        read_image(None, 10**6)
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(RequestError, match=r"cannot be read as an image \(not an image.*Upload a JPEG, PNG"):
        read_image(str(text), 10**6)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(RequestError, match=r"cannot be read as an image \(empty file \(0 bytes\)\)"):
        read_image(str(empty), 10**6)
    big = tmp_path / "big.png"
    Image.new("RGB", (1200, 1000)).save(big)
    with pytest.raises(RequestError) as caught:
        read_image(str(big), 10**6)
    message = str(caught.value)
    assert "1200x1000" in message and "1.2 megapixels" in message and "limit of 1.0 megapixels" in message
    assert str(big) not in message and "Downscale it" in message


def test_turbulence_refuses_huge_images():
    with pytest.raises(RequestError, match="up to 4 megapixels, and this one is 2100x2000 = 4.2 megapixels"):
        add_turbulence(np.zeros((2000, 2100, 3), np.uint8), 30_000, 0)


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"mode": "faces"}, "Unknown mode 'faces'"),
        ({"color_fix": "sepia"}, "Unknown colour fix 'sepia'"),
        ({"propagation_length": 19_999}, "outside the simulated range: choose 20,000 to 40,000 m"),
        ({"propagation_length": 40_001.0}, "outside the simulated range"),
        ({"seed": -1}, "Seed -1 is not valid"),
        ({"seed": 1.5}, "Seed 1.5 is not valid"),
        ({"seed": True}, "Seed True is not valid"),
        ({"seed": math.nan}, "Seed nan is not valid: use a whole number from 0 to"),
        ({"seed": -math.inf}, "Seed -inf is not valid: use a whole number from 0 to"),
        ({"prompt": "x" * 1001}, "The prompt has 1001 characters"),
    ],
)
def test_request_check_names_the_bad_value(changes, pattern):
    with pytest.raises(RequestError, match=pattern):
        RestoreRequest(image="x.png", **changes).check()


# --------------------------------------------------------------------------- degraded service


def test_without_weights_restore_explains_and_the_preview_works(tmp_path):
    reason = "Cannot load 'associate_2.ckpt' from Hub repo 'x/y'. Fix: download it."
    studio = Studio(LoadedModels(missing={Part.PIPELINE: reason}))
    assert not studio.available and studio.status_notes() == []
    with pytest.raises(
        ServiceUnavailableError, match="weights could not be loaded.\\nCannot load 'associate_2.ckpt'.*Fix"
    ):
        studio.prepare(RestoreRequest(image=str(EXAMPLES / "astronaut.jpg")))
    path, note = studio.degrade(str(EXAMPLES / "astronaut_aligned.jpg"), 25_000, 2, tmp_path / "out")
    clean = pixels(EXAMPLES / "astronaut_aligned.jpg")
    turbulent = pixels(path)
    assert path.parent == tmp_path / "out" and turbulent.shape == clean.shape
    assert np.abs(turbulent - clean).mean() > 1
    assert "25,000 m (seed 2)" in note
    again, _ = studio.degrade(str(EXAMPLES / "astronaut_aligned.jpg"), 25_000, 2, tmp_path / "again")
    assert np.array_equal(pixels(again), turbulent)
    with pytest.raises(RequestError, match="outside the simulated range"):
        studio.degrade(str(EXAMPLES / "astronaut_aligned.jpg"), 50_000, 2, tmp_path)


def test_without_weights_the_start_up_report_gives_the_banners_reason_and_fix():
    """A Space's log or a headless server shows no banner: the terminal says it (app.main prints
    ``load_report_lines``)."""
    listed = "2 of 2 model sources could not be loaded:\n  - OSDFace weights: x/y is not cached\nFix: start the app with --weights"
    (text,) = Studio(LoadedModels(missing={Part.PIPELINE: listed})).load_report_lines()
    lines = text.splitlines()
    assert lines[0] == (
        "Restoring is unavailable: the model weights could not be loaded (the turbulence preview still works)."
    )
    assert lines[1:] == [
        "  2 of 2 model sources could not be loaded:",
        "    - OSDFace weights: x/y is not cached",
        "  Fix: start the app with --weights",
    ]
    # A reason without its own fix gets the banner's.
    (text,) = Studio(LoadedModels(missing={Part.PIPELINE: "a damaged file"})).load_report_lines()
    assert text.splitlines()[1:] == [
        "  a damaged file",
        "  Fix: restart the app with the weights available (python app.py --weights FOLDER_OR_REPO "
        "--base-model FOLDER_OR_REPO).",
    ]


def test_without_a_detector_only_whole_photos_are_refused(tiny_pipeline):
    missing = {Part.DETECTOR: "facexlib weight file 'detection_Resnet50_Final.pth' is missing"}
    studio = Studio(LoadedModels(pipeline=tiny_pipeline, missing=missing))
    with pytest.raises(ServiceUnavailableError, match="(?s)detection_Resnet50_Final.pth.*'Aligned face'"):
        studio.prepare(RestoreRequest(image=str(EXAMPLES / "astronaut.jpg"), mode="photo"))
    prepared = studio.prepare(RestoreRequest(image=str(EXAMPLES / "astronaut_aligned.jpg"), mode="aligned"))
    assert prepared.face_count == 1
    summaries = [summary for summary, _ in studio.status_notes()]
    assert any(s.startswith("Whole-photo mode is off") for s in summaries)
    assert any(s.startswith("Running on the CPU: expect about 35 s per face") for s in summaries)


def test_gpu_time_grows_with_faces_and_the_ablation(tiny_pipeline, group_photo):
    path, _, _ = group_photo
    studio = make_studio(tiny_pipeline, group_photo)
    aligned = str(EXAMPLES / "astronaut_aligned.jpg")
    one = studio.prepare(RestoreRequest(image=aligned, mode="aligned", metrics=False))
    two = studio.prepare(RestoreRequest(image=str(path), mode="photo", ablation=True, metrics=False))
    assert studio.gpu_seconds(one) == GPU_BASE_SECONDS + GPU_SECONDS_PER_FACE_PASS
    assert studio.gpu_seconds(two) == GPU_BASE_SECONDS + 4 * GPU_SECONDS_PER_FACE_PASS
    scored = studio.prepare(
        RestoreRequest(image=aligned, mode="aligned")
    )  # metrics on: a little more per face
    assert (
        studio.gpu_seconds(scored)
        == GPU_BASE_SECONDS + GPU_SECONDS_PER_FACE_PASS + GPU_SECONDS_PER_FACE_METRICS
    )


def test_the_start_up_report_says_which_dtype_runs_and_why(tiny_pipeline):
    studio = make_studio(tiny_pipeline)
    assert studio.load_report_lines()[-1] == (
        "running on cpu: UNet and VAE float32, VRE float32 (float32 on the CPU: it has no native bfloat16 ("
        f"{devices.cpu_capability()}, no amx_bf16 or avx512_bf16), where bfloat16 measured 4-5x slower; the VRE "
        "stays float32)"
    )
    asked = make_studio(tiny_pipeline, model=ModelOptions(dtype="float32"))
    assert asked.load_report_lines()[-1].endswith("(float32: asked for (--dtype))")


def test_load_without_weights_keeps_the_reason(tiny_hub):
    studio = Studio.load(
        StudioSettings(model=ModelOptions(weights="osdface-test/not-there", base_model=tiny_hub.base_repo))
    )
    assert not studio.available
    reason = studio.models.why_missing(Part.PIPELINE)
    assert "osdface-test/not-there" in reason and "Fix" in reason


@pytest.mark.slow
def test_load_with_missing_facexlib_weights_turns_off_only_what_needs_them(tiny_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("OSDFACE_CACHE", str(tmp_path / "cache"))
    model = ModelOptions(
        weights=tiny_hub.weights_repo, base_model=tiny_hub.base_repo, device="cpu", facexlib_dir=tmp_path
    )
    settings = StudioSettings(model=model)
    studio = Studio.load(settings)
    assert studio.available and studio.pipeline.text_encoder is not None
    assert studio.restorer is None and "detection_Resnet50_Final.pth" in studio.models.why_missing(
        Part.DETECTOR
    )
    assert studio.identity is None and "recognition_arcface_ir_se50.pth" in studio.models.why_missing(
        Part.IDENTITY
    )
    notes = dict(studio.status_notes())
    assert len(notes) == 3 and "Identity scores are off: the ArcFace model could not be loaded." in notes


# --------------------------------------------------------------------------- examples


def test_examples_are_small_listed_and_come_from_the_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    sources = (EXAMPLES / "SOURCES.md").read_text()
    files = sorted(EXAMPLES.glob("*.jpg"))
    assert len(files) == 12
    for file in files:
        assert file.stat().st_size < 300 * 1024, file.name
    assert "public domain" in sources.lower() and "skimage.data.astronaut()" in sources
    assert 'get_sample_data("grace_hopper.jpg")' in sources

    # The aligned crops and the classic degradations, made again, match the files (up to JPEG).
    for seed, (name, (photo, face)) in enumerate(script.aligned_faces().items()):
        assert face.shape == (512, 512, 3)
        assert np.abs(pixels(EXAMPLES / f"{name}.jpg") - photo).mean() < 3  # JPEG, quality 92
        assert np.abs(pixels(EXAMPLES / f"{name}_aligned.jpg") - face).mean() < 2
        classic = script.classic_degradation(face, seed=seed, **script.FACE_CLASSIC)
        assert np.abs(pixels(EXAMPLES / f"{name}_aligned_classic.jpg") - classic).mean() < 2
        # ... and the degraded copies really are degraded.
        assert np.abs(classic.astype(np.int16) - face).mean() > 3


# --------------------------------------------------------------------------- quality metrics


@pytest.mark.slow
def test_metrics_under_each_result_with_the_clean_face_as_reference(
    tiny_pipeline, arcface, metric_files, monkeypatch, tmp_path
):
    monkeypatch.setenv("OSDFACE_METRICS_DIR", str(metric_files / "all"))
    studio = make_studio(tiny_pipeline, arcface=arcface)
    file = str(EXAMPLES / "astronaut_aligned.jpg")
    turbulent = RestoreRequest(image=file, mode="aligned", turbulence=True, ablation=True, seed=2)
    prepared, result, outcome = restore(studio, turbulent, tmp_path / "a")
    scores = outcome.scores_json["scores"]
    assert outcome.scores_json["reference"] == "the clean input face, before turbulence"
    assert set(scores) == {"turbulent_input", "osdface", "without_vre"}  # the baseline and each output
    for values in scores.values():
        assert set(values) == {"psnr", "ssim", "lpips", "dists", "deg", "musiq", "niqe"}
    # the numbers are those of the metrics themselves, on the aligned faces
    clean = np.asarray(Image.open(file).convert("RGB"))
    face = result.restored.faces[0]
    assert scores["osdface"]["psnr"] == pytest.approx(psnr(np.asarray(face.restored_crop), clean))
    assert scores["turbulent_input"]["ssim"] == pytest.approx(ssim(np.asarray(face.input_crop), clean))
    assert scores["osdface"]["deg"] == pytest.approx(
        math.degrees(math.acos(result.identity[0].restored)), abs=1e-6
    )
    assert outcome.scores_json["unavailable"] == {}
    assert (
        "PSNR↑" in outcome.scores_markdown["osdface"]
        and "vs the clean face" in outcome.scores_markdown["osdface"]
    )
    assert outcome.scores_markdown["input"] == ""

    plain, _, outcome = restore(studio, RestoreRequest(image=file, mode="aligned"), tmp_path / "b")
    assert outcome.scores_json["reference"] is None
    assert {output: set(v) for output, v in outcome.scores_json["scores"].items()} == {
        "input": {"musiq", "niqe"},
        "osdface": {"musiq", "niqe"},
    }
    assert "no reference" in outcome.scores_markdown["input"]

    _, result, outcome = restore(
        studio, RestoreRequest(image=file, mode="aligned", metrics=False), tmp_path / "c"
    )
    assert (
        result.quality is None and outcome.scores_json is None and not any(outcome.scores_markdown.values())
    )


def test_metrics_without_their_weights_say_why_and_the_restore_works(tiny_pipeline, tmp_path):
    studio = make_studio(tiny_pipeline)  # the tests' environment has no metric weights
    file = str(EXAMPLES / "astronaut_aligned.jpg")
    _, _, outcome = restore(studio, RestoreRequest(image=file, mode="aligned"), tmp_path)
    assert outcome.restored.is_file()
    assert set(outcome.scores_json["unavailable"]) == {"musiq", "niqe"}
    assert "--metrics-dir" in outcome.scores_json["unavailable"]["musiq"]
    assert "Not computed: MUSIQ" in outcome.scores_markdown["osdface"]


def test_no_metrics_setting_turns_them_off(tiny_pipeline, tmp_path):
    studio = make_studio(tiny_pipeline, metrics=False)
    assert studio.meter() is None
    _, result, _ = restore(
        studio, RestoreRequest(image=str(EXAMPLES / "astronaut_aligned.jpg"), mode="aligned"), tmp_path
    )
    assert result.quality is None
