"""``osdface evaluate``: the paper's quality tables (Table 3 synthetic, Table 2 real-world).

    osdface evaluate lq/ --hq hq/ -o eval/ --restorers input,osdface,no_vre,gfpgan
    osdface evaluate --hq hq/ --lengths 30000 -o eval/              # turbulence makes the inputs
    osdface evaluate wider/ -o eval/ --metrics real --fid-reference ffhq
    accelerate launch -m osdface.cli evaluate lq/ --hq hq/ -o eval/  # one process per GPU

Writes ``table.md``, ``table.csv``, ``metrics.json``, ``per_image.csv`` and the restored faces
under ``images/``; a rerun resumes (see ``osdface.quality.study``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The evaluation loads torch, pyiqa and the models only when it runs (osdface.lazy).
from osdface import quality
from osdface.choices import COLOR_FIX_NAMES
from osdface.commands.model_options import ModelOptions, add_model_arguments
from osdface.quality.catalog import (
    EVALUATED_RESTORERS,
    INPUT,
    METRICS,
    SYNTHETIC_COLUMNS,
    Needs,
    parse_metrics,
)
from osdface.restorers.specs import RESTORERS, parse_restorers
from osdface.weights.hub import WeightsUnavailableError


def config_from_namespace(args: argparse.Namespace) -> quality.EvaluateConfig:
    model = ModelOptions.from_namespace(args)
    metrics = parse_metrics(args.metrics) if args.metrics else SYNTHETIC_COLUMNS
    if args.hq is None and not args.lengths:  # nothing to compare with: no-reference metrics and FID only
        named = {part.strip().lower() for part in (args.metrics or "").split(",")}
        full_reference = [m for m in metrics if m in METRICS and METRICS[m].needs is Needs.REFERENCE]
        asked = [m for m in full_reference if m in named]  # by name, not through a group like "all"
        if asked:
            raise ValueError(
                f"--metrics {','.join(asked)} compare each result with its high-quality face: give the "
                "high-quality faces (same file names) with --hq, or leave these metrics out"
            )
        metrics = tuple(m for m in metrics if m not in full_reference)
    return quality.EvaluateConfig(
        output_dir=Path(args.output),
        lq_dir=Path(args.lq_dir) if args.lq_dir else None,
        hq_dir=Path(args.hq) if args.hq else None,
        methods=parse_restorers(args.restorers, allowed=EVALUATED_RESTORERS),
        metrics=metrics,
        lengths=tuple(args.lengths or ()),
        fid_reference=args.fid_reference,
        aligned=not args.whole_photos,
        seed=args.seed,
        weights=model.weights,
        base_model=model.base_model,
        revision=model.revision,
        base_revision=model.base_revision,
        dtype=model.dtype,
        device=model.device,
        color_fix=args.color_fix,
        facexlib_dir=model.facexlib_dir,
        metrics_dir=Path(args.metrics_dir) if args.metrics_dir else None,
        codeformer_w=args.codeformer_w,
        progress=not args.no_progress,
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    metric_names = ", ".join(METRICS)
    parser = subparsers.add_parser(
        "evaluate",
        help="quality tables: PSNR, SSIM, LPIPS, DISTS, CLIP-IQA, MANIQA, MUSIQ, NIQE, Deg., LMD, FID per restorer",
        description=(
            "The paper's quality tables: restore a folder of faces with each restorer and score\n"
            "the results (table.md, table.csv, metrics.json, per_image.csv). Full-reference\n"
            "metrics need --hq (high-quality faces with the same file names). A rerun resumes."
        ),
        epilog=(
            "examples:\n"
            "  osdface evaluate lq/ --hq hq/ -o eval/ --restorers input,osdface,no_vre,gfpgan\n"
            "  osdface evaluate --hq hq/ --lengths 30000 -o eval/\n"
            "  osdface evaluate wider/ -o eval/ --metrics real --fid-reference ffhq\n"
            "  accelerate launch -m osdface.cli evaluate lq/ --hq hq/ -o eval/"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "lq_dir", nargs="?", default=None, help="low-quality faces (aligned 512x512 unless --whole-photos)"
    )
    parser.add_argument("--hq", default=None, metavar="FOLDER", help="high-quality faces, same file names")
    parser.add_argument(
        "-o", "--output", required=True, help="output folder (tables, restored faces, scores)"
    )
    parser.add_argument(
        "--restorers",
        default=INPUT + ",osdface",
        help=f"rows of the table, in order: {', '.join(EVALUATED_RESTORERS)} (input: the low-quality faces "
        "themselves). Default: input,osdface",
    )
    parser.add_argument(
        "--metrics",
        default=None,
        help=f"{metric_names}; or synthetic (Table 3's columns, the default), real (Table 2's), all",
    )
    parser.add_argument(
        "--lengths",
        type=float,
        nargs="+",
        default=None,
        metavar="METRES",
        help="degrade the --hq faces with turbulence at these propagation lengths (no lq_dir then)",
    )
    parser.add_argument(
        "--fid-reference",
        default=None,
        help="FID reference: ffhq (clean-fid's FFHQ 512 statistics), a folder, or a .npz with mu and sigma "
        "(default: --hq, else ffhq)",
    )
    parser.add_argument(
        "--whole-photos", action="store_true", help="inputs are photos: the centre face is aligned"
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed of the turbulence and the VAE sample")
    parser.add_argument("--color-fix", choices=COLOR_FIX_NAMES, default="adain", help="colour correction")
    parser.add_argument(
        "--metrics-dir",
        default=None,
        help="folder holding the metrics' weight files (else fetched and cached)",
    )
    add_model_arguments(parser)
    parser.add_argument("--codeformer-w", type=float, default=0.5, help="CodeFormer's fidelity weight w")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    labels = "; ".join(f"{key}: {spec.choice_label}" for key, spec in RESTORERS.items())
    parser.epilog += f"\n\nrestorers: osdface, no_vre (OSDFace without VRE), input; {labels}"
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    try:
        config = config_from_namespace(args)
        result = quality.run_evaluate(config)
    except (ValueError, FileNotFoundError, WeightsUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result is not None:  # the main process reports
        print(quality.markdown_table(result), end="")
        for name in ("table.md", "table.csv", "metrics.json", "per_image.csv"):
            print(f"wrote {config.output_dir / name}")
    return 0
