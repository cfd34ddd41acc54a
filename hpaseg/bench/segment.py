"""Benchmark of the default segmenter: ``python -m hpaseg.bench segment``.

Runs :func:`hpaseg.segmentation.segment_watershed` (one worker, no file I/O) on a
deterministic synthetic RGBY field (:func:`hpaseg.synth.synth_image`, 2048 px by default)
with the process pinned to ``--cores`` CPU cores (1 by default; torch and OpenCV threads
set to match) and prints the seconds per image of each repeat; the last line is
``images_per_s=N.NN per_core=N.NN cores=C peak_rss_mb=M`` (median over repeats; peak
resident memory of the process, field generation included).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import numpy as np

from ..classes import REFERENCE_SIZE_PX
from ..cli.base import ArgumentParser, add_quiet, cli_entry
from ..evaluation import COMPETITION_IOU_THRESHOLD, match_label_images
from ..io import write_json
from ..segmentation import segment_watershed
from ..synth import image_rng, synth_image
from .common import peak_rss_mb, pinned_cores

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """Options of ``python -m hpaseg.bench segment``."""
    parser = ArgumentParser(prog="hpaseg bench segment", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=REFERENCE_SIZE_PX, help="image side in px (default 2048)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (default 3, after one warm-up)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic field (default 0)")
    parser.add_argument("--cores", type=int, default=1, help="CPU cores the process may use (default 1)")
    parser.add_argument("--out-json", help="also write the figures here")
    add_quiet(parser)
    return parser


def _make_image(seed: int, size: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``(image, true cell mask, source)``: a field of :func:`hpaseg.synth.synth_image`."""
    drawn = synth_image(image_rng(seed, "test", 0), size)
    return np.asarray(drawn.image), np.asarray(drawn.cell_mask), "hpaseg.synth.synth_image"


@cli_entry("bench segment", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Time the default segmenter; the last line printed is ``images_per_s=N.NN per_core=N.NN cores=C peak_rss_mb=M``."""
    args = build_parser().parse_args(argv)
    with pinned_cores(args.cores) as used:
        return _run(args, used)


def _run(args: argparse.Namespace, used: list[int]) -> int:
    """The timed part of :func:`main`, on the cores ``used``."""
    image, truth, source = _make_image(args.seed, args.size)
    print(
        f"input: {image.shape[0]}x{image.shape[1]} RGBY uint8 from {source} (seed {args.seed}); segment_watershed, "
        f"one worker on core(s) {used}"
    )
    cells, _ = segment_watershed(image)  # warm-up (imports, caches)
    match = match_label_images(truth, cells, iou_threshold=COMPETITION_IOU_THRESHOLD)
    print(
        f"cells: {match.n_pred} found, {match.n_true} true, {match.n_matched} matched at IoU >= {COMPETITION_IOU_THRESHOLD} "
        f"(precision {match.precision:.3f}, recall {match.recall:.3f})"
    )
    times = []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        segment_watershed(image)
        times.append(time.perf_counter() - t0)
        print(f"repeat {r + 1}: {times[-1]:.3f} s/image")
    ips = 1.0 / statistics.median(times)
    peak = peak_rss_mb()
    if args.out_json:
        write_json(
            args.out_json,
            {
                "size": args.size,
                "cores": len(used),
                "seconds": times,
                "images_per_s": ips,
                "images_per_s_per_core": ips / len(used),
                "peak_rss_mb": peak,
                "cells": {"found": match.n_pred, "true": match.n_true, "matched": match.n_matched},
            },
            indent=2,
        )
    print(f"images_per_s={ips:.2f} per_core={ips / len(used):.2f} cores={len(used)} peak_rss_mb={peak:.0f}")
    return 0
