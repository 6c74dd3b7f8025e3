"""``osdface doctor`` (also ``python -m osdface.commands.doctor``): the first thing to run on a new
machine or new weights.

It resolves the weight sources (repo or folder; requested and resolved revision, the full
commit SHA for the Hub), loads them through ``OSDFacePipeline.from_pretrained``, prints each
file's size and SHA-256, what the VRE used and ignored, what the LoRA held and applied, the
device and dtypes, then restores a bundled aligned example and checks the result:

* distinct tokens: at least ``MIN_DISTINCT_TOKENS`` of 77 (broken VRE weights collapse to a few);
* output not constant: pixel standard deviation above ``MIN_OUTPUT_STD``;
* sharper than the input: variance of the Laplacian of the luminance, output over input, above 1;
* ArcFace cosine similarity to the input, when facexlib's ArcFace weights are available
  (informative: reported, not required);
* one OpenCV distribution, whose cv2 needs no libGL (``osdface.runtime.opencv``).

Exit status 0 when every check passed, 1 when a check failed, 2 when the weights could not be
loaded; each failure says the reason and the fix. A device that cannot be used (``--device cuda``
without a working NVIDIA driver, ``mps`` off a Mac, a GPU index the machine lacks) and an
``--image`` that cannot be read are failed checks: the rest runs on the CPU / without the image.
``--json`` prints the same as one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# torch and the models load when the command runs (osdface.lazy): `osdface --help` imports this
# module to build its parser, and stays instant.
import osdface
from osdface import evaluation, lazy
from osdface.commands.model_options import add_model_arguments
from osdface.errors import ImageError
from osdface.images.reading import load_image
from osdface.runtime.cuda_diagnosis import diagnose_cuda, find_nvidia_driver
from osdface.runtime.devices import (
    DEVICE_CHOICES,
    DEVICE_TYPES,
    dtype_name,
    dtype_reason,
    resolve_device,
    resolve_dtype,
)
from osdface.runtime.opencv import inspect_opencv
from osdface.weights import hub

torch = lazy.module("torch")

MIN_DISTINCT_TOKENS = 16
MIN_OUTPUT_STD = 0.02
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "astronaut_aligned_classic.jpg"


@dataclass(frozen=True)
class DoctorSettings:
    weights: str | None = None
    base_model: str | None = None
    revision: str | None = None
    base_revision: str | None = None
    device: str | None = None
    dtype: str | None = None  # default: see osdface.runtime.devices.resolve_dtype
    image: Path | None = None
    as_json: bool = False


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass
class DoctorReport:
    sources: dict = field(default_factory=dict)
    files: list[dict] = field(default_factory=list)
    vre: dict = field(default_factory=dict)
    lora: dict = field(default_factory=dict)
    runtime: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    exit_code: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def file_info(path: Path, name: str) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return {"file": name, "path": str(path), "size": path.stat().st_size, "sha256": digest.hexdigest()}


def describe_source(source: str, revision: str | None, path: Path | None) -> dict:
    is_folder = Path(source).expanduser().is_dir()
    return {
        "source": source,
        "kind": "folder" if is_folder else "hub",
        "requested_revision": revision or ("-" if is_folder else "main (default)"),
        "resolved_revision": None if is_folder or path is None else hub.resolved_revision(path),
    }


def _weights_section(report: DoctorReport, pipe) -> None:
    load = pipe.load_report
    sources = load["sources"]
    report.sources = {
        "weights": describe_source(sources.weights, sources.revision, load["files"]["lora"]),
        "base_model": describe_source(
            sources.base_model, sources.base_revision, _base_file(sources, "unet/config.json")
        ),
    }
    for role, path in load["files"].items():
        if path is not None:
            report.files.append({"role": role, **file_info(Path(path), Path(path).name)})
    for names in (hub.BASE_FILES["vae"], hub.BASE_FILES["unet"], hub.BASE_FILES["scheduler"]):
        for name in names:
            report.files.append({"role": "base", **file_info(_base_file(sources, name), name)})
    vre = load["vre"]
    report.vre = asdict(vre) if vre is not None else {}
    report.lora = load["lora"].to_dict()
    lora = load["lora"]
    report.checks.append(
        Check(
            "LoRA applied",
            lora.pairs_applied == lora.pairs_in_file > 0,
            f"{lora.pairs_applied}/{lora.pairs_in_file} pairs",
            "the LoRA file is incomplete; download it again",
        )
    )


def _base_file(sources, name: str) -> Path:
    return hub.fetch(sources.base_model, name, sources.base_revision, env_var=hub.ENV_BASE_MODEL)


def _sharpness(image: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the luminance; image (H, W, 3) float in [0, 1]."""
    luma = image @ np.array([0.299, 0.587, 0.114])
    lap = luma[1:-1, :-2] + luma[1:-1, 2:] + luma[:-2, 1:-1] + luma[2:, 1:-1] - 4 * luma[1:-1, 1:-1]
    return float(lap.var())


def _read_face(report: DoctorReport, image_path: Path) -> np.ndarray | None:
    """The example face as (512, 512, 3) RGB uint8, or None with a failed check saying why."""
    fix = "pass --image PATH (a 512x512 aligned face: PNG or JPEG)"
    if not image_path.is_file():
        report.checks.append(Check("example image", False, f"{image_path} not found", fix))
        return None
    try:
        rgb = load_image(image_path)
    except ImageError as exc:  # not an image, damaged, too large
        report.checks.append(
            Check("example image", False, f"cannot read it: {exc.message(with_fix=False)}", fix)
        )
        return None
    return np.asarray(Image.fromarray(rgb).resize((512, 512), Image.BICUBIC))


def _restore_section(report: DoctorReport, pipe, image_path: Path, face: np.ndarray) -> None:
    report.runtime["example"] = str(image_path)
    lq = torch.from_numpy(face.copy()).permute(2, 0, 1)[None].float().div(255).mul(2).sub(1)
    distinct = int((pipe.embedder(lq.to(pipe.embedder.device)).token_indices >= 0).sum())
    output = pipe(face, generator=torch.Generator().manual_seed(0), output_type="np")
    restored = output.images[0]  # (H, W, 3) float32 in [0, 1]
    report.timings.update({k: round(v, 4) for k, v in output.timings.items()})
    source = face.astype(np.float32) / 255.0
    ratio = _sharpness(restored) / max(_sharpness(source), 1e-12)
    std = float(restored.std())
    report.checks += [
        Check(
            "distinct tokens",
            distinct >= MIN_DISTINCT_TOKENS,
            f"{distinct} of 77 (need >= {MIN_DISTINCT_TOKENS})",
            "the VRE checkpoint or codebook is wrong; re-download associate_2.ckpt",
        ),
        Check(
            "output not constant",
            std > MIN_OUTPUT_STD,
            f"pixel std {std:.4f} (need > {MIN_OUTPUT_STD})",
            "the UNet or VAE weights are wrong; re-download the base model",
        ),
        Check(
            "sharper than input",
            ratio > 1.0,
            f"Laplacian variance output/input = {ratio:.3f} (need > 1)",
            "the LoRA or base model is not the OSDFace one; check --weights / --base-model",
        ),
    ]
    report.checks.append(_identity_check(face, (restored * 255).round().astype(np.uint8)))


def _identity_check(face: np.ndarray, restored: np.ndarray) -> Check:
    try:
        embedder = evaluation.ArcFaceEmbedder.from_pretrained()
    except evaluation.IdentityUnavailableError as exc:
        return Check("ArcFace similarity", True, f"skipped: {str(exc).split('. ')[0]}")
    return Check("ArcFace similarity", True, f"{embedder.similarity(face, restored):.3f} (informative)")


def _device_section(report: DoctorReport, asked: str | None):
    """The device to restore on: the one asked for when it can be used, else the CPU with a
    failed check (the reason and the fix). Never raises: the doctor exists for broken set-ups."""
    if not asked:
        return _cuda_section(report, None)
    try:
        kind = torch.device(asked).type
    except RuntimeError as exc:  # torch's "Expected one of cpu, cuda, ... device type"
        return _unusable(report, f"--device {asked!r} is not a device name ({exc})")
    if kind not in DEVICE_TYPES:
        return _unusable(report, f"--device {asked!r}: OSDFace runs on {', '.join(DEVICE_TYPES)}, not {kind}")
    if kind == "mps" and not torch.backends.mps.is_available():
        why = "no Apple GPU is available" if torch.backends.mps.is_built() else "this torch build has no MPS"
        return _unusable(report, f"--device {asked}: {why} (mps needs an Apple GPU and macOS)")
    return _cuda_section(report, asked) if kind == "cuda" else torch.device(asked)


def _unusable(report: DoctorReport, reason: str):
    report.checks.append(Check("device", False, reason, f"use --device {DEVICE_CHOICES}, or leave it out"))
    return torch.device("cpu")


def _cuda_section(report: DoctorReport, asked: str | None):
    """Check that a GPU the machine has can be used; returns the device to restore on (the CPU
    when CUDA cannot start or ``--device cuda:N`` names no GPU, with the reason and the fix in a
    failed check)."""
    problem = diagnose_cuda()
    if problem is not None:
        report.runtime["cuda_problem"] = problem.to_dict()
        report.checks.append(Check("CUDA", False, problem.reason, problem.fix))
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if asked:  # no NVIDIA GPU or driver at all: nothing for diagnose_cuda to diagnose
            detail = (
                f"--device {asked}, but this machine has no NVIDIA GPU (torch.cuda.is_available() is False)"
            )
            fix = "use --device cpu (or leave --device out), or run on a machine with an NVIDIA GPU and its driver"
            report.checks.append(Check("CUDA", False, detail, fix))
            return torch.device("cpu")
        device = resolve_device(None)
        where = "an Apple GPU (mps)" if device.type == "mps" else "the CPU"
        report.checks.append(Check("CUDA", True, f"no NVIDIA GPU on this machine: restoring runs on {where}"))
        return device
    device = resolve_device(asked)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        indices = ", ".join(f"cuda:{i}" for i in range(count))
        report.checks.append(
            Check("CUDA", False, f"--device {asked}: this machine has {count} GPU(s)", f"use {indices}")
        )
        return torch.device("cpu")
    driver = find_nvidia_driver()
    report.checks.append(
        Check(
            "CUDA",
            True,
            f"{torch.cuda.get_device_name(device)}; torch {torch.__version__} (CUDA {torch.version.cuda} build); "
            f"NVIDIA driver {driver.version or '?'} (runs CUDA up to {driver.cuda or '?'})",
        )
    )
    return device


def opencv_check() -> Check:
    """One OpenCV, the headless one: two write the same cv2/, and a GUI build's cv2 needs libGL."""
    install = inspect_opencv()
    problem = install.problem()
    return Check("OpenCV", problem is None, problem or install.summary(), install.fix())


def run_doctor(settings: DoctorSettings) -> DoctorReport:
    report = DoctorReport()
    report.checks.append(opencv_check())
    device = _device_section(report, settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    # Said before loading: which dtype would run, and why, matters most when the load fails.
    report.runtime.update(
        device=str(device),
        dtype=dtype_name(dtype),
        dtype_reason=dtype_reason(settings.dtype, device),
        torch=torch.__version__,
    )
    started = time.perf_counter()
    try:
        pipe = osdface.OSDFacePipeline.from_pretrained(
            settings.weights, settings.base_model, settings.revision, settings.base_revision
        )
        report.timings["load"] = round(time.perf_counter() - started, 3)
        _weights_section(report, pipe)
    except hub.WeightsUnavailableError as exc:
        report.checks.append(
            Check("weights load", False, exc.message(with_fix=False), exc.fix or "see the message above")
        )
        report.exit_code = 2
        return report
    pipe = pipe.to(device, dtype)
    report.runtime.update(
        unet_dtype=str(pipe.unet.dtype), vae_dtype=str(pipe.vae.dtype), vre_dtype=str(pipe.embedder.dtype)
    )
    image = Path(settings.image or EXAMPLE)
    face = _read_face(report, image)
    if face is not None:
        _restore_section(report, pipe, image, face)
    report.exit_code = 0 if all(check.ok for check in report.checks) else 1
    return report


def format_text(report: DoctorReport) -> str:
    lines = ["OSDFace doctor"]
    for role, source in report.sources.items():
        lines.append(
            f"  {role}: {source['source']} ({source['kind']}), revision requested {source['requested_revision']}, "
            f"resolved {source['resolved_revision'] or '-'}"
        )
    for info in report.files:
        lines.append(f"  file {info['file']}: {info['size']:,} bytes, sha256 {info['sha256']}")
    if report.vre:
        lines.append(
            f"  VRE ({report.vre['source_format']}): {report.vre['used']} tensors used, "
            f"ignored {report.vre['ignored'] or 'nothing'}; other entries {report.vre['ignored_entries'] or 'none'}"
        )
    if report.lora:
        lora = report.lora
        lines.append(
            f"  LoRA: {lora['pairs_applied']}/{lora['pairs_in_file']} pairs applied; layouts {lora['layouts']}; "
            f"rank {lora['ranks']}; scale {lora['scales']} (alpha from {lora['alpha_source']}); "
            f"targets {lora['module_kinds']}"
        )
    if report.runtime:
        lines.append("  runtime: " + ", ".join(f"{k} {v}" for k, v in report.runtime.items()))
    if report.timings:
        lines.append("  seconds: " + ", ".join(f"{k} {v}" for k, v in report.timings.items()))
    for check in report.checks:
        lines.append(f"  [{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
        if not check.ok:
            lines.append(f"         fix: {check.fix}")
    lines.append(
        f"  result: {'all checks passed' if report.exit_code == 0 else 'FAILED'} (exit {report.exit_code})"
    )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, facexlib=False)
    parser.add_argument("--image", type=Path, help="aligned face to restore (default: the bundled example)")
    parser.add_argument("--json", action="store_true", dest="as_json", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    settings = DoctorSettings(
        **{k: getattr(args, k) for k in DoctorSettings.__dataclass_fields__ if hasattr(args, k)}
    )
    report = run_doctor(settings)
    if settings.as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(format_text(report))
    return report.exit_code


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check weights, device and a test restoration (first thing to run)",
        description=__doc__,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m osdface.commands.doctor", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
