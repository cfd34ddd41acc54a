"""``hpaseg relabel``: a dataset of ``hpaseg propagate`` re-written with cleaned per-cell
labels (e.g. a cell classifier run's ``refined_labels.csv``), for Mask R-CNN to train on
(:func:`hpaseg.labels.relabel_dataset`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..io import check_output_path
from ..labels import relabel_dataset
from .base import ArgumentParser, add_quiet, cli_entry, configure_output

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg relabel``."""
    parser = ArgumentParser(
        prog="hpaseg relabel",
        description="Write a dataset of hpaseg propagate with new per-cell labels (ID,cell,Label), e.g. the "
        "refined_labels.csv of a cell classifier run, so that Mask R-CNN trains on cleaned labels.",
    )
    parser.add_argument("--dataset", required=True, help="folder of hpaseg propagate (train.json, val.json, cells.csv)")
    parser.add_argument("--labels", required=True, help="ID,cell,Label CSV holding every cell of the dataset")
    parser.add_argument("--out", required=True, help="dataset folder to write")
    add_quiet(parser)
    return parser


@cli_entry("relabel", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg relabel``."""
    args = build_parser().parse_args(argv)
    configure_output()
    check_output_path(args.out, option="--out", folder=True)
    summary = relabel_dataset(args.dataset, args.labels, args.out)
    print(f"relabelled {summary['cells']} cells ({summary['changed']} changed) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
