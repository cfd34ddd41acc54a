"""The classifier study's grid (``hpaseg ablation``): backbones x losses x augmentations, with
one shared budget (the same epochs, batch size, hence steps) and seed.

Each configuration ``{level}-{backbone}-{loss}-{augment}`` is a classifier run
(:func:`hpaseg.classification.train_classifier`) in ``RESULTS/<config>/``. The grid is
resumable per configuration: one whose ``eval.json`` was written with the same settings
is skipped; any other resumes from its last checkpoint. The data are read and cached
once for the whole grid. Then:

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

The tables are those of :mod:`hpaseg.evaluation.study`, the figures those of
:mod:`hpaseg.viz.study`, which the ``eval_notebooks/Classifier-Study.ipynb`` notebook uses
on the same files. All metrics are on the validation split (``val.json``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from .. import io
from ..classification import (
    ClassifyConfig,
    check_config,
    input_size,
    prepare_data,
    train_classifier,
)
from ..errors import InputError
from ..evaluation.study import ablation_results, per_class_ap_matrix, result_tables
from ..viz import plot_ablation_metrics, plot_ap_heatmap, results_markdown

__all__ = ["STUDY_BACKBONES", "config_name", "grid", "is_finished", "write_results", "run_ablation"]

log = logging.getLogger(__name__)

#: The companion study's six backbones (its NFNet as the README's L0).
STUDY_BACKBONES: tuple[str, ...] = (
    "nfnet_l0",
    "resnet50",
    "inception_v3",
    "efficientnet_b0",
    "efficientnet_b3",
    "efficientnet_b5",
)


# Settings that do not change a run's result.
_NOT_COMPARED = ("out", "device", "workers")


def config_name(cfg: ClassifyConfig) -> str:
    """Folder name of a grid configuration.

    >>> config_name(ClassifyConfig(level="cell", backbone="resnet50", loss="focal", augment="cutmix"))
    'cell-resnet50-focal-cutmix'
    """
    return f"{cfg.level}-{cfg.backbone}-{cfg.loss}-{cfg.augment}"


def grid(
    base: ClassifyConfig,
    backbones: Sequence[str],
    losses: Sequence[str],
    augments: Sequence[str],
    results_dir: str | Path,
) -> list[tuple[str, ClassifyConfig]]:
    """Every (name, config) of the grid, backbone-major, each with ``out`` = ``RESULTS/<name>``.
    Every value is checked first (:class:`InputError` naming the bad one)."""
    if not backbones or not losses or not augments:
        raise InputError(
            "backbones, losses and augments each need at least one value", param=("backbones", "losses", "augments")
        )
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


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _save_figure(fig, path: str | Path) -> None:
    """Write a matplotlib Figure as PNG (atomically)."""
    with io.atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=130)


def write_results(results: Sequence[tuple[str, dict]], first: ClassifyConfig, results_dir: str | Path) -> None:
    """Write ``results.csv``, ``per_class_ap.csv``, ``confusion.csv``, ``results.md``,
    ``metrics.png`` and ``per_class_ap.png`` (the tables of :mod:`hpaseg.evaluation.study`
    and the figures of :mod:`hpaseg.viz.study`, the same the Classifier-Study notebook shows)."""
    results_dir = Path(results_dir)
    table, ap_table, confusion_table = result_tables(results)
    io.write_table(results_dir / "results.csv", table)
    io.write_table(results_dir / "per_class_ap.csv", ap_table)
    io.write_table(results_dir / "confusion.csv", confusion_table)
    parsed = ablation_results(table.astype(str), source=str(results_dir / "results.csv"))
    settings = f"{first.level} level, {first.channels}, {input_size(first)} px, {_count(first.epochs, 'epoch')}, batch {first.batch_size}, lr {first.lr:g}, seed {first.seed}"
    n_val = max(ev["n_val"] for _, ev in results)
    note = (
        f"Classifier study ({settings}); scored on the validation split ({_count(n_val, first.level)}). "
        "Macro means are over the classes with positives in the validation split; the tuned thresholds are fit on that same split (optimistic). "
        "Best macro AP first."
    )
    with io.atomic_write(results_dir / "results.md") as fh:
        fh.write(note + "\n\n" + results_markdown(parsed) + "\n")
    short = f"{first.level} level, {input_size(first)} px, {_count(first.epochs, 'epoch')}"
    _save_figure(
        plot_ablation_metrics(parsed, title=f"Classifier study, {short}: validation scores (best macro AP on top)"),
        results_dir / "metrics.png",
    )
    configs, ap = per_class_ap_matrix(ap_table.astype(str), source=str(results_dir / "per_class_ap.csv"))
    _save_figure(
        plot_ap_heatmap(configs, ap, title=f"Per-class AP on the validation split, {short} (– : no positive sample)"),
        results_dir / "per_class_ap.png",
    )


def run_ablation(
    configs: Sequence[tuple[str, ClassifyConfig]], results_dir: str | Path, *, progress: bool = True
) -> list[tuple[str, dict]]:
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
            log.info("[%d/%d] %s: finished, skipped", index, len(configs), name)
            results.append((name, done))
            continue
        if data is None:  # same level, sizes, channels and data for the whole grid: read once
            data = prepare_data(cfg, progress=progress)
        log.info("[%d/%d] %s", index, len(configs), name)
        started = time.perf_counter()
        results.append((name, train_classifier(cfg, resume=True, progress=progress, data=data)))
        log.info("[%d/%d] %s: done in %.0f s", index, len(configs), name, time.perf_counter() - started)
    write_results(results, configs[0][1], results_dir)
    return results
