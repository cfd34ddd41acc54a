"""``hpaseg merge PART... --out SUB.csv [--data DIR]``: join the partial submissions that
the tasks of a predict job array wrote (``hpaseg predict --shard I/N``) into one Kaggle
submission (:func:`hpaseg.submission.merge_submissions`).

Every part is checked by the strict validator, an image in two parts is refused, and
with ``--data`` every test image must be in exactly one part; the merged file, sorted by
ID (byte for byte what one unsharded ``hpaseg predict`` writes), is validated as a whole
before it replaces ``--out``. It prints the validator's summary and ``OK``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..io import check_output_path
from ..submission import merge_submissions
from .base import ArgumentParser, add_quiet, cli_entry, configure_output

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg merge``."""
    parser = ArgumentParser(
        prog="hpaseg merge",
        description="Join the partial submissions of a predict job array (--shard I/N) into one validated submission.",
    )
    parser.add_argument(
        "parts", nargs="+", metavar="PART", help="partial submission CSVs (one per --shard I/N of hpaseg predict)"
    )
    parser.add_argument("--out", required=True, metavar="SUB.csv", help="the merged submission CSV to write")
    parser.add_argument(
        "--data", metavar="DIR", help="folder of the test images: each must be in exactly one part (IDs, sizes checked)"
    )
    add_quiet(parser)
    return parser


@cli_entry("merge", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg merge``; 0 when the merged submission is written and valid, 2 on a problem."""
    args = build_parser().parse_args(argv)
    configure_output()
    check_output_path(args.out, option="--out", folder=False)
    report = merge_submissions(args.parts, args.out, args.data)
    print(f"merged {len(args.parts)} part{'s' if len(args.parts) != 1 else ''}: {report.summary()}")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
