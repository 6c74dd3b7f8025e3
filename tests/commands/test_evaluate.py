"""``osdface evaluate`` end to end: the tiny random OSDFace, metrics on random weights in their
published layouts, two aligned faces degraded by turbulence; the table, the resume, the split."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from osdface.cli import main
from osdface.quality.study import EvaluateConfig, run_evaluate
from osdface.runtime.distributed import ProcessGroup

pytestmark = pytest.mark.slow

METRICS = "psnr,ssim,lpips,niqe,fid"


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory, aligned_faces, tiny_hub, metric_files):
    out = tmp_path_factory.mktemp("evaluate") / "out"
    args = [
        "evaluate", "--hq", str(aligned_faces), "--lengths", "30000", "-o", str(out),
        "--restorers", "input,osdface,no_vre", "--metrics", METRICS, "--no-progress",
        "--weights", tiny_hub.weights_repo, "--base-model", tiny_hub.base_repo,
        "--metrics-dir", str(metric_files / "all"),
    ]  # fmt: skip
    return {"status": main(args), "out": out, "args": args}


def test_the_table_has_a_row_per_restorer_in_the_papers_order(evaluation, capsys):
    assert evaluation["status"] == 0
    out = evaluation["out"]
    table = (out / "table.md").read_text()
    header = table.splitlines()[0]
    assert header == "| Restorer | Images | PSNR↑ | SSIM↑ | LPIPS↓ | NIQE↓ | FID↓ |"
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:] if line.startswith("|")]
    assert rows == ["input@30000m", "osdface@30000m", "no_vre@30000m"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["columns"] == ["psnr", "ssim", "lpips", "niqe", "fid"]
    assert metrics["metrics"]["lpips"]["higher_is_better"] is False
    for row in metrics["conditions"].values():
        assert row["images"] == 2 and set(row["scores"]) == set(metrics["columns"])
    with open(out / "per_image.csv", newline="") as handle:
        per_image = list(csv.DictReader(handle))
    assert len(per_image) == 6  # 3 restorers x 2 faces
    assert len(list((out / "images").rglob("*.png"))) == 6


def test_a_rerun_restores_and_scores_nothing_again(evaluation, capsys):
    out = evaluation["out"]
    before = {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.png")}
    lines = sum(len(p.read_text().splitlines()) for p in (out / "scores").glob("*.jsonl"))
    table = (out / "table.md").read_text()
    assert main(evaluation["args"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.png")} == before
    assert sum(len(p.read_text().splitlines()) for p in (out / "scores").glob("*.jsonl")) == lines
    assert (out / "table.md").read_text() == table


def test_two_processes_give_the_table_of_one(evaluation, tmp_path, aligned_faces, tiny_hub, metric_files):
    config = EvaluateConfig(
        output_dir=tmp_path / "split",
        hq_dir=aligned_faces,
        lengths=(30000.0,),
        methods=("input", "osdface", "no_vre"),
        metrics=tuple(METRICS.split(",")),
        weights=tiny_hub.weights_repo,
        base_model=tiny_hub.base_repo,
        metrics_dir=metric_files / "all",
        progress=False,
    )
    # the second process works on its share and leaves; the first does its own and reports
    assert run_evaluate(config, group=_Unsynchronised(index=1, count=2)) is None
    result = run_evaluate(config, group=_Unsynchronised(index=0, count=2))
    assert sorted(p.name for p in (tmp_path / "split" / "scores").iterdir()) == [
        "scores-0.jsonl",
        "scores-1.jsonl",
    ]
    assert (tmp_path / "split" / "table.md").read_text() == (evaluation["out"] / "table.md").read_text()
    assert result.counts == {"input@30000m": 2, "osdface@30000m": 2, "no_vre@30000m": 2}


class _Unsynchronised(ProcessGroup):
    """Two processes run one after the other in this one: the waits between them are no-ops."""

    def barrier(self) -> None:
        pass


def test_bad_settings_are_refused_with_the_setting(tmp_path, capsys):
    assert main(["evaluate", "-o", str(tmp_path / "o")]) == 2
    assert "give a folder of low-quality faces" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing"), "-o", str(tmp_path / "o")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "-o", str(tmp_path / "o"), "--metrics", "psnr,sharpness"]) == 2
    assert "unknown metric 'sharpness'" in capsys.readouterr().err
    # Full-reference metrics named without --hq are refused (a group such as "all" drops them).
    assert main(["evaluate", str(tmp_path), "-o", str(tmp_path / "o"), "--metrics", "psnr,niqe,lpips"]) == 2
    assert "--metrics psnr,lpips compare each result with its high-quality face" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "o", ignore_errors=True)


def test_whole_photos_are_aligned_alike_and_a_faceless_one_is_left_out(tmp_path, metric_files):
    from helpers.faces import PortraitDetector, portrait

    from osdface.faces import align_face
    from osdface.quality.pixels import psnr

    lq_dir, hq_dir = tmp_path / "lq", tmp_path / "hq"
    lq_dir.mkdir(), hq_dir.mkdir()
    rng = np.random.default_rng(0)
    for name in ("astronaut", "grace_hopper"):
        clean = portrait(name)
        noisy = np.clip(clean.astype(int) + rng.integers(-12, 13, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(clean).save(hq_dir / f"{name}.png")
        Image.fromarray(noisy).save(lq_dir / f"{name}.png")
    blank = np.full((300, 400, 3), 128, np.uint8)  # no face: the stand-in detector finds none
    Image.fromarray(blank).save(hq_dir / "blank.png")
    Image.fromarray(blank).save(lq_dir / "blank.png")
    config = EvaluateConfig(
        output_dir=tmp_path / "out",
        lq_dir=lq_dir,
        hq_dir=hq_dir,
        methods=("input",),
        metrics=("psnr", "ssim"),
        aligned=False,
        progress=False,
    )
    result = run_evaluate(config, detector=PortraitDetector())
    assert list(result.skipped) == ["blank.png"] and "no face found" in result.skipped["blank.png"]
    assert result.counts == {"input": 2}
    # the high-quality photo was warped with the low-quality photo's transform: the same pixels
    lq_face, _ = align_face(
        np.asarray(Image.open(lq_dir / "astronaut.png")),
        PortraitDetector()(portrait("astronaut"))[0].landmarks,
    )
    hq_face, _ = align_face(portrait("astronaut"), PortraitDetector()(portrait("astronaut"))[0].landmarks)
    assert result.per_image[("input", "astronaut.png")]["psnr"] == pytest.approx(psnr(lq_face, hq_face))
    assert result.per_image[("input", "astronaut.png")]["psnr"] > 28
    assert "1 image(s) left out" in (tmp_path / "out" / "table.md").read_text()
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["skipped"] == result.skipped
