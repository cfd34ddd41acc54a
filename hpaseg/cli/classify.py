"""``hpaseg classify --level image|cell --backbone B --loss bce|focal --augment standard|cutmix
--dataset DATASET --data DIR --out RUN [--masks MASKS] [--channels green|rgby] ...``: train a
multi-label classifier of whole images or single cells (:func:`hpaseg.classification.train_classifier`;
what it writes is described there)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..classification import (
    BACKBONES,
    DEFAULT_CHANNELS,
    ClassifyConfig,
    train_classifier,
)
from ..classification.config import EVAL_FILE, FINAL
from ..io import check_output_path
from ..runtime.config import apply_opts
from ..runtime.hardware import default_device, default_workers
from .base import ArgumentParser, add_quiet, cli_entry, configure_output

__all__ = ["add_data_options", "add_budget_options", "config_from_args", "build_parser", "main"]


def add_data_options(parser: argparse.ArgumentParser, *, out_help: str) -> None:
    """``--dataset --data --masks --out``, shared by ``hpaseg classify`` and ``hpaseg ablation``."""
    g = parser.add_argument_group("data and output")
    g.add_argument("--dataset", required=True, help="folder with train.json/val.json from hpaseg propagate")
    g.add_argument("--data", required=True, help="folder of the training images")
    g.add_argument("--masks", default=None, help="folder of {ID}_cellmask.png (needed for --level cell)")
    g.add_argument("--out", required=True, help=out_help)


def add_budget_options(parser: argparse.ArgumentParser, title: str) -> None:
    """Input sizes, epochs, batch, learning rate, seed and hardware, shared by both commands."""
    d = ClassifyConfig()
    g = parser.add_argument_group(title)
    g.add_argument(
        "--image-size", type=int, default=d.image_size, help=f"image level: input side in px (default {d.image_size})"
    )
    g.add_argument(
        "--crop-size", type=int, default=d.crop_size, help=f"cell level: crop side in px (default {d.crop_size})"
    )
    g.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default {d.epochs})")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help=f"samples per step (default {d.batch_size})")
    g.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr})")
    g.add_argument("--seed", type=int, default=d.seed, help=f"seed (default {d.seed})")
    g = parser.add_argument_group("hardware")
    g.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    g.add_argument("--workers", type=int, default=None, help="data-loader processes (default: CPUs - 1, at most 8)")
    parser.add_argument(
        "--opts",
        nargs="+",
        default=[],
        metavar="KEY VALUE",
        help="override config keys, e.g. --opts schedule cosine cutmix_p 0.3",
    )
    add_quiet(parser)


def config_from_args(args: argparse.Namespace, **overrides) -> ClassifyConfig:
    """A :class:`~hpaseg.classification.ClassifyConfig` from parsed options of ``hpaseg classify``/``hpaseg ablation``."""
    level = overrides.get("level", args.level)
    cfg = ClassifyConfig(
        level=level,
        backbone=overrides.get("backbone", getattr(args, "backbone", None)),
        loss=overrides.get("loss", getattr(args, "loss", None)),
        augment=overrides.get("augment", getattr(args, "augment", None)),
        channels=args.channels or DEFAULT_CHANNELS.get(level, "rgby"),
        dataset=str(args.dataset),
        data=str(args.data),
        masks=None if args.masks is None else str(args.masks),
        out=str(overrides.get("out", args.out)),
        image_size=args.image_size,
        crop_size=args.crop_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        pretrained=args.pretrained,
        device=args.device or default_device(),
        workers=default_workers() if args.workers is None else args.workers,
        seed=args.seed,
    )
    return apply_opts(cfg, args.opts)


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg classify``."""
    d = ClassifyConfig()
    parser = ArgumentParser(
        prog="hpaseg classify",
        description="Train a multi-label classifier of whole images or single cells (the companion study's pipeline).",
    )
    g = parser.add_argument_group("model")
    g.add_argument("--level", required=True, help="image (whole images) or cell (one crop per cell)")
    g.add_argument("--backbone", required=True, help=f"one of {', '.join(BACKBONES)}")
    g.add_argument("--loss", default=d.loss, help=f"bce or focal (default {d.loss})")
    g.add_argument("--augment", default=d.augment, help=f"standard or cutmix (default {d.augment})")
    g.add_argument(
        "--channels",
        default=None,
        help="green (green replicated to three) or rgby (default: green at image level, rgby at cell level)",
    )
    g.add_argument(
        "--pretrained",
        default=None,
        help="'imagenet' (timm download) or a timm RGB checkpoint file; stems adapted to RGBY (default: random init)",
    )
    add_data_options(parser, out_help="run folder (config.yaml, checkpoints, metrics, eval.json)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    add_budget_options(parser, "schedule")
    return parser


@cli_entry("classify", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg classify``."""
    args = build_parser().parse_args(argv)
    configure_output()
    cfg = config_from_args(args)
    check_output_path(cfg.out, option="--out", folder=True)
    result = train_classifier(cfg, resume=args.resume, progress=not args.quiet)
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    print(
        f"validation ({result['n_val']} {cfg.level}{'' if result['n_val'] == 1 else 's'}, {len(result['classes_scored'])} classes with positives): macro-F1@0.5 {fmt(result['macro_f1'])}, macro-F1 tuned {fmt(result['macro_f1_tuned'])}, macro AP {fmt(result['macro_ap'])}"
    )
    print(f"wrote {Path(cfg.out) / (FINAL + '.pth')} and {Path(cfg.out) / EVAL_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
