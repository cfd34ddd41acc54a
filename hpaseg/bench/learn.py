"""``python -m hpaseg.bench learn``: does training on image labels learn per-cell labels?

Generates a fresh synthetic set (``hpaseg synth``, real-like fields; by default 200 train
and 50 test images of 512 px, seed 0), segments it with the built-in segmenter,
propagates the training labels, then trains and scores every route of
:mod:`hpaseg.pipeline.routes` on the test images against their per-cell truth: the
baselines (class prior, random, weak labels = the test images' true labels on every
cell), the cell classifier with each supervision (propagated, mil, refined), Mask R-CNN
trained on the refined run's cleaned labels, and the hybrid. Then, on the refined run's
probabilities, the score rules: fusion (product, cell, image, mean with w 0.1-0.5) x
Negative (max, model), image pooling (lse, mean) x image model weight (0-1; 0 = the
image head unused), and a score floor of 0.05. One row per route or rule: competition mAP,
per-cell macro AP, training seconds. Writes ``OUT/learn.json`` and ``OUT/learn.md``.
Reruns reuse the data and finished runs.

Time budget on 2 CPU cores: about 25 minutes with the defaults (the three cell
classifiers about 2 minutes, Mask R-CNN's 600 iterations about 20; ``--maskrcnn-iters 0``
skips it). Measured figures: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .. import io
from ..cli.base import ArgumentParser, add_quiet, cli_entry, configure_output
from ..io import check_output_path
from ..labels import propagate_dataset
from ..pipeline.routes import (
    RoutesConfig,
    cell_probabilities,
    routes_table,
    rows_by_rule,
    run_routes,
    score_rows,
    score_rule_variants,
)
from ..segmentation import make_segmenter, segment_images
from ..submission import read_submission
from ..synth import generate_dataset
from ..viz.study import results_markdown

__all__ = ["build_parser", "main", "score_rule_table"]

log = logging.getLogger(__name__)


def build_parser() -> ArgumentParser:
    """Options of ``python -m hpaseg.bench learn``."""
    parser = ArgumentParser(
        prog="hpaseg bench learn",
        description="Train every route on image labels of a synthetic set and score them on per-cell truth.",
    )
    parser.add_argument("--out", default="runs/learn", help="output folder (default runs/learn)")
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=50)
    parser.add_argument("--size", type=int, default=512, help="synthetic image size in px (default 512)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--supervisions", nargs="+", default=["propagated", "mil", "refined"], help="cell-classifier runs to train"
    )
    parser.add_argument(
        "--maskrcnn-iters", type=int, default=600, help="Mask R-CNN iterations, 0 = no Mask R-CNN (default 600)"
    )
    parser.add_argument("--image-size", type=int, default=256, help="Mask R-CNN working size in px (default 256)")
    parser.add_argument("--workers", type=int, default=2)
    add_quiet(parser)
    return parser


def _prepare(args) -> tuple[Path, Path, Path]:
    out = Path(args.out)
    data, masks, dataset = out / "data", out / "masks", out / "dataset"
    params = {k: getattr(args, k) for k in ("n_train", "n_test", "size", "seed")}
    if not (data / "truth.csv").is_file() or io.read_json(out / "params.json") != params:
        generate_dataset(data, args.n_train, args.n_test, args.size, args.seed, progress=False, overwrite=True)
        io.write_json(out / "params.json", params)
    for split in ("train", "test"):
        log.info(
            segment_images(
                data / split, masks / split, None, make_segmenter("watershed"), workers=args.workers, progress=False
            ).line()
        )
    if not (dataset / "propagate.json").is_file():
        propagate_dataset(
            data / "train.csv", masks / "train", dataset, data_dir=data / "train", val_fraction=0.15, progress=False
        )
    return data, masks, dataset


def score_rule_table(run: Path, data: Path, masks: Path) -> pd.DataFrame:
    """mAP and per-cell macro AP of one cell-classifier run under each score rule
    (:func:`hpaseg.pipeline.routes.score_rule_variants`)."""
    truth = read_submission(data / "truth.csv")
    probabilities = cell_probabilities(run, data / "test", masks / "test")
    rows = []
    for name, score_rule, label_rule in score_rule_variants():
        m, cell_ap = score_rows(truth, rows_by_rule(probabilities, score_rule, label_rule))
        rows.append({"rule": name, "mAP": m, "cell_macro_ap": cell_ap})
    return pd.DataFrame(rows)


def _markdown(table: pd.DataFrame) -> str:
    return results_markdown(table, list(table.columns), sort_by=None)


@cli_entry("bench learn", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run the learning benchmark."""
    args = build_parser().parse_args(argv)
    configure_output()
    check_output_path(args.out, option="--out", folder=True)
    started = time.perf_counter()
    data, masks, dataset = _prepare(args)
    cfg = RoutesConfig(
        out=str(Path(args.out) / "routes"),
        data=str(data),
        masks=str(masks),
        dataset=str(dataset),
        supervisions=tuple(args.supervisions),
        maskrcnn_iters=args.maskrcnn_iters,
        maskrcnn={"image_size": args.image_size},
        workers=args.workers,
        seed=args.seed,
    )
    routes = routes_table(run_routes(cfg)).drop(columns=["submission"])
    labeller = "refined" if "refined" in args.supervisions else args.supervisions[-1]
    rules = score_rule_table(Path(cfg.out) / f"cell_{labeller}", data, masks)
    seconds = time.perf_counter() - started
    io.write_json(
        Path(args.out) / "learn.json",
        {
            "params": vars(args),
            "routes": routes.to_dict("records"),
            "score_rules": rules.to_dict("records"),
            "seconds": seconds,
        },
        indent=2,
    )
    text = f"{_markdown(routes)}\n\nscore rules on cell_{labeller}:\n\n{_markdown(rules)}\n"
    with io.atomic_write(Path(args.out) / "learn.md") as fh:
        fh.write(text)
    print(routes.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print()
    print(rules.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"seconds={seconds:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
