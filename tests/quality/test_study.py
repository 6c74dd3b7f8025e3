"""``osdface evaluate``'s bookkeeping (``osdface.quality.study``) with a fake restorer and
PSNR only: no model, a few 512x512 faces, seconds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osdface.quality.fid import FIDScorer, Statistics
from osdface.quality.study import EvaluateConfig, run_evaluate
from osdface.quality.tables import Condition
from osdface.quality.weights import MetricWeightsError
from osdface.runtime.distributed import ProcessGroup


class AddConstant:
    """A deterministic 'restorer' that adds ``add`` to every pixel."""

    key = "gfpgan"
    label = "fake"

    def __init__(self, add: int):
        self.add = add

    def restore(self, faces, seed=None):
        return [
            Image.fromarray(np.clip(np.asarray(face).astype(int) + self.add, 0, 255).astype(np.uint8))
            for face in faces
        ]


@pytest.fixture
def folders(tmp_path):
    lq, hq = tmp_path / "lq", tmp_path / "hq"
    lq.mkdir()
    hq.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        face = rng.integers(0, 200, (512, 512, 3), dtype=np.uint8)
        Image.fromarray(face).save(lq / name)
        Image.fromarray(face).save(hq / name)
    return tmp_path


def evaluate(folders, add=10, **settings):
    settings = {
        "output_dir": folders / "out",
        "lq_dir": folders / "lq",
        "hq_dir": folders / "hq",
        "methods": ("gfpgan",),
        "metrics": ("psnr",),
        "progress": False,
        **settings,
    }
    config = EvaluateConfig(**settings)
    group = ProcessGroup(index=0, count=1)
    return run_evaluate(config, restorers={"gfpgan": AddConstant(add)}, group=group)


def test_a_rerun_with_other_result_settings_is_refused_naming_them(folders):
    first = evaluate(folders, codeformer_w=0.5)
    other_hq = folders / "hq2"
    other_hq.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(255 - np.asarray(Image.open(folders / "hq" / name))).save(other_hq / name)
    with pytest.raises(ValueError, match=r"codeformer_w: 0\.5 before, 0\.9 now.*Fix: use a new -o folder"):
        evaluate(folders, add=40, codeformer_w=0.9)
    with pytest.raises(ValueError, match=r"hq_dir: .*hq' before, .*hq2' now"):
        evaluate(folders, hq_dir=other_hq, codeformer_w=0.5)
    with pytest.raises(ValueError, match=r"seed: 0 before, 1 now"):
        evaluate(folders, seed=1, codeformer_w=0.5)
    # The same settings resume, with a metric added, and with the folders named another way.
    again = evaluate(folders, codeformer_w=0.5, metrics=("psnr", "ssim"))
    assert again.table["gfpgan"]["psnr"] == first.table["gfpgan"]["psnr"] and "ssim" in again.table["gfpgan"]
    renamed = evaluate(folders / "lq" / "..")
    assert renamed.table["gfpgan"]["psnr"] == first.table["gfpgan"]["psnr"]


class CheapFID(FIDScorer):
    """FID on 4-d features (each image's mean colour and its place in the list): the Frechet
    distance is instant. ``reads`` records the files each condition's statistics read."""

    def __init__(self, reference_error: Exception | None = None):
        super().__init__(weights=object())
        self.reads: list[list[str]] = []
        self.reference_error = reference_error

    def file_features(self, files):
        self.reads.append(sorted(Path(f).name for f in files))
        return np.array(
            [[*np.asarray(Image.open(f), float).reshape(-1, 3).mean(0), i] for i, f in enumerate(files)]
        ).reshape(len(files), 4)

    def reference(self, reference, cache_dir=None):
        if self.reference_error is not None:
            raise self.reference_error
        return Statistics(np.zeros(4), np.eye(4), 5)


def fid_evaluate(folders, fid, metrics=("fid",), **settings):
    config = EvaluateConfig(
        output_dir=settings.pop("output_dir", folders / "out"),
        lq_dir=folders / "lq",
        methods=("input",),
        metrics=metrics,
        fid_reference="given",
        progress=False,
        **settings,
    )
    return run_evaluate(config, fid=fid, group=ProcessGroup(index=0, count=1))


def test_fid_alone_restores_the_images_and_reads_exactly_this_runs(folders):
    fid = CheapFID()
    result = fid_evaluate(folders, fid)
    assert fid.reads == [["a.png", "b.png"]] and result.counts == {"input": 2}
    assert math.isfinite(result.table["input"]["fid"])
    # An earlier run's image of another input stays in the folder; FID does not read it.
    (folders / "lq" / "b.png").unlink()
    Image.open(folders / "lq" / "a.png").save(folders / "lq" / "c.png")
    fid.reads.clear()
    result = fid_evaluate(folders, fid)
    assert fid.reads == [["a.png", "c.png"]] and result.counts == {"input": 2}


def test_fid_of_a_condition_with_fewer_than_two_images_is_skipped_with_the_reason(folders):
    (folders / "lq" / "b.png").write_bytes(b"not an image")  # left out: one image remains
    result = fid_evaluate(folders, CheapFID(), metrics=("fid", "psnr"), hq_dir=folders / "lq")
    assert "fid" not in result.table["input"] and "psnr" in result.table["input"]
    assert "FID needs at least 2 images, got 1" in result.unavailable["fid (input)"]
    table = (folders / "out" / "table.md").read_text()
    assert "fid (input): not computed: FID needs at least 2 images" in table


def test_fid_files_missing_leave_fid_out_and_the_report_is_written(folders):
    missing = MetricWeightsError("FID's Inception file is not available offline. Fix: ...")
    result = fid_evaluate(folders, CheapFID(missing), metrics=("fid", "psnr"), hq_dir=folders / "hq")
    assert result.unavailable["fid"].startswith("FID's Inception file is not available")
    assert "psnr" in result.table["input"] and "fid" not in result.table["input"]
    assert "fid: not computed: FID's Inception file" in (folders / "out" / "table.md").read_text()


def test_a_score_line_cut_short_is_ignored_and_its_image_scored_again(folders):
    first = evaluate(folders)
    log = folders / "out" / "scores" / "scores-0.jsonl"
    text = log.read_text()
    log.write_text(text[:-15])  # the last append cut short: the run was killed
    with pytest.warns(UserWarning, match="line 2: not a score line, ignored"):
        again = evaluate(folders)
    assert again.table == first.table and again.counts == {"gfpgan": 2}
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and all(line.startswith("{") and line.endswith("}") for line in lines)
    evaluate(folders)  # and the run after reads a clean log
    # Only the newline lost: the line is kept, and ended before the next one (a metric added).
    log.write_text(log.read_text()[:-1])
    added = evaluate(folders, metrics=("psnr", "ssim"))
    assert added.table["gfpgan"]["psnr"] == first.table["gfpgan"]["psnr"]
    assert [json.loads(line)["image"] for line in log.read_text().splitlines()] == ["a.png", "b.png"] * 2


def test_inputs_differing_only_in_extension_keep_their_own_restorations(folders):
    face = np.asarray(Image.open(folders / "lq" / "a.png"))
    Image.fromarray(255 - face).save(folders / "lq" / "a.bmp")
    Image.fromarray(255 - face).save(folders / "hq" / "a.bmp")
    result = evaluate(folders)
    images = folders / "out" / "images" / "gfpgan"
    assert sorted(p.name for p in images.iterdir()) == ["a.bmp.png", "a.png", "b.png"]
    assert result.counts == {"gfpgan": 3}
    assert not np.array_equal(
        np.asarray(Image.open(images / "a.png")), np.asarray(Image.open(images / "a.bmp.png"))
    )


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        ((30000.0, 30000.0), "each length once"),
        ((-5.0,), "must be positive metres"),
        ((float("nan"),), "must be positive metres"),
        ((float("inf"),), "must be positive metres"),
    ],
)
def test_bad_lengths_are_refused_as_eval_fr_refuses_them(folders, lengths, message):
    config = EvaluateConfig(output_dir=folders / "out", hq_dir=folders / "hq", lengths=lengths)
    with pytest.raises(ValueError, match=message):
        config.check()


def test_lengths_close_together_get_their_own_condition_names():
    names = {Condition("osdface", length).name for length in (30000.1, 30000.14, 30000.0)}
    assert names == {"osdface@30000.1m", "osdface@30000.14m", "osdface@30000m"}
