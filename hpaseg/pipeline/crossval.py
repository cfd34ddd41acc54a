"""Cross-validation of the cell classifier on the *training* images of a synthetic set with
per-cell truth: how the score rules and training choices were made without looking at the
test images (``python -m hpaseg.bench cv``).

The training images (``train.json`` and ``val.json`` of the propagated dataset) are split
into ``folds`` groups of images. For each group: the descriptor network is trained as
``hpaseg classify --level cell`` trains it on a CPU (:data:`hpaseg.classification.CELL_PRESETS`,
all rounds, and the image head) on the other groups' image labels, then the held-out
images' cells are scored under each score rule and compared with their per-cell truth
(``cell_labels.csv`` and the true masks of ``hpaseg synth``) by the competition metric,
beside the weak-label baseline (each held-out cell given its image's true labels) and a
diagnostic, :data:`TRUE_IMAGE`: the learned cell probabilities scored with the held-out
images' true labels in place of the image estimate (the default rule otherwise). Its lead
over the weak-label baseline is what the cells' own evidence adds; the default rule's
distance below it is what recognising the image's labels costs.
``train_fraction`` < 1 trains each fold on that share of its images (what holding out a
validation split costs).

Cells are those of the dataset (the segmentation's cells that ``hpaseg propagate`` kept),
described once (the run's descriptor cache).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..classes import image_labels_of_cells
from ..classification import (
    Bag,
    ClassifyConfig,
    bag_probabilities,
    cell_preset,
    copy_bags,
    fit_image_head,
    image_head_probabilities,
    split_bags,
    train_bags,
)
from ..classification.config import check_config
from ..errors import InputError
from ..evaluation import competition_map
from ..evaluation.baselines import oracle_labels
from ..labels import LabelRule
from ..submission import SubmissionRow, build_submission, submission_row
from ..weak import ScoreRule, targets_matrix
from .routes import WEAK, CellProbabilities, rows_by_rule

__all__ = ["TRUE_IMAGE", "CrossValConfig", "truth_rows", "cross_validate"]

log = logging.getLogger(__name__)

#: The diagnostic row of :func:`cross_validate`: learned cells, true image labels.
TRUE_IMAGE = "diagnostic: learned cell probabilities with the true image labels (default rule)"


@dataclass(frozen=True)
class CrossValConfig:
    """What to cross-validate.

    Attributes
    ----------
    data : str
        A folder of ``hpaseg synth`` (``train/``, ``masks/``, ``cell_labels.csv``).
    masks : str
        The segmentation of its training images (``{ID}_cellmask.png``).
    dataset : str
        The dataset ``hpaseg propagate`` made from them.
    folds : int
        Groups of images, >= 2.
    train_fraction : float
        In (0, 1]: the share of each fold's training images used.
    classifier : dict
        Settings over the CPU preset (:func:`hpaseg.classification.cell_preset`).
    """

    data: str
    masks: str
    dataset: str
    folds: int = 5
    train_fraction: float = 1.0
    classifier: dict = dataclasses.field(default_factory=dict)
    workers: int = 2
    seed: int = 0


def truth_rows(data_dir: str | Path, image_ids: Sequence[str]) -> list[SubmissionRow]:
    """The per-cell truth of images of a synthetic set, as submission rows (confidence 1).

    Raises
    ------
    InputError
        ``cell_labels.csv`` or a true mask is missing.
    """
    data_dir = Path(data_dir)
    cells = io.read_cell_labels_csv(data_dir / "cell_labels.csv")
    rows = []
    for image_id in image_ids:
        if image_id not in cells:
            raise InputError(
                f"{data_dir / 'cell_labels.csv'}: no cell of image {image_id}; expected a folder of hpaseg synth"
            )
        mask = io.read_mask(io.mask_paths(data_dir / "masks", image_id)[0])
        rows.append(
            submission_row(image_id, mask, {c: [(k, 1.0) for k in labs] for c, labs in cells[image_id].items()})
        )
    return rows


def _check(cfg: CrossValConfig) -> None:
    if cfg.folds < 2:
        raise InputError(f"folds {cfg.folds}: expected an integer >= 2", param="folds")
    if not 0 < cfg.train_fraction <= 1:
        raise InputError(f"train_fraction {cfg.train_fraction}: expected a number in (0, 1]", param="train_fraction")
    for name in ("data", "masks", "dataset"):
        if not Path(getattr(cfg, name)).is_dir():
            raise InputError(f"{name} {getattr(cfg, name)}: no such folder", param=name)


def _fold_probabilities(
    classify: ClassifyConfig, train: list[Bag], held: list[Bag], masks: Path
) -> list[CellProbabilities]:
    model = train_bags(classify, train)
    heads = image_head_probabilities(fit_image_head(classify, train), held)
    return [
        CellProbabilities(b.image_id, io.read_mask(io.mask_paths(masks, b.image_id)[0]), b.cells, p, q)
        for b, p, q in zip(held, bag_probabilities(model, held), heads)
    ]


def _weak_rows(probabilities: Sequence[CellProbabilities], image_labels: dict[str, set[int]]) -> list[SubmissionRow]:
    """Every cell given its image's true labels at confidence 1 (the weak-label baseline)."""
    cells = oracle_labels({c.image_id: [int(cell) for cell in c.ids] for c in probabilities}, image_labels)
    return build_submission(((c.image_id, c.label_image) for c in probabilities), cells)


def cross_validate(
    cfg: CrossValConfig,
    rules: Sequence[tuple[str, ScoreRule, LabelRule]],
    *,
    progress: bool = False,
    step: Callable[[str], None] = log.info,
) -> pd.DataFrame:
    """Competition mAP of each rule on each held-out fold (module docstring).

    Parameters
    ----------
    cfg : CrossValConfig
    rules : sequence of (name, ScoreRule, LabelRule)
    progress : bool
        A progress bar while describing cells.
    step : callable
        Called with a line as each fold starts.

    Returns
    -------
    DataFrame
        Columns ``rule``, ``fold``, ``mAP``; one row per rule and fold, the weak-label
        baseline's (:data:`WEAK`) and the diagnostic's (:data:`TRUE_IMAGE`) included.
    """
    _check(cfg)
    classify = ClassifyConfig(
        level="cell",
        channels="rgby",
        device="cpu",
        seed=cfg.seed,
        dataset=cfg.dataset,
        data=str(Path(cfg.data) / "train"),
        masks=cfg.masks,
        workers=cfg.workers,
        **{**cell_preset("cpu"), **cfg.classifier},
    )
    check_config(classify, check_paths=False)
    bags = [b for split in split_bags(classify, progress) for b in split]
    ids = sorted(b.image_id for b in bags)
    groups = np.array_split(np.random.default_rng(cfg.seed).permutation(len(ids)), cfg.folds)
    truth = {row.image_id: row for row in truth_rows(cfg.data, ids)}
    present = {i: {p.label for p in row.predictions} for i, row in truth.items()}  # every class of its cells
    image_labels = {i: set(image_labels_of_cells([labels])) for i, labels in present.items()}  # as train.csv
    records = []
    for fold, group in enumerate(groups):
        held_ids = {ids[i] for i in group}
        held = [b for b in bags if b.image_id in held_ids]
        train = copy_bags([b for b in bags if b.image_id not in held_ids])
        if cfg.train_fraction < 1:
            keep = np.random.default_rng((cfg.seed, fold)).permutation(len(train))
            train = [train[i] for i in sorted(keep[: max(1, round(cfg.train_fraction * len(train)))])]
        step(f"fold {fold + 1}/{cfg.folds}: training on {len(train)} images, scoring {len(held)}")
        held_truth = [truth[b.image_id] for b in held]
        probabilities = _fold_probabilities(classify, train, held, Path(cfg.masks))
        for name, score_rule, label_rule in rules:
            m = competition_map(held_truth, rows_by_rule(probabilities, score_rule, label_rule)).mAP
            records.append({"rule": name, "fold": fold, "mAP": float(m)})
        weak = _weak_rows(probabilities, image_labels)
        records.append({"rule": WEAK, "fold": fold, "mAP": float(competition_map(held_truth, weak).mAP)})
        known = [dataclasses.replace(c, q=targets_matrix([sorted(present[c.image_id])])[0]) for c in probabilities]
        m = competition_map(held_truth, rows_by_rule(known, ScoreRule(image_model_weight=1.0))).mAP
        records.append({"rule": TRUE_IMAGE, "fold": fold, "mAP": float(m)})
    return pd.DataFrame(records)
