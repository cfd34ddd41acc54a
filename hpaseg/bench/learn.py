"""``python -m hpaseg.bench learn``: does training on image labels learn per-cell labels,
by more than the spread between seeds?

For each of ``--seeds`` seeds (``--seed``, ``--seed`` + 1, ...), in ``OUT/seed{s}/``:
generates a fresh synthetic set (``hpaseg synth``, real-like fields; by default 200 train
and 50 test images of 512 px, generated with that seed), segments it with the built-in
segmenter, propagates the training labels, then trains (with that seed) and scores every
route of :mod:`hpaseg.pipeline.routes` on the test images against their per-cell truth:
the baselines (class prior, random, weak labels = the test images' true labels on every
cell), the cell classifier with each supervision (propagated, mil, refined), and on the
first ``--maskrcnn-seeds`` seeds Mask R-CNN trained on the refined run's cleaned labels
and the hybrid; with ``--cnn``, the CNN cell route at CPU scale
(:data:`hpaseg.pipeline.routes.CNN_CPU`: ResNet18 from random initialisation on 64-px
crops, the descriptors route's weak-supervision trainer; ``--cnn-epochs`` per round).
Every route also gets two diagnostics
(:func:`hpaseg.pipeline.routes.diagnose`): *oracle-image* (its own scores kept for the
true image classes only) and *weak-label on its cells*. Then, on the refined run's
probabilities, the score rules of :func:`hpaseg.pipeline.routes.score_rule_variants`.

The summary gives, per route, the number of seeds, the mean and standard deviation of
each figure, and the paired difference (same seed) of its mAP to the weak-label
baseline with its standard deviation; a route is called above the baseline only when the
mean difference exceeds twice its standard deviation (:mod:`hpaseg.evaluation.spread`).
Writes ``OUT/learn.json`` (every seed's rows and the summaries) and ``OUT/learn.md``.
Reruns reuse each seed's data and finished runs. ``--smoke`` shrinks everything to a
CI-sized check (8 train and 3 test images of 128 px, 2 Mask R-CNN iterations at 64 px).

Time budget on 2 CPU cores, defaults: about 5 minutes a seed for data, segmentation and
the three cell classifiers, and at most 10 minutes for Mask R-CNN's training (the CPU
preset, :data:`hpaseg.pipeline.routes.MASKRCNN_CPU_ITERS` iterations, the label head's
fit on the training cells included) on each seed that trains it (``--maskrcnn-iters 0``
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
from ..errors import InputError
from ..evaluation import paired_summary
from ..evaluation.spread import ABOVE, NOISE, ONE_REPEAT
from ..io import check_output_path
from ..labels import LabelRule, propagate_dataset
from ..pipeline.routes import (
    CNN_CPU,
    MASKRCNN_CPU_ITERS,
    WEAK,
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
from ..weak import ScoreRule
from .common import plus_minus

__all__ = [
    "SMOKE",
    "build_parser",
    "main",
    "score_rule_table",
    "summarize_routes",
    "summarize_rules",
    "default_rule_name",
    "summary_markdown",
    "verdict_lines",
]

log = logging.getLogger(__name__)

#: ``--smoke``: the CI-sized run (every stage, every route, a few seconds a seed).
SMOKE: dict = {
    "n_train": 8,
    "n_test": 3,
    "size": 128,
    "maskrcnn_iters": 2,
    "image_size": 64,
    "cnn_epochs": 1,
    "crop_size": 32,
}
#: The figures summarised over seeds.
ROUTE_VALUES: list[str] = ["mAP", "cell_macro_ap", "oracle_image", "weak_on_cells", "train_seconds"]


def build_parser() -> ArgumentParser:
    """Options of ``python -m hpaseg.bench learn``."""
    parser = ArgumentParser(
        prog="hpaseg bench learn",
        description="Train every route on image labels of fresh synthetic sets (one per seed) and score them on per-cell truth.",
    )
    parser.add_argument("--out", default="runs/learn", help="output folder (default runs/learn)")
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=50)
    parser.add_argument("--size", type=int, default=512, help="synthetic image size in px (default 512)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="fresh synthetic sets, each with its own data and training seed (default 3)",
    )
    parser.add_argument(
        "--supervisions", nargs="+", default=["propagated", "mil", "refined"], help="cell-classifier runs to train"
    )
    parser.add_argument(
        "--maskrcnn-iters",
        type=int,
        default=MASKRCNN_CPU_ITERS,
        help=f"Mask R-CNN iterations, 0 = no Mask R-CNN (default {MASKRCNN_CPU_ITERS}: the CPU preset, within 10 minutes)",
    )
    parser.add_argument(
        "--maskrcnn-seeds",
        type=int,
        default=1,
        help="how many of the seeds (the first ones) also train Mask R-CNN and the hybrid (default 1)",
    )
    parser.add_argument("--image-size", type=int, default=256, help="Mask R-CNN working size in px (default 256)")
    parser.add_argument(
        "--cnn",
        action="store_true",
        help=f"also train the CNN cell route ({CNN_CPU['backbone']} on {CNN_CPU['crop_size']}-px crops, refined, image head, refit)",
    )
    parser.add_argument(
        "--cnn-epochs", type=int, default=CNN_CPU["epochs"], help=f"--cnn: epochs a round (default {CNN_CPU['epochs']})"
    )
    parser.add_argument(
        "--crop-size",
        type=int,
        default=CNN_CPU["crop_size"],
        help=f"--cnn: crop side in px (default {CNN_CPU['crop_size']})",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="CI-sized: 8 train and 3 test images of 128 px, 2 Mask R-CNN iterations at 64 px",
    )
    add_quiet(parser)
    return parser


def _check(args) -> None:
    for name in ("n_train", "n_test", "size", "seeds", "cnn_epochs", "crop_size"):
        if getattr(args, name) < 1:
            raise InputError(f"{name} {getattr(args, name)}: expected an integer >= 1", param=name)
    for name in ("maskrcnn_iters", "maskrcnn_seeds"):
        if getattr(args, name) < 0:
            raise InputError(f"{name} {getattr(args, name)}: expected an integer >= 0", param=name)


def _prepare(args, seed: int, out: Path) -> tuple[Path, Path, Path]:
    """One seed's synthetic set, its segmentation and its propagated dataset (reused when finished)."""
    data, masks, dataset = out / "data", out / "masks", out / "dataset"
    params = {"n_train": args.n_train, "n_test": args.n_test, "size": args.size, "seed": seed}
    if not (data / "truth.csv").is_file() or io.read_json(out / "params.json") != params:
        generate_dataset(data, args.n_train, args.n_test, args.size, seed, progress=False, overwrite=True)
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


def _run_seed(args, seed: int, index: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every route and score rule on the set of one seed; each table with a ``seed`` column."""
    out = Path(args.out) / f"seed{seed}"
    log.info("seed %d (%d of %d)", seed, index + 1, args.seeds)
    data, masks, dataset = _prepare(args, seed, out)
    cfg = RoutesConfig(
        out=str(out / "routes"),
        data=str(data),
        masks=str(masks),
        dataset=str(dataset),
        supervisions=tuple(args.supervisions),
        maskrcnn_iters=args.maskrcnn_iters if index < args.maskrcnn_seeds else 0,
        maskrcnn={"image_size": args.image_size},
        cnn={**CNN_CPU, "epochs": args.cnn_epochs, "crop_size": args.crop_size} if args.cnn else {},
        workers=args.workers,
        seed=seed,
    )
    routes = routes_table(run_routes(cfg)).drop(columns=["submission"])
    labeller = "refined" if "refined" in args.supervisions else args.supervisions[-1]
    rules = score_rule_table(Path(cfg.out) / f"cell_{labeller}", data, masks)
    return routes.assign(seed=seed), rules.assign(seed=seed)


def summarize_routes(routes: pd.DataFrame) -> pd.DataFrame:
    """Per route over the seeds: mean and sd of each figure, the paired mAP difference to
    the weak-label baseline and its verdict (:func:`hpaseg.evaluation.paired_summary`)."""
    return paired_summary(routes, key="route", unit="seed", values=ROUTE_VALUES, baseline=WEAK)


def default_rule_name() -> str:
    """The name of the default score rule (``ScoreRule()``, ``LabelRule()``) among
    :func:`hpaseg.pipeline.routes.score_rule_variants`.

    >>> default_rule_name()
    'fusion mean w 0.2, Negative max'
    """
    return next(n for n, s, r in score_rule_variants() if s == ScoreRule() and r == LabelRule())


def summarize_rules(rules: pd.DataFrame) -> pd.DataFrame:
    """Per score rule over the seeds: mean and sd, and the paired difference to the default rule."""
    return paired_summary(rules, key="rule", unit="seed", values=["mAP", "cell_macro_ap"], baseline=default_rule_name())


def summary_markdown(summary: pd.DataFrame, key: str, values: Sequence[str], against: str) -> str:
    """The summary as a Markdown table: mean ± sd per figure, the paired difference ± sd, the verdict."""
    table = pd.DataFrame(
        {
            key: summary[key],
            "seeds": summary["n"],
            **{v: [plus_minus(m, s) for m, s in zip(summary[v], summary[f"{v}_sd"])] for v in values},
            f"diff to {against}": [plus_minus(m, s) for m, s in zip(summary["diff"], summary["diff_sd"])],
            "verdict": summary["verdict"],
        }
    )
    return results_markdown(table, list(table.columns), sort_by=None)


def verdict_lines(summary: pd.DataFrame) -> str:
    """Which routes are above the weak-label baseline beyond the spread between seeds, which are within it."""
    lines = []
    for label, wanted in (
        ("above the weak-label baseline (mean paired diff > 2 sd)", ABOVE),
        ("within noise of it", NOISE),
        ("one seed only (no spread: no claim)", ONE_REPEAT),
    ):
        names = summary.loc[summary["verdict"] == wanted, "route"].tolist()
        lines.append(f"- {label}: {'; '.join(names) if names else 'none'}")
    return "\n".join(lines)


def _report(args, routes: pd.DataFrame, rules: pd.DataFrame, seconds: float) -> str:
    route_summary, rule_summary = summarize_routes(routes), summarize_rules(rules)
    labeller = "refined" if "refined" in args.supervisions else args.supervisions[-1]
    io.write_json(
        Path(args.out) / "learn.json",
        {
            "params": vars(args),
            "seeds": sorted(int(s) for s in routes["seed"].unique()),
            "summary": route_summary.to_dict("records"),
            "score_rule_summary": rule_summary.to_dict("records"),
            "routes": routes.to_dict("records"),
            "score_rules": rules.to_dict("records"),
            "seconds": seconds,
        },
        indent=2,
    )
    text = (
        f"routes over {args.seeds} seed(s) (mean ± sd; rows with one seed have no spread):\n\n"
        f"{verdict_lines(route_summary)}\n\n"
        f"{summary_markdown(route_summary, 'route', ROUTE_VALUES, 'weak-label')}\n\n"
        f"score rules on cell_{labeller} over {args.seeds} seed(s):\n\n"
        f"{summary_markdown(rule_summary, 'rule', ['mAP', 'cell_macro_ap'], 'default')}\n\n"
        f"every seed:\n\n{results_markdown(routes, list(routes.columns), sort_by=None)}\n"
    )
    with io.atomic_write(Path(args.out) / "learn.md") as fh:
        fh.write(text)
    return text


@cli_entry("bench learn", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run the learning benchmark."""
    args = build_parser().parse_args(argv)
    if args.smoke:
        for name, value in SMOKE.items():
            setattr(args, name, value)
    configure_output()
    _check(args)
    check_output_path(args.out, option="--out", folder=True)
    started = time.perf_counter()
    routes, rules = [], []
    for index, seed in enumerate(range(args.seed, args.seed + args.seeds)):
        r, s = _run_seed(args, seed, index)
        routes.append(r)
        rules.append(s)
    seconds = time.perf_counter() - started
    print(_report(args, pd.concat(routes, ignore_index=True), pd.concat(rules, ignore_index=True), seconds))
    print(f"seconds={seconds:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
