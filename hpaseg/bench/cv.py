"""``python -m hpaseg.bench cv``: cross-validation of the cell classifier's score rules on
the training images of ``bench learn``'s synthetic set (:mod:`hpaseg.pipeline.crossval`).

The test images are never read: this is how the default score rule, image pooling and
image-model weight were chosen, and how the cost of holding out a validation split was
measured (``--train-fraction 0.85``, the share ``bench learn``'s propagation trains on),
how the supervisions compare (``--supervision``) and what the image head's bag mixing
gains (``--image-mix 0``).
Needs a finished ``bench learn`` folder (its first seed's ``data/``, ``masks/train`` and
``dataset/``, or a seed folder given itself; ``--maskrcnn-iters 0`` is enough). Writes
``OUT/cv.json`` (every fold) and ``OUT/cv.md`` (per rule, best first: mean and standard
deviation over the folds, and the paired difference to the weak-label baseline, fold by
fold, with its standard deviation and a verdict: above or below only beyond twice that). About 5 minutes on 2 CPU cores
with 5 folds of 200 images.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .. import io
from ..classification import ClassifyConfig
from ..cli.base import ArgumentParser, add_quiet, cli_entry, configure_output
from ..errors import InputError
from ..evaluation import paired_summary
from ..io import check_output_path
from ..pipeline.crossval import CrossValConfig, cross_validate
from ..pipeline.routes import WEAK, score_rule_variants
from ..viz.study import results_markdown

__all__ = ["build_parser", "summarize", "learn_folder", "main"]

log = logging.getLogger(__name__)


def build_parser() -> ArgumentParser:
    """Options of ``python -m hpaseg.bench cv``."""
    parser = ArgumentParser(
        prog="hpaseg bench cv",
        description="Cross-validate the cell classifier's score rules on the training images of a bench learn set.",
    )
    parser.add_argument(
        "--learn",
        default="runs/learn",
        help="a finished bench learn folder, or one of its seed folders (default runs/learn: its first seed)",
    )
    parser.add_argument("--out", default="runs/cv", help="output folder (default runs/cv)")
    parser.add_argument("--folds", type=int, default=5, help="groups of training images (default 5)")
    parser.add_argument(
        "--train-fraction", type=float, default=1.0, help="share of each fold's training images used (default 1)"
    )
    parser.add_argument(
        "--supervision",
        default=None,
        help="propagated, mil or refined: the cell classifier's supervision (default: the CPU preset's)",
    )
    parser.add_argument(
        "--image-mix",
        type=float,
        default=None,
        help=f"the image head's bag-mixing chance (hpaseg classify --image-mix; default {ClassifyConfig.image_mix})",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    add_quiet(parser)
    return parser


def summarize(folds: pd.DataFrame, baseline: str = WEAK) -> pd.DataFrame:
    """Mean and standard deviation of each rule's mAP over the folds, and its paired
    difference (same fold) to ``baseline`` with a verdict (:func:`hpaseg.evaluation.paired_summary`), best first.

    >>> t = summarize(pd.DataFrame({"rule": ["a", "a", "b", "b"], "fold": [0, 1, 0, 1], "mAP": [0.5, 0.7, 0.2, 0.2]}), "b")
    >>> t["rule"].tolist(), t["mAP"].round(2).tolist(), t["diff"].round(2).tolist()
    (['a', 'b'], [0.6, 0.2], [0.4, 0.0])
    """
    table = paired_summary(folds, key="rule", unit="fold", values=["mAP"], baseline=baseline)
    return table.sort_values("mAP", ascending=False, kind="stable").reset_index(drop=True)


def learn_folder(path: str | Path) -> Path:
    """The folder of one seed of a ``bench learn`` run: ``path`` itself when it holds a
    dataset, else its first ``seed*`` folder (lowest seed)."""
    learn = Path(path)
    if (learn / "dataset" / "propagate.json").is_file():
        return learn
    seeds = sorted(
        (p for p in learn.glob("seed*") if p.name[4:].isdigit() and (p / "dataset" / "propagate.json").is_file()),
        key=lambda p: int(p.name[4:]),
    )
    if not seeds:
        raise InputError(
            f"--learn {learn}: no dataset/propagate.json, nor a seed*/ folder with one; run python -m hpaseg.bench learn --out {learn} first"
        )
    log.info("cross-validating the training images of %s", seeds[0])
    return seeds[0]


@cli_entry("bench cv", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run the cross-validation."""
    args = build_parser().parse_args(argv)
    configure_output()
    learn = learn_folder(args.learn)
    check_output_path(args.out, option="--out", folder=True)
    started = time.perf_counter()
    cfg = CrossValConfig(
        data=str(learn / "data"),
        masks=str(learn / "masks" / "train"),
        dataset=str(learn / "dataset"),
        folds=args.folds,
        train_fraction=args.train_fraction,
        classifier={
            name: value
            for name, value in (("supervision", args.supervision), ("image_mix", args.image_mix))
            if value is not None
        },
        workers=args.workers,
        seed=args.seed,
    )
    folds = cross_validate(cfg, score_rule_variants(), progress=False)
    table = summarize(folds)
    seconds = time.perf_counter() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(
        out / "cv.json",
        {
            "params": vars(args),
            "summary": table.to_dict("records"),
            "folds": folds.to_dict("records"),
            "seconds": seconds,
        },
        indent=2,
    )
    with io.atomic_write(out / "cv.md") as fh:
        fh.write(results_markdown(table, list(table.columns), sort_by=None) + "\n")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"seconds={seconds:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
