"""``hpaseg classify --level image|cell --backbone B --loss bce|focal --augment standard|cutmix
--dataset DATASET --data DIR --out RUN [--masks MASKS] [--channels green|rgby] ...``: train a
multi-label classifier of whole images or single cells (:func:`hpaseg.classification.train_classifier`;
what it writes is described there).

``--cache-only [--shard I/N]`` with the same options only fills the cache the run reads
(:func:`hpaseg.classification.cache_inputs`), for one task of a job array; the training
job then finds every image cached."""

from __future__ import annotations

import argparse
import sys
from argparse import BooleanOptionalAction
from collections.abc import Sequence
from pathlib import Path

from ..classification import (
    BACKBONES,
    CELL_PRESETS,
    DEFAULT_CHANNELS,
    DESCRIPTORS,
    ClassifyConfig,
    cache_inputs,
    cell_preset,
    train_classifier,
)
from ..classification.config import EVAL_FILE, FINAL
from ..errors import InputError
from ..io import check_output_path
from ..runtime.config import apply_opts
from ..runtime.hardware import default_device, default_workers
from .base import ArgumentParser, add_quiet, add_shard, cli_entry, configure_output, parse_shard

__all__ = ["add_data_options", "add_budget_options", "config_from_args", "build_parser", "main"]


def add_data_options(parser: argparse.ArgumentParser, *, out_help: str, out_required: bool = True) -> None:
    """``--dataset --data --masks --out``, shared by ``hpaseg classify`` and ``hpaseg ablation``."""
    g = parser.add_argument_group("data and output")
    g.add_argument("--dataset", required=True, help="folder with train.json/val.json from hpaseg propagate")
    g.add_argument("--data", required=True, help="folder of the training images")
    g.add_argument("--masks", default=None, help="folder of {ID}_cellmask.png (needed for --level cell)")
    g.add_argument("--out", required=out_required, help=out_help)


def add_budget_options(parser: argparse.ArgumentParser, title: str) -> None:
    """Input sizes, epochs, batch, learning rate, seed and hardware, shared by both commands."""
    d = ClassifyConfig()
    g = parser.add_argument_group(title)
    g.add_argument(
        "--image-size", type=int, default=d.image_size, help=f"image level: input side in px (default {d.image_size})"
    )
    g.add_argument("--crop-size", type=int, default=None, help=f"cell level: crop side in px (default {d.crop_size})")
    cpu = CELL_PRESETS["cpu"]
    g.add_argument("--epochs", type=int, default=None, help=f"epochs (default {d.epochs}; descriptors {cpu['epochs']})")
    g.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"samples per step (default {d.batch_size}; descriptors: {cpu['batch_size']} images; a CNN with mil/refined: whole images up to this many cells)",
    )
    g.add_argument("--lr", type=float, default=None, help=f"learning rate (default {d.lr}; descriptors {cpu['lr']})")
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


def _preset(level: str, backbone: str | None, device: str) -> dict:
    """Defaults of a run: at the cell level without a backbone, the preset for ``device``
    (:data:`~hpaseg.classification.CELL_PRESETS`); the descriptors backbone, the CPU preset;
    otherwise the companion study's defaults (:class:`~hpaseg.classification.ClassifyConfig`)."""
    if level == "cell" and backbone is None:
        return cell_preset(device)
    if backbone == DESCRIPTORS:
        return dict(CELL_PRESETS["cpu"])
    return {"backbone": backbone or ClassifyConfig.backbone}


def config_from_args(args: argparse.Namespace, **overrides) -> ClassifyConfig:
    """A :class:`~hpaseg.classification.ClassifyConfig` from parsed options of ``hpaseg classify``/``hpaseg ablation``.

    Priority: ``overrides``, then the options given, then :func:`_preset`, then the config's defaults."""
    level = overrides.get("level", args.level)
    device = args.device or default_device()
    preset = _preset(level, overrides.get("backbone", getattr(args, "backbone", None)), device)

    def pick(name: str):
        given = overrides.get(name, getattr(args, name, None))
        return given if given is not None else preset.get(name, getattr(ClassifyConfig, name))

    cfg = ClassifyConfig(
        level=level,
        backbone=pick("backbone"),
        loss=overrides.get("loss", getattr(args, "loss", None)),
        augment=overrides.get("augment", getattr(args, "augment", None)),
        channels=args.channels or DEFAULT_CHANNELS.get(level, "rgby"),
        dataset=str(args.dataset),
        data=str(args.data),
        masks=None if args.masks is None else str(args.masks),
        out=str(overrides.get("out", args.out)),
        image_size=args.image_size,
        crop_size=pick("crop_size"),
        epochs=pick("epochs"),
        batch_size=pick("batch_size"),
        lr=pick("lr"),
        weight_decay=pick("weight_decay"),
        supervision=pick("supervision"),
        refine_rounds=pick("refine_rounds"),
        keep_fraction=pick("keep_fraction"),
        pooling=pick("pooling"),
        image_epochs=pick("image_epochs"),
        image_mix=pick("image_mix"),
        refit=pick("refit"),
        pretrained=pick("pretrained"),
        device=device,
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
    g.add_argument("--level", required=True, help="image (whole images) or cell (each cell)")
    g.add_argument(
        "--backbone",
        default=None,
        help=f"{DESCRIPTORS} (cell level: per-cell descriptors + a small network; the CPU default) or one of "
        f"{', '.join(BACKBONES)} (default: image level {ClassifyConfig.backbone}; cell level by device: "
        f"cpu {CELL_PRESETS['cpu']['backbone']}, cuda {CELL_PRESETS['gpu']['backbone']})",
    )
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
    g = parser.add_argument_group("weak supervision (cell level)")
    g.add_argument(
        "--supervision",
        default=None,
        help="propagated (every cell trained on its image's labels), mil (multiple-instance loss) or "
        "refined (propagated, then rounds of pseudo-label refinement); mil and refined train descriptors and CNNs "
        "alike (rounds, image head, refit) (default: refined at the cell level "
        "without --backbone or with descriptors; else propagated)",
    )
    g.add_argument(
        "--refine-rounds", type=int, default=None, help=f"refinement rounds after the first (default {d.refine_rounds})"
    )
    g.add_argument(
        "--keep-fraction",
        type=float,
        default=None,
        help=f"a cell keeps an image label at >= this fraction of the image's best cell (default {d.keep_fraction})",
    )
    g.add_argument("--pooling", default=None, help=f"mil: lse, max or mean (default {d.pooling})")
    g.add_argument(
        "--image-epochs",
        type=int,
        default=None,
        help=f"descriptors, or a CNN with mil/refined: epochs of the image head trained on the image labels from the cells' descriptors or pooled CNN features, 0 = none (default {d.image_epochs})",
    )
    g.add_argument(
        "--image-mix",
        type=float,
        default=None,
        help="image head: chance that a training sample joins the cells of 1-3 other images, "
        f"labelled with the union of their labels; 0 = never (default {d.image_mix})",
    )
    g.add_argument(
        "--refit",
        action=BooleanOptionalAction,
        default=None,
        help="descriptors, or a CNN with mil/refined: after validating, train the final model again on train + val (default: on)",
    )
    add_data_options(
        parser,
        out_help="run folder (config.yaml, checkpoints, metrics, eval.json); not used by --cache-only",
        out_required=False,
    )
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    g = parser.add_argument_group("job arrays")
    g.add_argument(
        "--cache-only",
        action="store_true",
        help="only decode and cache what the run trains on (descriptors, cell crops or images, under --dataset), "
        "skipping images cached before; with --shard, for one task of a job array (slurm/cache-array.sbatch)",
    )
    add_shard(g)
    add_budget_options(parser, "schedule")
    return parser


@cli_entry("classify", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg classify``."""
    args = build_parser().parse_args(argv)
    configure_output()
    if args.shard is not None and not args.cache_only:
        raise InputError(
            "--shard belongs to --cache-only: training is one job, its inputs can be cached by the tasks of an array first"
        )
    if args.cache_only:
        shard = parse_shard(args.shard) if args.shard is not None else None
        summary = cache_inputs(config_from_args(args, out=args.out or ""), shard=shard, progress=not args.quiet)
        print(summary.line())
        return 0
    if args.out is None:
        raise InputError("the following arguments are required: --out (see 'hpaseg classify --help')")
    cfg = config_from_args(args)
    check_output_path(cfg.out, option="--out", folder=True)
    result = train_classifier(cfg, resume=args.resume, progress=not args.quiet)
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    print(
        f"validation ({result['n_val']} {cfg.level}{'' if result['n_val'] == 1 else 's'}, {len(result['classes_scored'])} classes with positives): macro-F1@0.5 {fmt(result['macro_f1'])}, macro-F1 tuned {fmt(result['macro_f1_tuned'])}, macro AP {fmt(result['macro_ap'])}"
    )
    if result.get("image_macro_ap") is not None:
        refit = (
            f"; final model trained on {result['final_model_trained_on']}" if "final_model_trained_on" in result else ""
        )
        print(
            f"validation images ({result['n_val_images']}): macro AP of the image probabilities (pooled from their cells, mixed with the image head's) {fmt(result['image_macro_ap'])}; {result['rounds']} round(s), {result['train_seconds']:.0f} s of training{refit}"
        )
    print(f"wrote {Path(cfg.out) / (FINAL + '.pth')} and {Path(cfg.out) / EVAL_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
