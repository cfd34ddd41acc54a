"""``hpaseg synth OUT``: a synthetic HPA-like dataset in the Kaggle layout, with its truth
(:func:`hpaseg.synth.generate_dataset`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..classes import CLASS_NAMES
from ..synth import DEFAULT_STYLE, MIN_SIZE_PX, STYLES, SynthSummary, generate_dataset
from .base import ArgumentParser, add_quiet, cli_entry, configure_output

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg synth``."""
    parser = ArgumentParser(
        prog="hpaseg synth",
        description="Generate a synthetic HPA-like dataset (Kaggle layout) with true cell masks and per-cell labels.",
    )
    parser.add_argument("out", metavar="OUT", help="output folder (train.csv, train/, test/, masks/, truth.csv, ...)")
    data = parser.add_argument_group("what to generate")
    data.add_argument("--n-train", type=int, default=20, help="training images (default 20)")
    data.add_argument("--n-test", type=int, default=5, help="test images (default 5)")
    data.add_argument(
        "--size", type=int, default=512, help=f"image height and width in px, >= {MIN_SIZE_PX} (default 512; HPA: 2048)"
    )
    data.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed gives identical files (default 0)"
    )
    data.add_argument(
        "--bit-depth",
        type=int,
        choices=(8, 16),
        default=8,
        help="bits per channel PNG (default 8; 16 stores value*257)",
    )
    data.add_argument(
        "--style",
        choices=STYLES,
        default=DEFAULT_STYLE,
        help=f"look of the fields (default {DEFAULT_STYLE}: dense irregular colonies imaged like HPA's fields; compact: the earlier compact cells on a grey background)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty folder not made by hpaseg synth"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes drawing the images (default 1; the files are the same)"
    )
    add_quiet(parser)
    return parser


def format_summary(summary: SynthSummary) -> str:
    """What ``hpaseg synth`` prints: counts of images, cells and labels per class."""
    n_images = summary.n_train + summary.n_test
    lines = [
        f"wrote {summary.n_train} train + {summary.n_test} test images ({summary.size} px, {summary.bit_depth}-bit), "
        f"{summary.n_cells} cells ({summary.n_cells / n_images:.1f} per image) to {summary.out_dir} in {summary.seconds:.1f} s; style {summary.style}",
        "class                                       images  cells",
    ]
    for k, name in enumerate(CLASS_NAMES):
        if summary.image_label_counts[k] or summary.cell_label_counts[k]:
            lines.append(f"{k:>2} {name:<40} {summary.image_label_counts[k]:>6} {summary.cell_label_counts[k]:>6}")
    return "\n".join(lines)


@cli_entry("synth", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg synth``."""
    args = build_parser().parse_args(argv)
    configure_output()
    summary = generate_dataset(
        args.out,
        args.n_train,
        args.n_test,
        args.size,
        args.seed,
        bit_depth=args.bit_depth,
        progress=not args.quiet,
        overwrite=args.overwrite,
        style=args.style,
        workers=args.workers,
    )
    if not args.quiet:
        print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
