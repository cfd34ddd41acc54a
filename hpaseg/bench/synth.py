"""``python -m hpaseg.bench synth REAL_DIR [--n 8] [--seed 0] [--style real-like] [--check]``:
how much the synthetic fields look like real HPA fields (:mod:`hpaseg.synth.compare`).

Prints the statistics of the real fields of ``REAL_DIR`` (``{ID}_{red,green,blue,yellow}.png``
with ``{ID}_cellmask.png``) next to those of ``--n`` synthetic fields at 2048 px; with
``--check`` the last line is ``out_of_tolerance=N`` and the exit status 1 when N > 0.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..classes import REFERENCE_SIZE_PX
from ..cli.base import ArgumentParser, add_quiet, cli_entry
from ..errors import InputError
from ..synth.compare import check_closeness, compare, format_table
from ..synth.image import DEFAULT_STYLE, STYLES

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """Options of ``python -m hpaseg.bench synth``."""
    parser = ArgumentParser(
        prog="hpaseg bench synth", description="Compare statistics of real HPA fields and synthetic ones."
    )
    parser.add_argument("real", metavar="REAL_DIR", help="folder of real fields with {ID}_cellmask.png")
    parser.add_argument("--n", type=int, default=8, help="synthetic fields to draw (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic fields (default 0)")
    parser.add_argument(
        "--size", type=int, default=REFERENCE_SIZE_PX, help=f"synthetic field size in px (default {REFERENCE_SIZE_PX})"
    )
    parser.add_argument(
        "--style", choices=STYLES, default=DEFAULT_STYLE, help=f"synthetic field style (default {DEFAULT_STYLE})"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a statistic is out of the tolerances (listed after the table)"
    )
    add_quiet(parser)
    return parser


@cli_entry("bench synth", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Print the comparison table (and, with --check, the statistics out of tolerance)."""
    args = build_parser().parse_args(argv)
    if args.n < 1:
        raise InputError(f"--n {args.n}: expected at least 1 synthetic field")
    rows = compare(args.real, args.n, args.seed, args.size, args.style)
    print(format_table(rows))
    if not args.check:
        return 0
    failures = check_closeness(rows)
    print("\n".join(["", *failures]) if failures else "")
    print(f"out_of_tolerance={len(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
