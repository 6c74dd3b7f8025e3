"""``--restorers``: other restorers restore the very faces OSDFace restored, written beside its
output; ``--background`` reaches the restorer; a restorer without weights is skipped with its
reason. The flags' names before 0.3 (``--compare``, ``eval-fr --methods``) still work, unlisted."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.faces import RecordingPipeline, identity_pipeline, measured_face, portrait
from helpers.restorer_files import write_face_release
from PIL import Image

from osdface.cli import main
from osdface.faces import FaceRestorer, RestoreOptions
from osdface.faces.batch import collect_inputs, restore_files
from osdface.restorers.comparison import BesideWriter, beside


class _RecordingModel:
    """A ``FaceModel`` that darkens faces and keeps what it was given."""

    key, label = "dark", "Dark"

    def __init__(self):
        self.seen: list[np.ndarray] = []

    def restore(self, faces, *, seed=None):
        self.seen += [np.asarray(face) for face in faces]
        return [Image.fromarray(np.asarray(face) // 2) for face in faces]


def test_compare_restores_the_same_faces_and_writes_beside(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    Image.fromarray(portrait("astronaut")).save(photos / "astronaut.png")
    items, _ = collect_inputs([photos], out)
    pipeline: RecordingPipeline = identity_pipeline()
    crops: list[np.ndarray] = []
    recording = pipeline.transform
    pipeline.transform = lambda face: crops.append(face.copy()) or recording(face)
    model = _RecordingModel()
    options = RestoreOptions()
    restorer = FaceRestorer(pipeline, lambda image: [measured_face("astronaut")], options=options)
    results = restore_files(
        lambda: restorer, items, out, options, compare=BesideWriter({"dark": model}, options)
    )
    assert [r.status for r in results] == ["restored"]
    assert beside(out / "astronaut.png", "dark") == out / "astronaut.dark.png"
    ours = np.asarray(Image.open(out / "astronaut.png")).astype(int)
    theirs = np.asarray(Image.open(out / "astronaut.dark.png")).astype(int)
    assert ours.shape == theirs.shape == (512, 512, 3)
    assert len(model.seen) == len(crops) == 1 and np.array_equal(model.seen[0], crops[0])  # same aligned face
    assert np.abs(ours - theirs)[100:140, 200:240].mean() > 20  # the face (box 175..265, 76..166) differs
    assert np.array_equal(ours[:20, :20], theirs[:20, :20])  # the background does not


def _cli(tiny_hub, inputs, out, *extra):
    args = ["restore", str(inputs), "-o", str(out), "--aligned", "--weights", tiny_hub.weights_repo]
    args += ["--base-model", tiny_hub.base_repo, "--device", "cpu", "--dtype", "float32", *extra]
    return main(args)


def test_unknown_method_and_background_exit_2(tmp_path, capsys):
    assert main(["restore", str(tmp_path), "-o", str(tmp_path / "o"), "--restorers", "gfpgan,foo"]) == 2
    assert "unknown method(s) ['foo']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["restore", str(tmp_path), "-o", str(tmp_path / "o"), "--background", "bicubic"])


@pytest.mark.slow
def test_cli_compare_skips_a_method_without_weights_and_runs_the_other(
    tiny_hub, aligned_faces, tmp_path, capsys, monkeypatch
):
    restorers = tmp_path / "restorers"
    write_face_release("restoreformer", restorers)
    monkeypatch.setenv("OSDFACE_RESTORERS_DIR", str(restorers))
    out = tmp_path / "out"
    assert _cli(tiny_hub, aligned_faces, out, "--restorers", "gfpgan,restoreformer") == 0
    printed = capsys.readouterr()
    assert "warning: --restorers gfpgan is skipped" in printed.err and "GFPGANv1.4.pth" in printed.err
    for name in ("astronaut", "grace_hopper"):
        assert Image.open(out / f"{name}.png").size == (512, 512)
        other = np.asarray(Image.open(out / f"{name}.restoreformer.png")).astype(int)
        assert other.shape == (512, 512, 3)
        assert np.abs(other - np.asarray(Image.open(out / f"{name}.png"))).mean() > 1
        assert not (out / f"{name}.gfpgan.png").exists()


@pytest.mark.slow
def test_cli_background_without_its_weights_exits_2_with_the_reason(
    tiny_hub, aligned_faces, tmp_path, capsys
):
    assert (
        _cli(tiny_hub, aligned_faces, tmp_path / "out", "--background", "realesrgan-x4", "--upscale", "2")
        == 2
    )
    assert "RealESRGAN_x4plus.pth" in capsys.readouterr().err


# --------------------------------------------------------------------------- eval-fr --restorers


def test_eval_fr_restorers_option_gives_one_condition_per_restorer(tmp_path, capsys):
    import argparse

    from osdface.commands.eval_fr import config_from_namespace, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    base = ["eval-fr", str(tmp_path), str(tmp_path / "pairs.txt"), "-o", str(tmp_path / "out")]
    args = parser.parse_args([*base, "--restorers", "osdface,gfpgan,codeformer", "--without-restoration"])
    assert config_from_namespace(args).methods == ("turbulent", "osdface", "gfpgan", "codeformer")
    assert config_from_namespace(parser.parse_args([*base, "--restorers", "gfpgan"])).methods == ("gfpgan",)
    assert main([*base, "--restorers", "osdface,bsrgan"]) == 2
    assert "unknown method(s) ['bsrgan']" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_fr_scores_each_restorer_on_the_same_turbulent_faces(tmp_path):
    from helpers.evaluation import write_face_set

    from osdface.evaluation.conditions import EvalFRConfig
    from osdface.evaluation.identity import ArcFaceEmbedder
    from osdface.evaluation.run import run_eval_fr

    faces_dir, pairs_file = write_face_set(tmp_path)
    dark = _RecordingModel()
    config = EvalFRConfig(
        faces_dir=faces_dir,
        pairs_file=pairs_file,
        output_dir=tmp_path / "out",
        lengths=(30000.0,),
        methods=("turbulent", "gfpgan"),
        aligned=True,
        extension="png",
        save_images=True,
        progress=False,
    )
    embedder = ArcFaceEmbedder.random(seed=0)
    result = run_eval_fr(config, embedder=embedder, restorers={"gfpgan": dark})
    assert [c.condition.name for c in result.conditions] == ["clean", "turbulent_30000", "gfpgan_30000"]
    assert [c.condition.label for c in result.conditions][-1] == "GFPGAN v1.4, 30 km"
    images = tmp_path / "out" / "images"
    for path in (images / "turbulent_30000").rglob("*.png"):
        turbulent = np.asarray(Image.open(path))
        restored = np.asarray(
            Image.open(images / "gfpgan_30000" / path.relative_to(images / "turbulent_30000"))
        )
        assert np.array_equal(restored, turbulent // 2)  # the restorer restored that very face
    assert len(dark.seen) == len(list((images / "turbulent_30000").rglob("*.png"))) > 0


@pytest.mark.parametrize(
    ("command", "old", "new"),
    [("restore", "--compare", "--restorers"), ("eval-fr", "--methods", "--restorers")],
)
def test_the_old_flag_names_still_work_and_are_not_listed(command, old, new, tmp_path, capsys):
    from osdface.cli import build_parser

    positional = [str(tmp_path)] if command == "restore" else [str(tmp_path), str(tmp_path / "pairs.txt")]
    base = [command, *positional, "-o", str(tmp_path / "out")]
    parser = build_parser()
    assert vars(parser.parse_args([*base, old, "gfpgan"])) == vars(parser.parse_args([*base, new, "gfpgan"]))
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--help"])
    shown = capsys.readouterr().out
    assert new in shown and old not in shown
