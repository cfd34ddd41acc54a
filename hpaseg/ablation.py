"""``hpaseg ablation``: the classifier study's grid, backbones x losses x augmentations,
with one shared budget (the same epochs, batch size, hence steps) and seed.

``hpaseg ablation --level image|cell --backbones B [B ...] --losses bce focal
--augments standard cutmix --dataset DATASET --data DIR [--masks MASKS] --out RESULTS
[--epochs 20] [--image-size 256] [--crop-size 128] ...``

Each configuration ``{level}-{backbone}-{loss}-{augment}`` is an ``hpaseg classify`` run in
``RESULTS/<config>/``. The grid is resumable per configuration: one whose ``eval.json``
was written with the same settings is skipped; any other resumes from its last
checkpoint. The data are read and cached once for the whole grid. Then:

* ``RESULTS/results.csv``: ``config,level,backbone,loss,augment,channels,image_size,
  epochs,macro_f1,macro_f1_tuned,macro_ap,train_seconds`` (``image_size`` is the
  network's input side: the crop size at cell level);
* ``RESULTS/per_class_ap.csv``: ``config,class_id,class_name,ap`` (``ap`` empty for a
  class without positives in the validation split);
* ``RESULTS/confusion.csv``: ``config,class_id,class_name,tn,fp,fn,tp`` (at the per-class
  thresholds tuned on the validation split);
* ``RESULTS/results.md``: the results as a markdown table;
* ``RESULTS/metrics.png``: the three metrics per configuration (bars);
* ``RESULTS/per_class_ap.png``: per-class AP, configurations x classes (heatmap, viridis).

Tables and figures come from :mod:`hpaseg.visualize`, which the
``eval_notebooks/Classifier-Study.ipynb`` notebook uses on the same files.

All metrics are on the validation split (``val.json``); see :mod:`hpaseg.classify`.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from pathlib import Path
from typing import Sequence

from . import io
from .classes import CLASS_NAMES
from .classify import AUGMENTS, LEVELS, LOSSES, ClassifyConfig, check_config, config_from_args, input_size, prepare_data, train_classifier
from .errors import ArgumentParser, InputError, cli_entry
from .visualize import CONFUSION_COLUMNS, PER_CLASS_AP_COLUMNS, RESULTS_COLUMNS

__all__ = [
    "STUDY_BACKBONES",
    "config_name",
    "grid",
    "is_finished",
    "result_tables",
    "write_results",
    "run_ablation",
    "build_parser",
    "main",
]

#: The companion study's six backbones (its NFNet as the README's L0).
STUDY_BACKBONES: tuple[str, ...] = ("nfnet_l0", "resnet50", "inception_v3", "efficientnet_b0", "efficientnet_b3", "efficientnet_b5")
# Settings that do not change a run's result.
_NOT_COMPARED = ("out", "device", "workers")


def config_name(cfg: ClassifyConfig) -> str:
    """Folder name of a grid configuration.

    >>> config_name(ClassifyConfig(level="cell", backbone="resnet50", loss="focal", augment="cutmix"))
    'cell-resnet50-focal-cutmix'
    """
    return f"{cfg.level}-{cfg.backbone}-{cfg.loss}-{cfg.augment}"


def grid(base: ClassifyConfig, backbones: Sequence[str], losses: Sequence[str], augments: Sequence[str], results_dir: str | Path) -> list[tuple[str, ClassifyConfig]]:
    """Every (name, config) of the grid, backbone-major, each with ``out`` = ``RESULTS/<name>``.
    Every value is checked first (:class:`InputError` naming the bad one)."""
    if not backbones or not losses or not augments:
        raise InputError("--backbones, --losses and --augments each need at least one value")
    out = []
    for backbone in dict.fromkeys(backbones):
        for loss in dict.fromkeys(losses):
            for augment in dict.fromkeys(augments):
                cfg = dataclasses.replace(base, backbone=backbone, loss=loss, augment=augment)
                cfg = dataclasses.replace(cfg, out=str(Path(results_dir) / config_name(cfg)))
                check_config(cfg, check_paths=False)
                out.append((config_name(cfg), cfg))
    return out


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in _NOT_COMPARED}


def is_finished(cfg: ClassifyConfig) -> dict | None:
    """The ``eval.json`` of a configuration's run when it finished with these settings, else None."""
    path = Path(cfg.out) / "eval.json"
    if not path.is_file():
        return None
    try:
        result = io.read_json(path)
    except InputError:
        return None
    saved = result.get("config") if isinstance(result, dict) else None
    if not isinstance(saved, dict) or _comparable(saved) != _comparable(dataclasses.asdict(cfg)):
        return None
    return result


# --------------------------------------------------------------------------- tables
def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _fmt(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.6g}"


def result_tables(results: Sequence[tuple[str, dict]]) -> tuple[list[list], list[list], list[list]]:
    """Rows of ``results.csv``, ``per_class_ap.csv`` and ``confusion.csv`` from the
    ``eval.json`` of each configuration (missing values as empty strings).

    >>> ev = {"level": "image", "backbone": "resnet50", "loss": "bce", "augment": "standard", "channels": "green",
    ...       "input_size": 64, "epochs": 2, "macro_f1": 0.5, "macro_f1_tuned": 0.75, "macro_ap": None, "train_seconds": 3.25,
    ...       "per_class": [{"id": k, "name": CLASS_NAMES[k], "ap": None, "tn": 1, "fp": 0, "fn": 0, "tp": 0} for k in range(19)]}
    >>> rows, ap, conf = result_tables([("c", ev)])
    >>> rows[0]
    ['c', 'image', 'resnet50', 'bce', 'standard', 'green', 64, 2, '0.5', '0.75', '', '3.25']
    >>> ap[0], conf[0]
    (['c', 0, 'Nucleoplasm', ''], ['c', 0, 'Nucleoplasm', 1, 0, 0, 0])
    """
    rows, ap_rows, confusion_rows = [], [], []
    for name, ev in results:
        rows.append([name, ev["level"], ev["backbone"], ev["loss"], ev["augment"], ev["channels"], ev["input_size"], ev["epochs"], _fmt(ev["macro_f1"]), _fmt(ev["macro_f1_tuned"]), _fmt(ev["macro_ap"]), _fmt(ev["train_seconds"])])
        for c in ev["per_class"]:
            ap_rows.append([name, c["id"], c["name"], _fmt(c["ap"])])
            confusion_rows.append([name, c["id"], c["name"], c["tn"], c["fp"], c["fn"], c["tp"]])
    return rows, ap_rows, confusion_rows


def _save_figure(fig, path: str | Path) -> None:
    """Write a matplotlib Figure as PNG (atomically)."""
    with io.atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=130)


def write_results(results: Sequence[tuple[str, dict]], first: ClassifyConfig, results_dir: str | Path) -> None:
    """Write ``results.csv``, ``per_class_ap.csv``, ``confusion.csv``, ``results.md``,
    ``metrics.png`` and ``per_class_ap.png`` (tables and figures of :mod:`hpaseg.visualize`,
    the same the Classifier-Study notebook shows)."""
    from . import visualize as viz

    results_dir = Path(results_dir)
    rows, ap_rows, confusion_rows = result_tables(results)
    io.write_csv_rows(results_dir / "results.csv", RESULTS_COLUMNS, rows)
    io.write_csv_rows(results_dir / "per_class_ap.csv", PER_CLASS_AP_COLUMNS, ap_rows)
    io.write_csv_rows(results_dir / "confusion.csv", CONFUSION_COLUMNS, confusion_rows)
    parsed = viz.ablation_results([dict(zip(RESULTS_COLUMNS, map(str, r))) for r in rows], source=str(results_dir / "results.csv"))
    settings = f"{first.level} level, {first.channels}, {input_size(first)} px, {_count(first.epochs, 'epoch')}, batch {first.batch_size}, lr {first.lr:g}, seed {first.seed}"
    n_val = max(ev["n_val"] for _, ev in results)
    note = (
        f"Classifier study ({settings}); scored on the validation split ({_count(n_val, first.level)}). "
        "Macro means are over the classes with positives in the validation split; the tuned thresholds are fit on that same split (optimistic). "
        "Best macro AP first."
    )
    with io.atomic_write(results_dir / "results.md") as fh:
        fh.write(note + "\n\n" + viz.results_markdown(parsed) + "\n")
    short = f"{first.level} level, {input_size(first)} px, {_count(first.epochs, 'epoch')}"
    _save_figure(viz.plot_ablation_metrics(parsed, title=f"Classifier study, {short}: validation scores (best macro AP on top)"), results_dir / "metrics.png")
    configs, ap = viz.per_class_ap_matrix([dict(zip(PER_CLASS_AP_COLUMNS, map(str, r))) for r in ap_rows], source=str(results_dir / "per_class_ap.csv"))
    _save_figure(viz.plot_ap_heatmap(configs, ap, title=f"Per-class AP on the validation split, {short} (– : no positive sample)"), results_dir / "per_class_ap.png")


# --------------------------------------------------------------------------- the grid
def run_ablation(configs: Sequence[tuple[str, ClassifyConfig]], results_dir: str | Path, *, progress: bool = True) -> list[tuple[str, dict]]:
    """Run (or skip, or resume) every configuration, then write the result files.

    Returns
    -------
    list of (name, eval dict), in grid order.
    """
    results_dir = Path(results_dir)
    data = None
    results = []
    for index, (name, cfg) in enumerate(configs, start=1):
        done = is_finished(cfg)
        if done is not None:
            print(f"[{index}/{len(configs)}] {name}: finished, skipped")
            results.append((name, done))
            continue
        if data is None:  # same level, sizes, channels and data for the whole grid: read once
            data = prepare_data(cfg, progress=progress)
        print(f"[{index}/{len(configs)}] {name}")
        started = time.perf_counter()
        results.append((name, train_classifier(cfg, resume=True, progress=progress, data=data)))
        print(f"[{index}/{len(configs)}] {name}: done in {time.perf_counter() - started:.0f} s")
    write_results(results, configs[0][1], results_dir)
    return results


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg ablation``."""
    from .models.classifier import BACKBONES

    d = ClassifyConfig()
    parser = ArgumentParser(prog="hpaseg ablation", description="Run the classifier study's grid (backbones x losses x augmentations) with one shared budget and seed.")
    g = parser.add_argument_group("grid")
    g.add_argument("--level", required=True, help=f"{' or '.join(LEVELS)}")
    g.add_argument("--backbones", nargs="+", default=list(STUDY_BACKBONES), help=f"any of {', '.join(BACKBONES)} (default: the study's {' '.join(STUDY_BACKBONES)})")
    g.add_argument("--losses", nargs="+", default=list(LOSSES), help=f"any of {', '.join(LOSSES)} (default: both)")
    g.add_argument("--augments", nargs="+", default=list(AUGMENTS), help=f"any of {', '.join(AUGMENTS)} (default: both)")
    g.add_argument("--channels", default=None, help="green or rgby (default: green at image level, rgby at cell level)")
    g.add_argument("--pretrained", default=None, help="'imagenet' or a timm checkpoint file (only with a single backbone)")
    g = parser.add_argument_group("data and output")
    g.add_argument("--dataset", required=True, help="folder with train.json/val.json from hpaseg propagate")
    g.add_argument("--data", required=True, help="folder of the training images")
    g.add_argument("--masks", default=None, help="folder of {ID}_cellmask.png (needed for --level cell)")
    g.add_argument("--out", required=True, help="results folder: one run folder per configuration, results.csv, results.md, plots")
    g = parser.add_argument_group("shared budget")
    g.add_argument("--image-size", type=int, default=d.image_size, help=f"image level: input side in px (default {d.image_size})")
    g.add_argument("--crop-size", type=int, default=d.crop_size, help=f"cell level: crop side in px (default {d.crop_size})")
    g.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs of every configuration (default {d.epochs})")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help=f"samples per step (default {d.batch_size})")
    g.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr})")
    g.add_argument("--seed", type=int, default=d.seed, help=f"seed of every configuration (default {d.seed})")
    g = parser.add_argument_group("hardware")
    g.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    g.add_argument("--workers", type=int, default=None, help="data-loader processes (default: CPUs - 1, at most 8)")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE", help="override config keys of every configuration (see hpaseg classify)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


@cli_entry("ablation")
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg ablation``."""
    import torch

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.pretrained not in (None, "imagenet") and len(set(args.backbones)) > 1:
        raise InputError(f"--pretrained {args.pretrained}: one checkpoint file cannot serve {len(set(args.backbones))} backbones; use 'imagenet' or one backbone")
    base = config_from_args(args, backbone=args.backbones[0], loss=args.losses[0], augment=args.augments[0], out=args.out)
    configs = grid(base, args.backbones, args.losses, args.augments, args.out)
    check_config(configs[0][1])  # folders and files, before anything is written
    results = run_ablation(configs, args.out, progress=not args.quiet)
    width = max(len(n) for n, _ in results)
    for name, ev in results:
        f = lambda v: "  n/a " if v is None else f"{v:.4f}"  # noqa: E731
        print(f"{name:<{width}}  macro-F1 {f(ev['macro_f1'])}  tuned {f(ev['macro_f1_tuned'])}  macro AP {f(ev['macro_ap'])}  {ev['train_seconds']:.0f} s")
    print(f"wrote {Path(args.out) / 'results.csv'}, results.md, per_class_ap.csv, confusion.csv, metrics.png, per_class_ap.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
