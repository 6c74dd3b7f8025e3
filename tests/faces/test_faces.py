"""Whole-photo geometry: detect -> align -> restore -> paste back, with stand-in detectors and
pipelines whose results are known (no weights, offline)."""

from __future__ import annotations

import contextlib
import threading

import cv2
import numpy as np
import pytest
import torch
from helpers.faces import (
    GROUP,
    FixedDetector,
    apply_affine,
    fit_to_template,
    group_photo,
    identity_pipeline,
    invert_pipeline,
    measured_face,
    portrait,
    psnr,
)
from PIL import Image

from osdface.faces import (
    FFHQ_TEMPLATE_512,
    DetectedFace,
    FaceRestorer,
    RestoredFace,
    RestoreOptions,
    RestoreResult,
    RetinaFaceDetector,
    select_faces,
)
from osdface.faces import PhotoHelper as _PhotoHelper
from osdface.images.reading import ImageTooLargeError

PORTRAITS = ("astronaut", "grace_hopper")


def restorer_for(faces, pipeline=None, **kwargs) -> FaceRestorer:
    return FaceRestorer(pipeline or identity_pipeline(), FixedDetector(faces), **kwargs)


# --------------------------------------------------------------------------- single portraits


@pytest.mark.parametrize("name", PORTRAITS)
def test_identity_pipeline_gives_the_photo_back(name):
    photo = portrait(name)
    pipeline = identity_pipeline()
    result = restorer_for([measured_face(name)], pipeline).restore(photo)
    assert isinstance(result, RestoreResult) and not result.no_face_found
    out = np.asarray(result.image)
    assert result.image.mode == "RGB" and out.shape == photo.shape
    assert psnr(out, photo) > 35.0
    # The face region itself, where the crop went out and back, is also close.
    x0, y0, x1, y1 = (int(v) for v in measured_face(name).box)
    assert psnr(out[y0:y1, x0:x1], photo[y0:y1, x0:x1]) > 33.0
    assert pipeline.batches == [1]
    (face,) = result.faces
    assert isinstance(face, RestoredFace) and face.score == pytest.approx(0.99)
    assert face.input_crop.size == face.restored_crop.size == (512, 512)
    np.testing.assert_array_equal(np.asarray(face.input_crop), np.asarray(face.restored_crop))
    assert set(result.timings) >= {"detect", "align", "restore", "paste", "total", "unet"}
    assert result.timings["unet"] == pytest.approx(0.25)  # the pipeline's stage timings, summed


@pytest.mark.parametrize("name", PORTRAITS)
def test_aligned_crop_puts_the_eyes_on_the_template(name):
    photo = portrait(name)
    detected = measured_face(name)
    (face,) = restorer_for([detected]).restore(photo).faces
    np.testing.assert_allclose(face.affine, fit_to_template(detected.landmarks), atol=1e-9)
    mapped = apply_affine(face.affine, detected.landmarks)
    # A similarity cannot fit five measured points exactly (the astronaut smiles wide).
    eye_error = np.linalg.norm(mapped[:2] - FFHQ_TEMPLATE_512[:2], axis=1)
    assert eye_error.max() < 10.0, eye_error
    assert np.linalg.norm(mapped.mean(axis=0) - FFHQ_TEMPLATE_512.mean(axis=0)) < 4.0
    # The crop's pixels are the photo's pixels under that transform: sample the photo around
    # each eye and the crop around its mapped position.
    crop = np.asarray(face.input_crop).astype(np.float32)
    scale = np.sqrt(abs(np.linalg.det(face.affine[:, :2])))
    for target in mapped[:2]:
        offsets = np.stack(np.meshgrid(np.arange(-6, 7), np.arange(-6, 7)), -1).reshape(-1, 2) * 2.0
        in_crop = target + offsets
        in_photo = apply_affine(cv2.invertAffineTransform(face.affine), in_crop)
        from_crop = cv2.remap(crop, *_maps(in_crop), cv2.INTER_LINEAR)
        from_photo = cv2.remap(photo.astype(np.float32), *_maps(in_photo), cv2.INTER_LINEAR)
        assert np.abs(from_crop - from_photo).mean() < 6.0 * max(1.0, scale / 3)


def _maps(points: np.ndarray):
    return points[:, 0].astype(np.float32).reshape(1, -1), points[:, 1].astype(np.float32).reshape(1, -1)


def test_helper_attributes_match_facexlibs_own_constructor(monkeypatch):
    """``_PhotoHelper`` skips FaceRestoreHelper.__init__ (which loads weights); it must set
    what that constructor sets, with the same values."""
    import facexlib.utils.face_restoration_helper as fr

    monkeypatch.setattr(fr, "init_detection_model", lambda *a, **k: "detector")
    monkeypatch.setattr(fr, "init_parsing_model", lambda *a, **k: "parser")
    real = fr.FaceRestoreHelper(2, face_size=512, use_parse=True, device=torch.device("cpu"))
    ours = _PhotoHelper(upscale_factor=2, face_parse="parser", device=torch.device("cpu"))
    assert set(vars(ours)) == set(vars(real))
    for key, value in vars(real).items():
        if key == "face_det":
            continue
        if isinstance(value, np.ndarray):
            np.testing.assert_allclose(getattr(ours, key), value)
        else:
            assert getattr(ours, key) == value, key


# --------------------------------------------------------------------------- group photo


def test_group_photo_every_face_found_and_pasted_in_place():
    group = group_photo()
    pipeline = identity_pipeline()
    result = restorer_for(group.faces, pipeline).restore(group.image)
    assert len(result.faces) == len(GROUP)
    assert pipeline.batches == [4, 1]  # default batch size 4
    out = np.asarray(result.image)
    assert psnr(out, group.image) > 35.0
    for face, expected in zip(result.faces, group.faces):  # GROUP is laid out left to right
        assert face.box == expected.box
        np.testing.assert_allclose(face.landmarks, expected.landmarks)
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        assert psnr(out[y0:y1, x0:x1], group.image[y0:y1, x0:x1]) > 30.0


def test_group_photo_crops_match_the_source_portraits_geometry():
    """Each copy is a similarity transform of a portrait: its crop must be the portrait's crop,
    so the fitted transform maps the copy's landmarks where the portrait's go."""
    group = group_photo()
    result = restorer_for(group.faces).restore(group.image)
    for face, source in zip(result.faces, group.source_faces):
        expected = apply_affine(fit_to_template(source.landmarks), source.landmarks)
        np.testing.assert_allclose(apply_affine(face.affine, face.landmarks), expected, atol=0.5)


def test_group_photo_restored_faces_land_on_their_faces():
    """An inverting "pipeline" makes every pasted face visible: each face centre is inverted,
    the canvas far from the faces is untouched."""
    group = group_photo()
    result = restorer_for(group.faces, invert_pipeline()).restore(group.image)
    out = np.asarray(result.image).astype(np.int16)
    canvas = group.image.astype(np.int16)
    for face in group.faces:
        x, y = (int(round(v)) for v in face.landmarks[2])  # the nose
        patch = (slice(y - 3, y + 4), slice(x - 3, x + 4))
        assert np.abs(out[patch] - (255 - canvas[patch])).mean() < 12.0
    # Outside every face's 512x512 crop square (mapped back, plus a 2-pixel margin).
    height, width = canvas.shape[:2]
    covered = np.zeros((height, width), np.uint8)
    for face in result.faces:
        square = cv2.warpAffine(
            np.ones((512, 512), np.uint8), cv2.invertAffineTransform(face.affine), (width, height)
        )
        covered |= cv2.dilate(square, np.ones((5, 5), np.uint8))
    far = covered == 0
    assert 0.5 < far.mean() < 0.95
    np.testing.assert_array_equal(out[far], canvas[far])


def test_faces_are_sorted_and_batched_in_chunks_whatever_the_detector_order():
    group = group_photo()
    shuffled = [group.faces[i] for i in (3, 0, 4, 2, 1)]
    pipeline = identity_pipeline()
    result = restorer_for(shuffled, pipeline).restore(group.image, batch_size=2, seed=7)
    assert [face.box for face in result.faces] == [face.box for face in group.faces]
    assert pipeline.batches == [2, 2, 1]
    assert pipeline.seeds == [[7, 8], [9, 10], [11]]  # one generator per face: seed + index
    single = identity_pipeline()
    restorer_for(shuffled, single).restore(group.image, batch_size=8)
    assert single.batches == [5] and single.seeds == [None]


def test_options_reach_the_pipeline():
    pipeline = identity_pipeline()
    restorer_for([measured_face("astronaut")], pipeline).restore(
        portrait("astronaut"), prompt="a photo", color_fix="wavelet"
    )
    assert pipeline.options == [{"prompt": "a photo", "color_fix": "wavelet"}]


def test_only_center_face_min_size_and_max_faces():
    group = group_photo()
    restorer = restorer_for(group.faces)
    centre = restorer.restore(group.image, only_center_face=True)
    height, width = group.image.shape[:2]
    distances = [
        np.hypot((f.box[0] + f.box[2]) / 2 - width / 2, (f.box[1] + f.box[3]) / 2 - height / 2)
        for f in group.faces
    ]
    assert [f.box for f in centre.faces] == [group.faces[int(np.argmin(distances))].box]
    sizes = [min(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in group.faces]
    threshold = sorted(sizes)[2]
    big = restorer.restore(group.image, min_face_size=threshold)
    assert len(big.faces) == sum(s >= threshold for s in sizes) == 3
    largest = restorer.restore(group.image, max_faces=2)
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in group.faces]
    expected = sorted(np.argsort(areas)[-2:])
    assert [f.box for f in largest.faces] == [group.faces[i].box for i in expected]


def test_no_face_returns_the_photo_unchanged():
    photo = portrait("grace_hopper")
    pipeline = identity_pipeline()
    result = restorer_for([], pipeline).restore(photo)
    assert result.no_face_found and result.faces == []
    np.testing.assert_array_equal(np.asarray(result.image), photo)
    assert pipeline.batches == []
    # Faces below the minimum size count as no face.
    tiny = restorer_for([measured_face("grace_hopper")]).restore(photo, min_face_size=500)
    assert tiny.no_face_found
    upscaled = restorer_for([]).restore(photo, upscale=2)
    assert upscaled.no_face_found and upscaled.image.size == (1024, 1200)


def test_broken_detections_are_dropped_not_crashed_on():
    photo = portrait("astronaut")
    good = measured_face("astronaut")
    broken = [
        DetectedFace((np.nan, 0, 10, 10), good.landmarks, 0.9),  # not finite
        DetectedFace((600, 600, 700, 700), good.landmarks, 0.9),  # outside the image
        DetectedFace((10, 10, 5, 5), good.landmarks, 0.9),  # empty box
        DetectedFace((100, 100, 200, 200), np.full((5, 2), 150.0), 0.9),  # degenerate landmarks
    ]
    result = restorer_for([*broken, good]).restore(photo)
    assert [face.box for face in result.faces] == [good.box]
    with pytest.raises(ValueError, match="shape"):
        restorer_for([DetectedFace(good.box, np.zeros((4, 2)), 0.9)]).restore(photo)
    with pytest.raises(TypeError, match="DetectedFace"):
        restorer_for([good.box]).restore(photo)


def test_upscale_scales_the_whole_photo_and_keeps_faces_in_place():
    group = group_photo()
    result = restorer_for(group.faces).restore(group.image, upscale=2)
    height, width = group.image.shape[:2]
    assert result.image.size == (2 * width, 2 * height) and result.upscale == 2
    reference = cv2.resize(group.image, (2 * width, 2 * height), interpolation=cv2.INTER_LANCZOS4)
    assert psnr(np.asarray(result.image), reference) > 30.0
    with pytest.raises(ValueError, match="upscale"):
        RestoreOptions(upscale=0.5)
    with pytest.raises(ImageTooLargeError, match="upscale"):
        restorer_for(group.faces).restore(group.image, upscale=4, max_output_pixels=1_000_000)


def test_aligned_mode_skips_detection():
    face = np.asarray(
        restorer_for([measured_face("grace_hopper")]).restore(portrait("grace_hopper")).faces[0].input_crop
    )
    detector = FixedDetector([])
    pipeline = invert_pipeline()
    restorer = FaceRestorer(pipeline, detector)
    result = restorer.restore(face, aligned=True)
    assert detector.calls == 0 and pipeline.batches == [1]
    assert not result.no_face_found and len(result.faces) == 1 and result.faces[0].score is None
    np.testing.assert_array_equal(np.asarray(result.image), 255 - face)
    np.testing.assert_allclose(result.faces[0].landmarks, FFHQ_TEMPLATE_512)
    small = restorer.restore(Image.fromarray(face).resize((256, 256)), aligned=True, upscale=2)
    assert small.image.size == (1024, 1024) and small.faces[0].input_crop.size == (512, 512)
    np.testing.assert_allclose(small.faces[0].landmarks, FFHQ_TEMPLATE_512 / 2)
    with pytest.raises(ValueError, match="square"):
        restorer.restore(face[:, :400], aligned=True)


def test_pipeline_returning_the_wrong_number_of_images_is_an_error():
    class Broken:
        def __call__(self, images, **options):
            return type("Out", (), {"images": images[:-1]})()

    with pytest.raises(RuntimeError, match="returned 0 images for 1 faces"):
        restorer_for([measured_face("astronaut")], Broken()).restore(portrait("astronaut"))


def test_restorer_keeps_no_per_photo_state_between_threads():
    """Three threads restore with one restorer (a stand-in detector: the RetinaFace detector's
    lock is tested with the detector below) and each gets the single-threaded result."""
    group = group_photo()
    restorer = restorer_for(group.faces)
    expected = np.asarray(restorer.restore(group.image).image)
    outputs: list[np.ndarray] = []

    def work(image):
        outputs.append(np.asarray(restorer.restore(image).image))

    threads = [threading.Thread(target=work, args=(group.image,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outputs) == 3
    for output in outputs:
        np.testing.assert_array_equal(output, expected)


# --------------------------------------------------------------------------- parse mask


class EllipseParser(torch.nn.Module):
    """A stand-in for ParseNet (same call and output layout): "skin" (class 1) inside an
    ellipse around the template's face, background elsewhere."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        yy, xx = torch.meshgrid(torch.arange(512.0), torch.arange(512.0), indexing="ij")
        self.inside = ((xx - 256) / 150) ** 2 + ((yy - 300) / 190) ** 2 < 1

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 19, 512, 512)
        logits[:, 1][:, self.inside] = 1.0
        logits[:, 0][:, ~self.inside] = 1.0
        return logits, x


def test_parse_mask_paste_follows_the_parser():
    photo = portrait("grace_hopper")
    face = measured_face("grace_hopper")
    square = restorer_for([face], invert_pipeline()).restore(photo)
    parsed = restorer_for([face], invert_pipeline(), face_parser=EllipseParser()).restore(photo)
    crop_to_photo = cv2.invertAffineTransform(square.faces[0].affine)
    # Inside the face ellipse both masks paste the restored face; in the crop's corner (inside
    # the square, outside the ellipse) only the square mask does.
    centre = apply_affine(crop_to_photo, np.array([[256.0, 300.0]]))[0].round().astype(int)
    corner = apply_affine(crop_to_photo, np.array([[90.0, 90.0]]))[0].round().astype(int)
    for result in (square, parsed):
        value = np.asarray(result.image)[centre[1], centre[0]].astype(int)
        assert np.abs(value - (255 - photo[centre[1], centre[0]].astype(int))).max() < 20
    at_corner = photo[corner[1], corner[0]].astype(int)
    assert np.abs(np.asarray(parsed.image)[corner[1], corner[0]].astype(int) - at_corner).max() < 3
    assert np.abs(np.asarray(square.image)[corner[1], corner[0]].astype(int) - (255 - at_corner)).max() < 20


# --------------------------------------------------------------------------- RetinaFace wiring


class FakeRetinaFace(torch.nn.Module):
    """Answers like RetinaFace.detect_faces: one face covering the image it is given."""

    def __init__(self):
        super().__init__()
        self.seen: list[np.ndarray] = []

    def detect_faces(self, image, conf_threshold=0.8, nms_threshold=0.4, use_origin_size=True):
        self.seen.append(image)
        h, w = image.shape[:2]
        points = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]]) * [w - 1, h - 1]
        return np.array([[0.0, 0.0, w - 1.0, h - 1.0, 0.98, *points.ravel()]], dtype=np.float32)


class ScratchRetinaFace(FakeRetinaFace):
    """Keeps the input's size on itself between two steps of one call, as facexlib's RetinaFace
    does; between the steps it waits (up to ``wait`` seconds) for a second call to arrive."""

    def __init__(self, wait: float):
        super().__init__()
        self.arrived = threading.Barrier(2)
        self.wait = wait

    def detect_faces(self, image, conf_threshold=0.8, nms_threshold=0.4, use_origin_size=True):
        self.size = image.shape[:2]
        try:  # both calls are in here at once, unless the detector's lock keeps one out
            self.arrived.wait(timeout=self.wait)
        except threading.BrokenBarrierError:
            pass
        return super().detect_faces(np.zeros((*self.size, 3), np.uint8), conf_threshold)


def _boxes_from_two_threads(detector) -> list[tuple[float, ...]]:
    images = [np.zeros((300, 500, 3), np.uint8), np.zeros((200, 120, 3), np.uint8)]
    boxes: list = [None, None]

    def work(index):
        boxes[index] = tuple(round(v) for v in detector(images[index])[0].box)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return boxes


def test_retinaface_detector_is_safe_to_share_between_threads():
    own_sizes = [(0, 0, 499, 299), (0, 0, 119, 199)]
    shared = RetinaFaceDetector(ScratchRetinaFace(wait=0.5), max_side=None)
    assert _boxes_from_two_threads(shared) == own_sizes
    # The control: the same two calls without the lock meet inside the model, and one of them
    # reads the other's size (so the assertion above does test the lock).
    unlocked = RetinaFaceDetector(ScratchRetinaFace(wait=10.0), max_side=None)
    unlocked._lock = contextlib.nullcontext()
    assert _boxes_from_two_threads(unlocked) != own_sizes


def test_retinaface_detector_gives_bgr_and_maps_downscaled_coordinates_back():
    image = np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    model = FakeRetinaFace()
    full = RetinaFaceDetector(model, max_side=None)(image)
    np.testing.assert_array_equal(model.seen[0], image[:, :, ::-1])
    assert full[0].box == pytest.approx((0, 0, 499, 299)) and full[0].score == pytest.approx(0.98)
    small = RetinaFaceDetector(model, max_side=250)(image)
    assert model.seen[1].shape == (150, 250, 3)
    assert small[0].box == pytest.approx((0, 0, 499, 299), abs=1.5)
    np.testing.assert_allclose(small[0].landmarks, full[0].landmarks, atol=1.5)


@pytest.mark.slow
@pytest.mark.filterwarnings(
    "ignore:.*(pretrained|weight enum).*:UserWarning"
)  # facexlib calls resnet50(pretrained=False)
def test_real_retinaface_with_random_weights_runs_end_to_end():
    """facexlib's RetinaFace (ResNet-50), random weights: proves the wiring, not detection."""
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(0)
    model = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))
    detector = RetinaFaceDetector(model, threshold=0.5)
    photo = cv2.resize(portrait("astronaut"), (160, 160), interpolation=cv2.INTER_AREA)
    faces = detector(photo)
    # Random weights with seed 0 give many confident boxes: the checks below run on real rows.
    assert len(faces) >= 3
    assert all(isinstance(f, DetectedFace) and f.landmarks.shape == (5, 2) and f.score > 0.5 for f in faces)
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    kept = select_faces(faces, photo.shape, RestoreOptions(max_faces=3, min_face_size=0))
    result = FaceRestorer(identity_pipeline(), detector).restore(photo, max_faces=3, min_face_size=0)
    assert result.image.size == (160, 160) and len(result.faces) == len(kept) == 3
    assert not result.no_face_found
    assert all(f.input_crop.size == (512, 512) for f in result.faces)


def test_black_and_white_photos_get_grey_faces():
    photo = np.repeat(portrait("grace_hopper").mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    tint = identity_pipeline()
    # A tint that keeps the luma (0.299 R + 0.587 G + 0.114 B) nearly unchanged.
    tint.transform = lambda face: np.clip(face.astype(int) + [30, -15, 0], 0, 255).astype(np.uint8)
    result = restorer_for([measured_face("grace_hopper")], tint).restore(photo)
    out = np.asarray(result.image)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 1], out[..., 2])
    assert psnr(out, photo) > 35.0
    colour = restorer_for([measured_face("grace_hopper")], tint).restore(portrait("grace_hopper"))
    assert (
        np.abs(np.asarray(colour.image).astype(int) - portrait("grace_hopper")).max() > 30
    )  # the tint shows


def test_detections_with_plain_lists_and_numpy_scalars_are_accepted():
    good = measured_face("astronaut")
    loose = DetectedFace(
        box=tuple(np.float32(v) for v in good.box), landmarks=good.landmarks.tolist(), score=np.float32(0.9)
    )
    (face,) = restorer_for([loose]).restore(portrait("astronaut")).faces
    assert isinstance(face.landmarks, np.ndarray) and face.landmarks.dtype == np.float64
    assert all(type(v) is float for v in face.box) and type(face.score) is float


def test_synthetic_bench_photo_geometry():
    from benchmarks.bench_faces import synthetic_photo

    photo, detections = synthetic_photo(4, face_width=160)
    assert photo.dtype == np.uint8 and photo.shape == (320, 4 * 240 + 80, 3)
    assert len(detections) == 4
    pipeline = identity_pipeline()
    result = FaceRestorer(pipeline, FixedDetector(detections)).restore(photo, batch_size=4)
    assert pipeline.batches == [4] and len(result.faces) == 4
    for face in result.faces:  # each face is an exactly scaled template: the crop is the template
        np.testing.assert_allclose(apply_affine(face.affine, face.landmarks), FFHQ_TEMPLATE_512, atol=1e-3)


@pytest.mark.slow
def test_bench_times_one_batched_call_against_one_call_per_face(capsys, monkeypatch):
    from benchmarks import bench_faces as faces_bench
    from osdface.testing.random_weights import random_pipeline

    batches = []

    def counting_pipeline(*args, **kwargs):
        pipeline = random_pipeline(*args, **kwargs)
        real_call = pipeline.__call__

        class Counting(type(pipeline)):
            def __call__(self, images, *call_args, **options):
                batches.append(len(images))
                return real_call(images, *call_args, **options)

        pipeline.__class__ = Counting
        return pipeline

    monkeypatch.setattr(faces_bench, "random_pipeline", counting_pipeline)
    figures = faces_bench.run(
        faces_bench.BenchSettings(size="tiny", faces=2, repeats=1, warmup=False, device="cpu")
    )
    # What the two figures time: one call with both faces, then one call per face.
    assert batches == [2, 1, 1]
    printed = capsys.readouterr().out
    assert f"batched (1 call x 2 faces):      {figures['batched']:9.3f} s" in printed
    assert f"one at a time (2 calls x 1 face): {figures['one_at_a_time']:9.3f} s" in printed
