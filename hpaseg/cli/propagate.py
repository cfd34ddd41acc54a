"""``hpaseg propagate``: every cell gets its image's labels -> COCO ``train.json``/``val.json``,
``cells.csv`` (:func:`hpaseg.labels.propagate_dataset`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..errors import InputError
from ..io import check_output_path
from ..labels import propagate_dataset
from .base import ArgumentParser, add_quiet, cli_entry, configure_output

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg propagate``."""
    parser = ArgumentParser(
        prog="hpaseg propagate", description="Give every cell its image's labels and write a COCO instance dataset."
    )
    io_group = parser.add_argument_group("input and output")
    io_group.add_argument("--csv", required=True, help="image-level labels, ID,Label (Kaggle train.csv)")
    io_group.add_argument("--masks", required=True, help="folder of {ID}_cellmask.png (from hpaseg segment)")
    io_group.add_argument("--out", required=True, help="dataset folder to write (train.json, val.json, cells.csv)")
    io_group.add_argument("--data", help="image folder; when given, mask sizes are checked against the images")
    cells = parser.add_argument_group("which cells to keep")
    cells.add_argument("--drop-border", action="store_true", help="drop cells touching the image border")
    cells.add_argument(
        "--min-cell-area-px",
        type=int,
        default=0,
        help="drop cells smaller than this many pixels at original resolution (default 0)",
    )
    split = parser.add_argument_group("train/validation split (by image ID)")
    split.add_argument("--val-fraction", type=float, default=0.1, help="fraction of images in val.json (default 0.1)")
    split.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    add_quiet(parser)
    return parser


@cli_entry("propagate", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg propagate``."""
    args = build_parser().parse_args(argv)
    configure_output()
    if args.min_cell_area_px < 0:
        raise InputError(f"--min-cell-area-px {args.min_cell_area_px}: expected a non-negative integer")
    check_output_path(args.out, option="--out", folder=True)
    summary = propagate_dataset(
        args.csv,
        args.masks,
        args.out,
        data_dir=args.data,
        drop_border=args.drop_border,
        min_cell_area_px=args.min_cell_area_px,
        val_fraction=args.val_fraction,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(
        f"propagated labels to {summary['cells']} cells ({summary['cells_dropped']} dropped) of "
        f"{summary['images']['train']} train + {summary['images']['val']} val images; "
        f"{summary['annotations']['train']} + {summary['annotations']['val']} (cell, label) annotations -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
