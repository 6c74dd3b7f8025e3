"""``osdface eval-fr``: the paper's face-recognition study on a pair list (LFW or CSV).

    osdface eval-fr lfw/ pairs.txt -o study/                       # OSDFace at 20-40 km
    osdface eval-fr lfw/ pairs.txt -o study/ --without-vre --without-restoration
    osdface eval-fr faces/ pairs.csv -o study/ --aligned --lengths 30000 --degrade one
    accelerate launch -m osdface.cli eval-fr lfw/ pairs.txt -o study/   # one process per GPU

Writes ``metrics.json`` (per condition: ROC AUC, accuracy and F1 at the best threshold, TPR
at FAR 1e-3 and 1e-2, mean sample distance), ``scores.csv`` (every pair's similarity per
condition), ``fr_curves.png`` and ``fr_histograms.png``, and caches embeddings under
``cache/`` so that an interrupted or extended run resumes. See
``osdface.evaluation.work`` for the method.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The study's modules load diffusers, facexlib, scikit-learn and matplotlib only when it runs
# (osdface.lazy): `osdface --help` and the other commands start quickly.
from osdface import evaluation
from osdface.choices import COLOR_FIX_NAMES
from osdface.commands.model_options import ModelOptions, add_model_arguments
from osdface.evaluation.conditions import DEFAULT_LENGTHS, EvalFRConfig
from osdface.restorers.specs import RESTORERS, parse_restorers
from osdface.weights.hub import WeightsUnavailableError


def config_from_namespace(args: argparse.Namespace) -> EvalFRConfig:
    methods = ["turbulent"] if args.without_restoration else []
    methods += ["osdface"]
    if args.without_vre:
        methods.append("no_vre")
    if args.restorers:  # --restorers osdface,gfpgan,codeformer: one condition each
        chosen = parse_restorers(args.restorers, allowed=("osdface", "no_vre", *RESTORERS))
        others = [m for m in methods if m != "osdface"]
        methods = others + [m for m in chosen if m not in others]
    model = ModelOptions.from_namespace(args)
    return EvalFRConfig(
        faces_dir=Path(args.faces_dir),
        pairs_file=Path(args.pairs_file),
        output_dir=Path(args.output),
        lengths=tuple(args.lengths),
        methods=tuple(methods),
        degrade=args.degrade,
        aligned=args.aligned,
        extension=args.extension,
        seed=args.seed,
        max_pairs=args.max_pairs,
        save_images=args.save_images,
        weights=model.weights,
        base_model=model.base_model,
        revision=model.revision,
        base_revision=model.base_revision,
        dtype=model.dtype,
        color_fix=args.color_fix,
        device=model.device,
        facexlib_dir=model.facexlib_dir,
        progress=not args.no_progress,
        codeformer_w=args.codeformer_w,
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval-fr",
        help="face-recognition study: ArcFace verification on turbulent and restored faces",
        description=(
            "The paper's face-recognition study: degrade the faces of a pair list with turbulence,\n"
            "restore them, embed them with ArcFace and write verification metrics (metrics.json,\n"
            "scores.csv) and plots (fr_curves.png, fr_histograms.png). Embeddings are cached\n"
            "under OUTPUT/cache/, so a rerun resumes."
        ),
        epilog=(
            "examples:\n"
            "  osdface eval-fr lfw/ pairs.txt -o study/ --without-vre --without-restoration\n"
            "  osdface eval-fr faces/ pairs.csv -o study/ --aligned --lengths 30000 --degrade one\n"
            "  accelerate launch --multi_gpu --num_processes 8 -m osdface.cli eval-fr lfw/ pairs.txt -o study/"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "faces_dir", help="folder the pair paths are relative to (LFW: lfw/ with one folder per name)"
    )
    parser.add_argument("pairs_file", help="LFW pairs.txt format, or a .csv with path_a,path_b,same")
    parser.add_argument("-o", "--output", required=True, help="output folder (metrics, plots, cache)")
    parser.add_argument(
        "--lengths",
        type=float,
        nargs="+",
        default=list(DEFAULT_LENGTHS),
        metavar="METRES",
        help="turbulence propagation lengths (default: 20000 25000 30000 35000 40000)",
    )
    parser.add_argument(
        "--degrade",
        choices=("one", "both"),
        default="both",
        help="degrade both faces of each pair (default), or only the second (compared with the clean first)",
    )
    parser.add_argument(
        "--without-vre", action="store_true", help="also restore with the null text prompt (ablation)"
    )
    parser.add_argument(
        "--without-restoration", action="store_true", help="also evaluate the turbulent faces unrestored"
    )
    parser.add_argument(
        "--aligned", action="store_true", help="images are already aligned square faces (FFHQ layout)"
    )
    parser.add_argument(
        "--extension", default="jpg", help="image extension of LFW pair entries (default: jpg)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="base seed of the turbulence and the VAE sample (default: 0)"
    )
    parser.add_argument("--max-pairs", type=int, default=None, help="use only the first N pairs")
    parser.add_argument(
        "--save-images", action="store_true", help="also save every face as PNG under images/"
    )
    parser.add_argument("--color-fix", choices=COLOR_FIX_NAMES, default="none", help="colour correction")
    add_model_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    labels = "; ".join(f"{key}: {spec.choice_label}" for key, spec in RESTORERS.items())
    parser.add_argument(
        "--restorers",
        default=None,
        metavar="RESTORERS",
        help=f"restorers, one condition each, e.g. osdface,gfpgan,codeformer (osdface, no_vre; {labels}). "
        "Default: osdface",
    )
    # The flag's name before 0.3, kept for one release.
    parser.add_argument("--methods", dest="restorers", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--codeformer-w", type=float, default=0.5, help="CodeFormer's fidelity weight w (default: 0.5)"
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    try:
        config = config_from_namespace(args)
        result = evaluation.run_eval_fr(config)
    except (ValueError, FileNotFoundError, WeightsUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result is not None:  # the main process reports
        print(evaluation.summary_table(result))
        for path in result.files.values():
            print(f"wrote {path}")
        if result.skipped:
            print(f"{len(result.skipped)} image(s) without a face were left out (see metrics.json)")
    return 0
