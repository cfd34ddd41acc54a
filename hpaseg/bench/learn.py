"""``python -m hpaseg.bench learn``: does a short CPU training run learn?

Runs ``hpaseg demo`` at a larger scale (by default 200 training and 20 test images of
512 px) and prints, last, the Mask R-CNN's competition mAP on the test images next to
labelling every segmented cell with random classes and next to the weak-label oracle
(each cell labelled with its image's true labels), with the training loss at the first
and last log step. All figures come from that run (``OUT/demo_summary.json``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..cli.base import ArgumentParser, add_quiet, cli_entry, configure_output
from ..io import check_output_path
from ..pipeline.demo import ORACLE, PRIOR, RANDOM, DemoConfig, run_demo

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """Options of ``python -m hpaseg.bench learn``."""
    parser = ArgumentParser(
        prog="hpaseg bench learn",
        description="Train a Mask R-CNN on synthetic data on the CPU and compare it with baselines.",
    )
    parser.add_argument("--out", default="runs/learn", help="output folder (default runs/learn)")
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=20)
    parser.add_argument("--size", type=int, default=512, help="synthetic image size in px (default 512)")
    parser.add_argument("--backbone", default="densenet121")
    parser.add_argument("--train-iters", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=256, help="working size in px (default 256)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.08)
    parser.add_argument("--seed", type=int, default=0)
    add_quiet(parser)
    return parser


@cli_entry("bench learn", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run the learning check."""
    args = build_parser().parse_args(argv)
    configure_output()
    check_output_path(args.out, option="--out", folder=True)
    summary = run_demo(DemoConfig(**{k: v for k, v in vars(args).items() if k != "quiet"}))
    scores = summary["mAP"]
    model = next(v for k, v in scores.items() if k.startswith("Mask R-CNN"))
    loss = summary["training_loss"]
    print(
        f"maskrcnn_map={model:.4f} random_map={scores[RANDOM]:.4f} prior_map={scores[PRIOR]:.4f} "
        f"weak_oracle_map={scores[ORACLE]:.4f} loss_first={loss['first']:.3f} loss_last={loss['last']:.3f} "
        f"seconds={summary['seconds']:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
