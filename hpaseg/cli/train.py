"""``hpaseg train``: Mask R-CNN on propagated cell labels, torchvision engine
(:func:`hpaseg.detection.train_torchvision`) or detectron2 engine
(:func:`hpaseg.detection.detectron2.train_detectron2`).

Runs on the CPU (smoke runs), one GPU, or many GPUs and nodes: start one process per
GPU with ``torchrun`` or ``srun`` (``slurm/run-model.sbatch``).

``--cache-only [--shard I/N]`` only decodes the training images into the cache at
``--image-size`` that training reads (:func:`hpaseg.labels.cache_dataset`), for one task
of a job array (``slurm/cache-array.sbatch``); the training job then decodes nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..detection import BACKBONES, REFERENCE_BATCH, TrainConfig, train_torchvision
from ..detection.detectron2 import Detectron2TrainConfig, train_detectron2
from ..errors import InputError
from ..io import check_output_path
from ..labels import cache_dataset
from ..runtime.config import apply_opts
from ..runtime.hardware import default_device, default_workers
from .base import ArgumentParser, add_quiet, add_shard, cli_entry, configure_output, parse_shard

__all__ = ["ENGINES", "build_parser", "main"]

#: Training engines.
ENGINES: tuple[str, ...] = ("torchvision", "detectron2")


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg train``."""
    d = TrainConfig()
    parser = ArgumentParser(
        prog="hpaseg train",
        description="Train Mask R-CNN on propagated cell labels (torchvision or detectron2 engine).",
    )
    g = parser.add_argument_group("model")
    g.add_argument("--engine", default="torchvision", help="torchvision (default) or detectron2")
    g.add_argument(
        "--backbone",
        default=d.backbone,
        help=f"torchvision engine: one of {', '.join(BACKBONES)} (default {d.backbone})",
    )
    g.add_argument(
        "--config",
        help="detectron2 engine: a YAML of detectron_configs/ (a path, or a shipped name such as mask_rcnn_R_101_FPN_hpa.yaml)",
    )
    g.add_argument(
        "--pretrained",
        default=None,
        help="torchvision engine: 'imagenet' (download) or a torchvision RGB classification checkpoint to adapt to RGBY",
    )
    g.add_argument(
        "--teacher",
        default=None,
        help="a cell classifier run of 'hpaseg classify --level cell' (its cell_probabilities.csv) or such a CSV: "
        "the label head learns its per-cell probabilities beside the dataset's labels (distillation)",
    )
    g.add_argument(
        "--distill-weight",
        type=float,
        default=None,
        help=f"weight d of the teacher's probabilities in the label targets, (1 - d) hard + d soft "
        f"(default {d.distill_weight})",
    )
    g = parser.add_argument_group("data and output")
    g.add_argument("--dataset", required=True, help="folder with train.json/val.json from hpaseg propagate")
    g.add_argument("--data", required=True, help="folder of the training images")
    g.add_argument("--out", help="run folder (checkpoints, logs, config.yaml); not used by --cache-only")
    g.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    g = parser.add_argument_group("job arrays")
    g.add_argument(
        "--cache-only",
        action="store_true",
        help="only decode the images and cache them at --image-size under --dataset (what training reads), skipping "
        "images cached before; with --shard, for one task of a job array (slurm/cache-array.sbatch)",
    )
    add_shard(g)
    g = parser.add_argument_group("schedule")
    g.add_argument(
        "--image-size", type=int, default=None, help=f"working size, longer side in px (default {d.image_size})"
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"images per process per iteration (default {d.batch_size})",
    )
    g.add_argument("--max-iter", type=int, default=None, help=f"iterations (default {d.max_iter})")
    g.add_argument(
        "--lr",
        dest="base_lr",
        type=float,
        default=None,
        help=f"learning rate for {REFERENCE_BATCH} images per iteration, scaled linearly (default {d.base_lr})",
    )
    g.add_argument(
        "--checkpoint-period",
        type=int,
        default=None,
        help=f"iterations between checkpoints (default {d.checkpoint_period})",
    )
    g.add_argument(
        "--eval-period",
        type=int,
        default=None,
        help=f"iterations between validation mAPs, 0 = end only (default {d.eval_period})",
    )
    g = parser.add_argument_group("hardware")
    g.add_argument("--device", default=default_device(), help="cuda or cpu (default: cuda when available)")
    g.add_argument(
        "--workers", type=int, default=None, help="data-loader processes per GPU (default: CPUs - 1, at most 8)"
    )
    g.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    g.add_argument("--seed", type=int, default=d.seed, help=f"seed (default {d.seed})")
    parser.add_argument(
        "--opts",
        nargs="+",
        default=[],
        metavar="KEY VALUE",
        help="override config keys, e.g. --opts warmup_iters 50 schedule step",
    )
    add_quiet(parser)
    return parser


#: The torchvision engine's schedule options and the detectron2 keys that set the same
#: thing (the detectron2 engine takes its schedule from the YAML and ``--opts``).
SCHEDULE_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "image_size": ("--image-size", ("INPUT.MIN_SIZE_TRAIN", "INPUT.MAX_SIZE_TRAIN")),
    "batch_size": ("--batch-size", ("SOLVER.IMS_PER_BATCH",)),
    "max_iter": ("--max-iter", ("SOLVER.MAX_ITER",)),
    "base_lr": ("--lr", ("SOLVER.BASE_LR",)),
    "checkpoint_period": ("--checkpoint-period", ("SOLVER.CHECKPOINT_PERIOD",)),
    "eval_period": ("--eval-period", ("TEST.EVAL_PERIOD",)),
}


def _schedule(args) -> dict:
    """The schedule options as given, the torchvision engine's defaults where not."""
    return {
        name: getattr(TrainConfig, name) if getattr(args, name) is None else getattr(args, name)
        for name in SCHEDULE_KEYS
    }


def _train_detectron2(args) -> int:
    given = [name for name in SCHEDULE_KEYS if getattr(args, name) is not None]
    if given:
        flag, keys = SCHEDULE_KEYS[given[0]]
        raise InputError(
            f"{flag} is for the torchvision engine; with --engine detectron2 the YAML sets it: "
            f"--opts {keys[0]} VALUE (here: {' and '.join(keys)})"
        )

    if not args.config:
        raise InputError(
            "--engine detectron2 needs --config, e.g. mask_rcnn_R_101_FPN_hpa.yaml (a shipped config) or a YAML of your own"
        )
    settings = Detectron2TrainConfig(
        config=args.config,
        dataset=str(args.dataset),
        data=str(args.data),
        out=str(args.out),
        device=args.device,
        opts=list(args.opts),
        pretrained=args.pretrained,
        workers=args.workers,
        amp=not args.no_amp,
        seed=args.seed,
        teacher=args.teacher,
        distill_weight=args.distill_weight,
    )
    final = train_detectron2(settings, resume=args.resume, progress=not args.quiet)
    print(f"wrote {final}")
    return 0


def _cache_only(args) -> int:
    """``--cache-only [--shard I/N]``: fill the image cache at ``--image-size`` and stop."""
    shard = parse_shard(args.shard) if args.shard is not None else None
    start = time.perf_counter()
    cache_dir, n_images, before = cache_dataset(
        args.dataset,
        args.data,
        _schedule(args)["image_size"],
        shard=shard,
        workers=default_workers() if args.workers is None else max(1, args.workers),
        progress=not args.quiet,
    )
    done = n_images - before
    print(
        f"cached images of {done} images ({before} of {n_images} cached before), "
        f"{(time.perf_counter() - start) / done if done else 0.0:.2f} s/image -> {cache_dir}"
    )
    return 0


@cli_entry("train", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg train``."""
    args = build_parser().parse_args(argv)
    configure_output()
    for name in ("dataset", "data"):
        if not Path(getattr(args, name)).is_dir():
            raise InputError(f"--{name} {getattr(args, name)}: no such folder")
    if args.shard is not None and not args.cache_only:
        raise InputError(
            "--shard belongs to --cache-only: training is one job, its images can be cached by the tasks of an array first"
        )
    if args.cache_only:
        return _cache_only(args)
    if args.out is None:
        raise InputError("the following arguments are required: --out (see 'hpaseg train --help')")
    check_output_path(args.out, option="--out", folder=True)
    if args.engine not in ENGINES:
        raise InputError(f"--engine {args.engine!r}: expected torchvision or detectron2")
    if args.engine == "detectron2":
        return _train_detectron2(args)
    if args.config:
        raise InputError("--config is for --engine detectron2; the torchvision engine takes options and --opts")
    schedule = _schedule(args)
    cfg = TrainConfig(
        backbone=args.backbone,
        dataset=str(args.dataset),
        data=str(args.data),
        out=str(args.out),
        **schedule,
        pretrained=args.pretrained,
        device=args.device,
        workers=default_workers() if args.workers is None else args.workers,
        amp=not args.no_amp,
        seed=args.seed,
        warmup_iters=min(TrainConfig.warmup_iters, max(1, schedule["max_iter"] // 5)),
        teacher=args.teacher,
        distill_weight=TrainConfig.distill_weight if args.distill_weight is None else args.distill_weight,
    )
    train_torchvision(apply_opts(cfg, args.opts), resume=args.resume, progress=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
