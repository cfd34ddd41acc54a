"""``hpaseg demo``: the whole pipeline on a small synthetic dataset (:func:`hpaseg.pipeline.demo.run_demo`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..io import check_output_path
from ..pipeline.demo import LEARNED, PRIOR, WEAK, DemoConfig, run_demo
from .base import ArgumentParser, add_quiet, cli_entry, configure_output

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg demo``."""
    d = DemoConfig()
    parser = ArgumentParser(
        prog="hpaseg demo", description="Run the whole hpaseg pipeline on a small synthetic dataset."
    )
    parser.add_argument("--out", default=d.out, help=f"output folder (default {d.out})")
    parser.add_argument(
        "--n-train", type=int, default=d.n_train, help=f"synthetic training images (default {d.n_train})"
    )
    parser.add_argument("--n-test", type=int, default=d.n_test, help=f"synthetic test images (default {d.n_test})")
    parser.add_argument("--size", type=int, default=d.size, help=f"image size in px (default {d.size})")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"seed (default {d.seed})")
    parser.add_argument(
        "--workers", type=int, default=d.workers, help=f"segmentation worker processes (default {d.workers})"
    )
    model = parser.add_argument_group("Mask R-CNN (trained on the cell classifier's cleaned labels)")
    model.add_argument("--backbone", default=d.backbone, help=f"torchvision backbone (default {d.backbone})")
    model.add_argument(
        "--train-iters",
        type=int,
        default=d.train_iters,
        help=f"training iterations, 0 = skip training (default {d.train_iters})",
    )
    model.add_argument(
        "--image-size",
        type=int,
        default=d.image_size,
        help=f"training/inference working size in px (default {d.image_size})",
    )
    model.add_argument(
        "--fpn-channels",
        type=int,
        default=d.fpn_channels,
        help=f"channels of the FPN levels and heads (default {d.fpn_channels}; torchvision's 256 is ~3x slower a step)",
    )
    model.add_argument(
        "--batch-size", type=int, default=d.batch_size, help=f"images per iteration (default {d.batch_size})"
    )
    model.add_argument(
        "--lr",
        type=float,
        default=d.lr,
        help=f"learning rate for 16 images per iteration, scaled linearly (default {d.lr})",
    )
    add_quiet(parser)
    return parser


@cli_entry("demo", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg demo``."""
    args = build_parser().parse_args(argv)
    configure_output()
    check_output_path(args.out, option="--out", folder=True)
    cfg = DemoConfig(**{k: v for k, v in vars(args).items() if k != "quiet"})
    scores = run_demo(cfg)["mAP"]
    print(f"mAP={scores[LEARNED]:.4f} prior={scores[PRIOR]:.4f} weak_labels={scores[WEAK]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
