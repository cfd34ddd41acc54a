"""``hpaseg ablation --level image|cell --backbones B [B ...] --losses bce focal --augments
standard cutmix --dataset DATASET --data DIR [--masks MASKS] --out RESULTS [--epochs 20] ...``:
the classifier study's grid (:mod:`hpaseg.pipeline.ablation`; what it writes is described there)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ..classification import AUGMENTS, BACKBONES, LEVELS, LOSSES, check_config
from ..errors import InputError
from ..io import check_output_path
from ..pipeline.ablation import STUDY_BACKBONES, grid, run_ablation
from .base import ArgumentParser, cli_entry, configure_output
from .classify import add_budget_options, add_data_options, config_from_args

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg ablation``."""
    parser = ArgumentParser(
        prog="hpaseg ablation",
        description="Run the classifier study's grid (backbones x losses x augmentations) with one shared budget and seed.",
    )
    g = parser.add_argument_group("grid")
    g.add_argument("--level", required=True, help=f"{' or '.join(LEVELS)}")
    g.add_argument(
        "--backbones",
        nargs="+",
        default=list(STUDY_BACKBONES),
        help=f"any of {', '.join(BACKBONES)} (default: the study's {' '.join(STUDY_BACKBONES)})",
    )
    g.add_argument("--losses", nargs="+", default=list(LOSSES), help=f"any of {', '.join(LOSSES)} (default: both)")
    g.add_argument(
        "--augments", nargs="+", default=list(AUGMENTS), help=f"any of {', '.join(AUGMENTS)} (default: both)"
    )
    g.add_argument("--channels", default=None, help="green or rgby (default: green at image level, rgby at cell level)")
    g.add_argument(
        "--pretrained", default=None, help="'imagenet' or a timm checkpoint file (only with a single backbone)"
    )
    add_data_options(
        parser, out_help="results folder: one run folder per configuration, results.csv, results.md, plots"
    )
    add_budget_options(parser, "shared budget")
    return parser


@cli_entry("ablation", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg ablation``."""
    args = build_parser().parse_args(argv)
    configure_output()
    if args.pretrained not in (None, "imagenet") and len(set(args.backbones)) > 1:
        raise InputError(
            f"--pretrained {args.pretrained}: one checkpoint file cannot serve {len(set(args.backbones))} backbones; use 'imagenet' or one backbone"
        )
    base = config_from_args(
        args, backbone=args.backbones[0], loss=args.losses[0], augment=args.augments[0], out=args.out
    )
    configs = grid(base, args.backbones, args.losses, args.augments, args.out)
    check_config(configs[0][1])  # folders and files, before anything is written
    check_output_path(args.out, option="--out", folder=True)
    results = run_ablation(configs, args.out, progress=not args.quiet)
    width = max(len(n) for n, _ in results)
    for name, ev in results:
        f = lambda v: "  n/a " if v is None else f"{v:.4f}"  # noqa: E731
        print(
            f"{name:<{width}}  macro-F1 {f(ev['macro_f1'])}  tuned {f(ev['macro_f1_tuned'])}  macro AP {f(ev['macro_ap'])}  {ev['train_seconds']:.0f} s"
        )
    print(
        f"wrote {Path(args.out) / 'results.csv'}, results.md, per_class_ap.csv, confusion.csv, metrics.png, per_class_ap.png"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
