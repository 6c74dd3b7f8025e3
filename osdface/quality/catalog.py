"""The quality metrics by name: what each measures, which way is better, what it needs.

Names are the command line's and the JSON keys (``--metrics psnr,ssim,lpips``); ``label`` is
the column header of the tables, as the paper prints it. The paper's two tables use these
columns, in this order:

- Table 3 (synthetic CelebA-Test, a high-quality reference per face): ``SYNTHETIC_COLUMNS``;
- Table 2 (real-world Wider, LFW, WebPhoto, no reference): ``REAL_WORLD_COLUMNS``.

Implementations: IQA-PyTorch (``pyiqa``, the package the authors used) for the learned metrics
and NIQE, with pyiqa's default settings for each name (``clipiqa``, ``maniqa``, ...); PSNR and SSIM here, in float64 on the Y
channel (the convention of BasicSR and the face-restoration papers); Deg. and LMD here, on
facexlib's ArcFace and RetinaFace.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from osdface.restorers.specs import RESTORERS


class Needs(str, Enum):
    """What a metric compares an image with."""

    NOTHING = "no-reference"  # scores one image
    REFERENCE = "full-reference"  # compares with its high-quality face
    SET = "set"  # compares the whole set with a reference set (FID)


@dataclass(frozen=True)
class MetricSpec:
    """One metric. ``pyiqa_name``: the name ``pyiqa.create_metric`` knows it by (None: ours);
    ``files``: the weight files it needs (``osdface.quality.weights.METRIC_FILES``)."""

    name: str
    label: str
    higher_is_better: bool
    needs: Needs
    meaning: str
    pyiqa_name: str | None = None
    files: tuple[str, ...] = ()

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def header(self) -> str:
        """The column header with its direction, as the paper prints it: ``LPIPS↓``."""
        return f"{self.label}{self.arrow}"


_TORCHVISION_ALEXNET = "alexnet-owt-7be5be79.pth"
_TORCHVISION_VGG16 = "vgg16-397923af.pth"
# osdface.quality.weights: CLIP_RN50 (OpenAI's URL) and TIMM_VIT_B8 (timm's Hub repo)
_CLIP_RN50 = "RN50.pt"
_TIMM_VIT_B8 = "vit_base_patch8_224.augreg2_in21k_ft_in1k.safetensors"

METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "psnr",
            "PSNR",
            True,
            Needs.REFERENCE,
            "peak signal-to-noise ratio on the Y channel, in dB: pixel fidelity to the reference",
        ),
        MetricSpec(
            "ssim",
            "SSIM",
            True,
            Needs.REFERENCE,
            "structural similarity on the Y channel (11x11 Gaussian window, sigma 1.5), 0 to 1",
        ),
        MetricSpec(
            "lpips",
            "LPIPS",
            False,
            Needs.REFERENCE,
            "learned perceptual distance to the reference (AlexNet features, v0.1)",
            pyiqa_name="lpips",
            files=("LPIPS_v0.1_alex-df73285e.pth", _TORCHVISION_ALEXNET),
        ),
        MetricSpec(
            "dists",
            "DISTS",
            False,
            Needs.REFERENCE,
            "deep structure and texture distance to the reference (VGG16 features)",
            pyiqa_name="dists",
            files=("DISTS_weights-f5e65c96.pth", _TORCHVISION_VGG16),
        ),
        MetricSpec(
            "musiq",
            "MUSIQ",
            True,
            Needs.NOTHING,
            "multi-scale transformer trained on KonIQ-10k opinion scores, about 0 to 100",
            pyiqa_name="musiq",
            files=("musiq_koniq_ckpt-e95806b9.pth",),
        ),
        MetricSpec(
            "clipiqa",
            "CLIP-IQA",
            True,
            Needs.NOTHING,
            "how much better CLIP (ResNet-50) matches 'good', 'sharp', 'noise-free'... than the opposite prompts, 0 to 1",
            pyiqa_name="clipiqa",
            files=(_CLIP_RN50,),
        ),
        MetricSpec(
            "maniqa",
            "MANIQA",
            True,
            Needs.NOTHING,
            "attention network on ViT-B/8 features trained on KonIQ-10k opinion scores, about 0 to 1",
            pyiqa_name="maniqa",
            files=("ckpt_koniq10k.pt", _TIMM_VIT_B8),
        ),
        MetricSpec(
            "niqe",
            "NIQE",
            False,
            Needs.NOTHING,
            "distance of natural-scene statistics from those of pristine photos (no learning)",
            pyiqa_name="niqe",
            files=("niqe_modelparameters.mat",),
        ),
        MetricSpec(
            "deg",
            "Deg.",
            False,
            Needs.REFERENCE,
            "identity: angle between the ArcFace embeddings of the result and the reference, degrees",
            files=("recognition_arcface_ir_se50.pth",),
        ),
        MetricSpec(
            "lmd",
            "LMD",
            False,
            Needs.REFERENCE,
            "mean distance in pixels between the five RetinaFace landmarks of the result and the reference",
            files=("detection_Resnet50_Final.pth",),
        ),
        MetricSpec(
            "fid",
            "FID",
            False,
            Needs.SET,
            "Frechet distance between Inception features of the results and of a reference set",
            pyiqa_name="fid",
            files=("pt_inception-2015-12-05-6726825d.pth",),
        ),
    )
}

# The paper's column orders (PSNR and SSIM first in Table 3, as the field reports them).
SYNTHETIC_COLUMNS = ("psnr", "ssim", "lpips", "dists", "musiq", "niqe", "deg", "lmd", "fid")
REAL_WORLD_COLUMNS = ("clipiqa", "maniqa", "musiq", "niqe", "fid")
# One order that keeps both: Table 2's no-reference columns come before MUSIQ, as there.
PAPER_ORDER = ("psnr", "ssim", "lpips", "dists", "clipiqa", "maniqa", "musiq", "niqe", "deg", "lmd", "fid")


# The rows of an evaluation: "input" is the low-quality face itself (the baseline row), then
# OSDFace, OSDFace without VRE and the other restorers (``osdface.restorers.specs.RESTORERS``).
INPUT = "input"
EVALUATED_RESTORERS = (INPUT, "osdface", "no_vre", *RESTORERS)


def parse_metrics(text: str) -> tuple[str, ...]:
    """ "psnr,lpips" -> ("psnr", "lpips"); "all" -> every metric; "synthetic" / "real" -> a table's
    columns. Raises ``ValueError`` naming an unknown metric and the known ones."""
    names: list[str] = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        if part == "all":
            names += list(METRICS)
        elif part == "synthetic":
            names += list(SYNTHETIC_COLUMNS)
        elif part in ("real", "real-world"):
            names += list(REAL_WORLD_COLUMNS)
        elif part in METRICS:
            names.append(part)
        else:
            known = ", ".join([*METRICS, "all", "synthetic", "real"])
            raise ValueError(f"unknown metric {part!r}; known: {known}")
    if not names:
        raise ValueError(f"no metric named in {text!r}")
    return tuple(dict.fromkeys(names))


def in_paper_order(names: tuple[str, ...] | list[str]) -> list[str]:
    """The names in the paper's column order (Table 3's, with Table 2's CLIP-IQA and MANIQA
    before MUSIQ as there: ``PAPER_ORDER``), then any others in the given order."""
    ordered = [name for name in PAPER_ORDER if name in names]
    return ordered + [name for name in names if name not in ordered]
