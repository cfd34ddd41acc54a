"""Benchmarks: ``python -m hpaseg.bench <name>``. Each benchmark is a module of this
package with ``main(argv) -> int`` whose last printed line holds its figures."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

__all__ = ["BENCHMARKS", "main"]

BENCHMARKS: dict[str, str] = {
    "encode": "Kaggle mask encoding: one-pass encoder vs the organizers' per-mask reference",
    "segment": "default (watershed) segmenter on 2048x2048 RGBY input, one worker",
    "segreal": "watershed segmenter vs reference masks of real fields: leave-one-field-out choice of its settings",
    "train": "Mask R-CNN training and inference images/s per backbone and engine",
    "learn": "every route trained on image labels of fresh synthetic sets (one per seed), mean ± sd and paired differences to the weak-label baseline",
    "cv": "cross-validation of the cell classifier's score rules on the training images of a bench learn set",
    "synth": "statistics of synthetic fields next to real HPA fields (cell area, density, touching, intensities)",
    "predict": "the Mask R-CNN predict chain per image at 2048 px, each step's share, peak memory",
    "loader": "image cache + DataLoader images/s per worker at the working size, vs the model's consumption",
    "cost": "full-scale cost model: each per-image stage timed at 2048 px on one core, extrapolated to the Kaggle set",
    "gpu": "one-command GPU check: training/inference images/s with AMP, predict chain, peak GPU memory, loss falling",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m hpaseg.bench <name> [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m hpaseg.bench <name> [options]\n\nbenchmarks:")
        for name, desc in BENCHMARKS.items():
            print(f"  {name:<8}  {desc}")
        return 0
    if argv[0] not in BENCHMARKS:
        print(
            f"hpaseg bench: error: unknown benchmark {argv[0]!r}; expected one of {', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(f"hpaseg.bench.{argv[0]}")
    return int(module.main(argv[1:]) or 0)
