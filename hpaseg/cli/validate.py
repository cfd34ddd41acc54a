"""``hpaseg validate SUBMISSION [--data DIR]``: check a Kaggle submission CSV strictly
(:func:`hpaseg.submission.validate_submission`; the rules are in :mod:`hpaseg.submission.validate`).

It checks the header, every ID, size and ``label confidence mask`` triple (label 0-18,
confidence a finite number in [0, 1], mask a non-empty base64/zlib COCO RLE lying within
the image), and with ``--data`` that every image of DIR has exactly one row with its true
size. It prints a summary and ``OK``; on the first problem it prints one line naming the
file, line and field and exits with status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..submission import validate_submission
from .base import ArgumentParser, add_quiet, cli_entry, configure_output

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg validate``."""
    parser = ArgumentParser(prog="hpaseg validate", description="Check a Kaggle submission CSV strictly.")
    parser.add_argument(
        "submission", metavar="SUBMISSION", help="submission CSV (ID,ImageWidth,ImageHeight,PredictionString)"
    )
    parser.add_argument("--data", metavar="DIR", help="folder of the test images; checks IDs and sizes against it")
    add_quiet(parser)
    return parser


@cli_entry("validate", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg validate``; 0 when valid, 2 on the first problem."""
    args = build_parser().parse_args(argv)
    configure_output()
    report = validate_submission(args.submission, args.data)
    print(report.summary())
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
