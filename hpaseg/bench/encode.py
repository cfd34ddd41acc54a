"""Benchmark Kaggle mask encoding on a real HPA cell mask.

``python -m hpaseg.bench encode [--mask PATH] [--repeats N]`` times the organizers'
per-mask reference (``encode_binary_mask(mask == k)`` for every cell k) against the
one-pass :func:`hpaseg.submission.encode_label_image` on the same label image (median
of ``N`` runs after one warm-up run each; the reference is given the cell ids, found
once outside the timing, while the one-pass encoder finds them itself), checks that both give the same bytes for
every cell and prints the time per cell of each. The last line is
``bytes_equal=<bool> speedup=<ref/one-pass>x``. Exit status 0 when the bytes are
equal, 1 when they differ, 2 on a missing or unreadable mask.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from ..cli.base import ArgumentParser, add_quiet, cli_entry
from ..errors import InputError
from ..io import read_mask
from ..submission import encode_binary_mask, encode_label_image
from ..synth import synthetic_field

__all__ = ["reference_encode", "time_median", "build_parser", "main"]

#: Side (px) and seed of the synthetic label image encoded when no ``--mask`` is given.
_DEFAULT_SIZE_PX = 2048
_DEFAULT_SEED = 0


def reference_encode(label_image: np.ndarray, cells: Sequence[int]) -> dict[int, str]:
    """Encode cells with the organizers' per-mask reference, one full-size mask at a time.

    Parameters
    ----------
    label_image : ndarray, shape (H, W), int
    cells : sequence of int
        Cell ids to encode.

    Returns
    -------
    dict
        ``{cell id: mask string}``.
    """
    return {int(k): encode_binary_mask(label_image == k) for k in cells}


def time_median(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build_parser() -> ArgumentParser:
    """Command-line options of ``python -m hpaseg.bench encode``."""
    parser = ArgumentParser(
        prog="hpaseg bench encode", description="One-pass mask encoder vs the organizers' per-mask reference."
    )
    parser.add_argument(
        "--mask",
        default=None,
        help="label image to encode, e.g. a real HPA cell mask (default: the cells of a synthetic 2048-px field, hpaseg.synth.synthetic_field, seed 0)",
    )
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed runs of each encoder, after a warm-up (default 7)"
    )
    add_quiet(parser)
    return parser


@cli_entry("bench encode")
def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; see the module docstring for the output and exit status."""
    args = build_parser().parse_args(argv)
    if args.repeats < 1:
        raise InputError(f"--repeats {args.repeats}: expected a positive integer")
    if args.mask is None:
        mask, source = (
            synthetic_field(np.random.default_rng(_DEFAULT_SEED), _DEFAULT_SIZE_PX)[1].cell_mask,
            f"synthetic field ({_DEFAULT_SIZE_PX} px, seed {_DEFAULT_SEED})",
        )
    else:
        mask, source = read_mask(args.mask), args.mask
    cells = [int(k) for k in np.unique(mask) if k != 0]  # found once, outside the timed loop
    reference = reference_encode(mask, cells)
    if not reference:
        raise InputError(f"{source}: the mask has no cells (all zero); nothing to encode")
    fast = encode_label_image(mask)
    bytes_equal = fast == reference
    n = len(reference)
    t_ref = time_median(lambda: reference_encode(mask, cells), args.repeats)
    t_fast = time_median(lambda: encode_label_image(mask), args.repeats)
    print(f"mask: {source} ({mask.shape[1]}x{mask.shape[0]}, {n} cells), median of {args.repeats} runs")
    print(f"reference encode_binary_mask(mask == k): {1e3 * t_ref / n:8.3f} ms/cell  ({1e3 * t_ref:8.2f} ms total)")
    print(f"one-pass encode_label_image(mask):       {1e3 * t_fast / n:8.3f} ms/cell  ({1e3 * t_fast:8.2f} ms total)")
    if not bytes_equal:
        differ = sorted(k for k in reference if fast.get(k) != reference[k]) + sorted(set(fast) - set(reference))
        print(f"cells whose strings differ: {differ}")
    print(f"bytes_equal={bytes_equal} speedup={t_ref / t_fast:.1f}x")
    return 0 if bytes_equal else 1


if __name__ == "__main__":
    sys.exit(main())
