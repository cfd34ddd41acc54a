"""Every route of hpaseg on a synthetic set with per-cell truth, scored side by side: the
learning check behind ``hpaseg demo`` and ``python -m hpaseg.bench learn``.

Inputs: a folder of ``hpaseg synth`` (``train/``, ``test/``, ``train.csv``, ``truth.csv``,
``cell_labels.csv``), its segmentation (``MASKS/train``, ``MASKS/test``) and the dataset
propagated from it. Routes:

* baselines (:mod:`hpaseg.evaluation.baselines`): the class *prior* (no training),
  *random* labels, and the *weak-label* baseline: each segmented test cell given its
  image's **true** labels (which a model never sees), as train.csv writes them
  (Negative only for images with no other class);
* ``cell (descriptors, S)``: the cell classifier trained with supervision ``S``
  (:mod:`hpaseg.weak`), scored on the segmented test cells;
* ``cell (CNN, refined)``, when asked (:attr:`RoutesConfig.cnn`, :data:`CNN_CPU`): the
  same weak-supervision trainer with a CNN on cell crops (rounds, image head on its
  pooled features, refit, score rule), scored the same way;
* ``Mask R-CNN``: trained on the refined run's cleaned cell labels
  (:func:`hpaseg.labels.relabel_dataset`) and, as its label head's teacher, that run's
  probabilities of the training cells (``cell_probabilities.csv``); its own cells and labels;
* ``hybrid``: Mask R-CNN's cells labelled by the cell classifier, beside the weak-label
  baseline on those cells (:data:`WEAK_MASKRCNN`: the hybrid's lead over :data:`WEAK`
  can come from better cells rather than better labels).

Each route gets the competition mAP, the per-cell macro AP (every true cell's scores
against its true labels, :func:`hpaseg.evaluation.cell_targets`: missed true cells score
0, extra predicted cells count as false detections) and its training seconds, and two
diagnostics of its own submission (:func:`diagnose`): *oracle-image* (its (cell, class)
scores kept only for the image's true classes: perfect image recognition with its ranking
of cells) and *weak-label on its cells* (its cells, each with all the image's true labels
at confidence 1). With the oracle's 1.0 they split the route's loss: ``1 - weak_on_cells``
is about its cells (segmentation, and treating every cell of an image alike),
``oracle_image - mAP`` is image recognition, and ``oracle_image`` against
``weak_on_cells`` is how well it ranks the cells within an image (cell localisation).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..classes import NUM_CLASSES, image_labels_of_cells
from ..classification import CellClassifierPredictor, ClassifyConfig, cell_preset, load_classifier, train_classifier
from ..classification.cell_trainer import REFINED_LABELS
from ..detection import MaskRCNNPredictor, TrainConfig, train_torchvision
from ..evaluation import cell_targets, competition_map, evaluate_scores
from ..evaluation.baselines import (
    oracle_labels,
    prior_confidences,
    prior_labels,
    random_labels,
    restrict_to_image_labels,
    weak_labels_on_cells,
)
from ..labels import LabelRule, border_cells, cell_labels, relabel_dataset
from ..submission import CellLabel, SubmissionRow, build_submission, read_submission, submission_row, write_submission
from ..weak import ScoreRule, fuse_scores
from .predict import RescoredPredictor, predict_folder, write_predictions

__all__ = [
    "PRIOR",
    "RANDOM",
    "WEAK",
    "WEAK_MASKRCNN",
    "CNN_CPU",
    "cnn_route_name",
    "RoutesConfig",
    "RouteScore",
    "score_rows",
    "baseline_scores",
    "weak_label_score",
    "diagnose",
    "CellProbabilities",
    "cell_probabilities",
    "rows_by_rule",
    "score_rule_variants",
    "run_routes",
    "routes_table",
]

log = logging.getLogger(__name__)

PRIOR = "prior (no training)"
RANDOM = "random labels"
WEAK = "weak-label baseline (true image labels on every cell)"
WEAK_MASKRCNN = "weak-label baseline on Mask R-CNN's cells"

#: Mask R-CNN settings of the CPU routes: ResNet18-FPN (the light backbone: the CPU budget
#: buys iterations, not depth; the GPU preset keeps DenseNet121 / ResNet101 / ResNeXt101),
#: 256 px, 2 images per iteration, ``base_lr`` 0.16 per 16 images (0.02 at batch 2), 50
#: warm-up iterations, 64 RoIs per image, FPN levels and heads of 64 channels. ``base_lr``
#: chosen on a validation split of the training images (DenseNet121, 300 iterations on
#: propagated labels): validation mAP 0.24 at 0.16, 0.12 at 0.08; fewer RoIs per image than
#: detectron2's 512 make an iteration faster; 64 channels instead of 256 make it three times
#: faster (0.6 s instead of 2 s on 2 cores), chosen on the demo's seed 1 (not a benchmark
#: seed): 120 iterations at 64 channels 0.41 mAP, 80 at 128 0.32, 30 at 256 0.06, in about
#: the same two minutes.
MASKRCNN_CPU: dict = {
    "backbone": "resnet18_fpn",
    "image_size": 256,
    "batch_size": 2,
    "base_lr": 0.16,
    "warmup_iters": 50,
    "roi_batch_size": 64,
    "fpn_channels": 64,
}
#: Mask R-CNN iterations of the CPU routes: about 0.6 s an iteration on 2 cores (ResNet18-FPN,
#: 64 RoIs per image, 64 channels), so that training, the label head's one-minute fit on the
#: cells included, stays within 10 minutes (``bench learn``: benchmarks/RESULTS.md).
MASKRCNN_CPU_ITERS = 600

#: The CNN cell route at CPU scale (``bench learn --cnn``): ResNet18 from random
#: initialisation on 64-px RGBY crops, 4 epochs a round (refined: 3 rounds, then the refit's
#: 3), AdamW 1e-3, steps of up to 64 cells; about 125 crops/s of training on 2 cores. Set
#: before measuring, not tuned on the benchmark: what a GPU changes is the crop size (128),
#: the epochs and the ImageNet weights of :data:`hpaseg.classification.CELL_PRESETS` ``gpu``.
CNN_CPU: dict = {
    "backbone": "resnet18",
    "crop_size": 64,
    "epochs": 4,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "batch_size": 64,
    "supervision": "refined",
}


@dataclass(frozen=True)
class RoutesConfig:
    """Which routes to train and how (defaults: the CPU settings of ``hpaseg classify --level cell``).

    Attributes
    ----------
    supervisions : tuple of str
        Cell-classifier runs to train, one per supervision; the ``refined`` one (or the
        last) labels the hybrid route and cleans Mask R-CNN's training labels.
    maskrcnn_iters : int
        Mask R-CNN iterations (0: no Mask R-CNN or hybrid route).
    maskrcnn : dict
        Other :class:`hpaseg.detection.TrainConfig` settings.
    cnn : dict
        Settings of a CNN cell-classifier route (e.g. :data:`CNN_CPU`) over the CPU preset's;
        empty: no such route.
    """

    out: str
    data: str
    masks: str
    dataset: str
    supervisions: tuple[str, ...] = ("refined",)
    classifier: dict = dataclasses.field(default_factory=dict)
    maskrcnn_iters: int = 0
    maskrcnn: dict = dataclasses.field(default_factory=dict)
    cnn: dict = dataclasses.field(default_factory=dict)
    workers: int = 2
    seed: int = 0


@dataclass
class RouteScore:
    """One route's figures."""

    route: str
    mAP: float
    cell_macro_ap: float
    train_seconds: float | None = None
    submission: str | None = None
    oracle_image: float | None = None  # mAP of its scores kept for the true image classes only
    weak_on_cells: float | None = None  # mAP of its cells with every true image label at confidence 1


def score_rows(truth: Sequence[SubmissionRow], rows: Sequence[SubmissionRow]) -> tuple[float, float]:
    """``(competition mAP, per-cell macro AP)`` of a submission against the truth."""
    y_true, y_score = cell_targets(truth, rows)
    return float(competition_map(truth, rows).mAP), float(evaluate_scores(y_true, y_score)["macro_ap"] or 0.0)


def _cells_of(mask_dir: Path, image_ids: Sequence[str]) -> dict[str, list[int]]:
    return {i: [int(v) for v in np.unique(io.read_mask(io.mask_paths(mask_dir, i)[0])) if v != 0] for i in image_ids}


def _write(out_csv: Path, mask_dir: Path, ids: Sequence[str], cells: Sequence[CellLabel]) -> list[SubmissionRow]:
    rows = build_submission(((i, io.read_mask(io.mask_paths(mask_dir, i)[0])) for i in ids), cells)
    write_submission(out_csv, rows)
    return rows


def _true_image_labels(data: Path, image_ids: Sequence[str], *, kaggle: bool = True) -> dict[str, set[int]]:
    """Each image's true labels from its true cells: as the Kaggle ``train.csv`` writes them
    (``kaggle``: Negative only for images without any other class,
    :func:`hpaseg.classes.image_labels_of_cells`), or every class its cells show."""
    true_cells = io.read_cell_labels_csv(data / "cell_labels.csv")
    return {
        i: set(image_labels_of_cells(true_cells[i].values())) if kaggle else set().union(*true_cells[i].values())
        for i in image_ids
        if i in true_cells
    }


def diagnose(
    scores: Sequence[RouteScore],
    truth: Sequence[SubmissionRow],
    present: dict[str, set[int]],
    image_labels: dict[str, set[int]],
) -> list[RouteScore]:
    """Each route with its two diagnostics (module docstring), from its submission file.

    Parameters
    ----------
    scores : sequence of RouteScore
        Routes with a ``submission``; others are returned unchanged.
    truth : sequence of SubmissionRow
        The test images' true cells.
    present : dict of str to set of int
        Every class each test image's true cells show (Negative included where one
        cell is Negative): what the oracle-image keeps.
    image_labels : dict of str to set of int
        Each test image's true labels as train.csv writes them: what the weak-label
        baseline hands every cell.
    """
    out = []
    for s in scores:
        if s.submission is not None:
            rows = read_submission(s.submission)
            s = dataclasses.replace(
                s,
                oracle_image=float(competition_map(truth, restrict_to_image_labels(rows, present)).mAP),
                weak_on_cells=float(competition_map(truth, weak_labels_on_cells(rows, image_labels)).mAP),
            )
        out.append(s)
    return out


def baseline_scores(cfg: RoutesConfig, truth: Sequence[SubmissionRow]) -> list[RouteScore]:
    """The prior, random and weak-label baselines on the segmented test cells."""
    data, masks, out = Path(cfg.data), Path(cfg.masks) / "test", Path(cfg.out)
    test_ids = io.list_image_ids(data / "test")
    table = io.read_table(Path(cfg.dataset) / "cells.csv", ["ID", "split", "Label"])
    prior = prior_confidences(table.loc[table["split"] == "train", "Label"].tolist())
    cells = _cells_of(masks, test_ids)
    tables = {
        PRIOR: ("prior_submission.csv", prior_labels(cells, prior)),
        RANDOM: ("random_submission.csv", random_labels(cells, np.random.default_rng(cfg.seed))),
    }
    scores = []
    for name, (csv_name, labelled) in tables.items():
        rows = _write(out / csv_name, masks, test_ids, labelled)
        scores.append(RouteScore(name, *score_rows(truth, rows), None, str(out / csv_name)))
    scores.append(weak_label_score(cfg, truth, masks, WEAK, "weak_label_submission.csv"))
    return scores


def weak_label_score(
    cfg: RoutesConfig, truth: Sequence[SubmissionRow], mask_dir: Path, name: str, csv_name: str
) -> RouteScore:
    """The weak-label baseline on the cells of ``mask_dir``: each given its test image's true labels."""
    test_ids = io.list_image_ids(Path(cfg.data) / "test")
    labelled = oracle_labels(_cells_of(mask_dir, test_ids), _true_image_labels(Path(cfg.data), test_ids))
    rows = _write(Path(cfg.out) / csv_name, mask_dir, test_ids, labelled)
    return RouteScore(name, *score_rows(truth, rows), None, str(Path(cfg.out) / csv_name))


@dataclass
class CellProbabilities:
    """A cell classifier's probabilities of the cells of one image."""

    image_id: str
    label_image: np.ndarray
    ids: np.ndarray
    p: np.ndarray  # (N, 19)
    q: np.ndarray | None = None  # (19,): the run's image head, if it has one


def cell_probabilities(run: str | Path, data_dir: str | Path, mask_dir: str | Path) -> list[CellProbabilities]:
    """Probabilities of a cell-level run for every cell of every image of ``data_dir``
    (computed once, so that score rules can be compared without re-describing cells)."""
    classifier = load_classifier(run, level="cell")
    out = []
    for image_id, image in io.iter_rgby(data_dir, io.list_image_ids(data_dir)):
        label_image = io.read_mask(io.mask_paths(mask_dir, image_id)[0])
        p, q, ids = classifier.cell_and_image_probabilities(image, label_image)
        out.append(CellProbabilities(image_id, label_image, ids, p, q))
    return out


def rows_by_rule(
    probabilities: Sequence[CellProbabilities], score_rule: ScoreRule = ScoreRule(), rule: LabelRule = LabelRule()
) -> list[SubmissionRow]:
    """Submission rows of cached probabilities under a score rule and a label rule."""
    rows = []
    for c in probabilities:
        on_border = np.isin(c.ids, list(border_cells(c.label_image)))
        s = fuse_scores(c.p, c.q, score_rule, on_border=on_border) if len(c.ids) else np.zeros((0, NUM_CLASSES))
        scores = {
            int(cell): cell_labels({k: float(s[i, k]) for k in range(NUM_CLASSES)}, rule)
            for i, cell in enumerate(c.ids)
        }
        rows.append(submission_row(c.image_id, c.label_image, scores))
    return rows


def score_rule_variants() -> list[tuple[str, ScoreRule, LabelRule]]:
    """The score rules the benchmarks compare, by name: fusion (product, cell, image, mean
    with w 0.1-0.5) x Negative (max, model), image pooling (lse, mean) x image model weight
    (0-1), the default with a score floor of 0.05, and the default with the scores of
    cells cut by the image border multiplied by 0.5 or 0.25.

    >>> len(score_rule_variants())
    27
    """
    rules = [
        (f"fusion {f}, Negative {n}", ScoreRule(fusion=f, negative=n), LabelRule())
        for f in ("product", "cell", "image")
        for n in ("max", "model")
    ]
    rules += [
        (f"fusion mean w {w}, Negative {n}", ScoreRule(fusion="mean", weight=w, negative=n), LabelRule())
        for w in (0.1, 0.2, 0.3, 0.5)
        for n in ("max", "model")
    ]
    rules += [
        (f"image pooling {p}, image model weight {a}", ScoreRule(image_pooling=p, image_model_weight=a), LabelRule())
        for p in ("lse", "mean")
        for a in (0.0, 0.3, 0.5, 0.7, 1.0)
    ]
    d = ScoreRule()
    rules.append(
        (f"fusion {d.fusion} w {d.weight}, Negative {d.negative}, score floor 0.05", d, LabelRule(min_score=0.05))
    )
    rules += [(f"border cells x {f}", dataclasses.replace(d, border_factor=f), LabelRule()) for f in (0.5, 0.25)]
    return rules


def cnn_route_name(cnn: dict) -> str:
    """The route name of a CNN cell classifier's settings.

    >>> cnn_route_name(CNN_CPU)
    'cell classifier (resnet18, refined)'
    """
    return f"cell classifier ({cnn['backbone']}, {cnn.get('supervision', 'refined')})"


def _cell_run(cfg: RoutesConfig, run: Path, settings: dict, progress: bool) -> Path:
    classify = ClassifyConfig(
        level="cell",
        channels="rgby",
        dataset=cfg.dataset,
        data=str(Path(cfg.data) / "train"),
        masks=str(Path(cfg.masks) / "train"),
        out=str(run),
        device="cpu",
        workers=cfg.workers,
        seed=cfg.seed,
        **settings,
    )
    log.info("   cell classifier: %s, %s supervision", classify.backbone, classify.supervision)
    train_classifier(classify, resume=True, progress=progress)
    return run


def _train_cell_runs(cfg: RoutesConfig, progress: bool) -> dict[str, Path]:
    """The descriptors runs, one per supervision, by supervision."""
    return {
        supervision: _cell_run(
            cfg,
            Path(cfg.out) / f"cell_{supervision}",
            {**cell_preset("cpu"), **cfg.classifier, "supervision": supervision},
            progress,
        )
        for supervision in cfg.supervisions
    }


def _scored_cell_run(cfg: RoutesConfig, name: str, run: Path, tag: str, truth) -> RouteScore:
    rows = rows_by_rule(cell_probabilities(run, Path(cfg.data) / "test", Path(cfg.masks) / "test"))
    write_submission(Path(cfg.out) / f"{tag}_submission.csv", rows)
    seconds = io.read_json(run / "eval.json")["train_seconds"]
    return RouteScore(name, *score_rows(truth, rows), seconds, str(Path(cfg.out) / f"{tag}_submission.csv"))


def _maskrcnn(cfg: RoutesConfig, labeller_run: Path, progress: bool) -> tuple[Path, float]:
    """Train Mask R-CNN on the dataset relabelled by ``labeller_run``; returns the run and its seconds."""
    out = Path(cfg.out)
    cleaned = out / "dataset_refined"
    if not (cleaned / "relabel.json").is_file():
        relabel_dataset(cfg.dataset, labeller_run / REFINED_LABELS, cleaned)
    run = out / "maskrcnn"
    settings = {**MASKRCNN_CPU, **cfg.maskrcnn}
    train = TrainConfig(
        dataset=str(cleaned),
        data=str(Path(cfg.data) / "train"),
        out=str(run),
        device="cpu",
        max_iter=cfg.maskrcnn_iters,
        checkpoint_period=max(1, cfg.maskrcnn_iters // 4),
        eval_period=0,
        workers=0,
        log_period=10,
        seed=cfg.seed,
        teacher=str(labeller_run),
        **settings,
    )
    record = run / "route_seconds.json"  # the training's seconds, for reruns that reuse the run
    if not (run / "model_final.pth").is_file():
        started = time.perf_counter()
        train_torchvision(train, resume=True, progress=progress)
        io.write_json(record, {"train_seconds": time.perf_counter() - started})
    return run, float(io.read_json(record)["train_seconds"]) if record.is_file() else float("nan")


def _predicted(name: str, predictor, cfg: RoutesConfig, truth, seconds: float | None, tag: str) -> RouteScore:
    out = Path(cfg.out)
    rows = write_predictions(
        predict_folder(predictor, Path(cfg.data) / "test", progress=False),
        out / f"{tag}_submission.csv",
        save_masks=out / f"{tag}_masks",
    )
    return RouteScore(name, *score_rows(truth, rows), seconds, str(out / f"{tag}_submission.csv"))


def run_routes(
    cfg: RoutesConfig, *, progress: bool = False, step: Callable[[str], None] = log.info
) -> list[RouteScore]:
    """Train and score every route (module docstring); writes ``OUT/routes.csv``.

    Parameters
    ----------
    cfg : RoutesConfig
    progress : bool
        Progress bars of the trainings.
    step : callable
        Called with a line before each stage.
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    truth = read_submission(Path(cfg.data) / "truth.csv")
    step("baselines (no training): class prior, random labels, weak labels (the test images' true labels)")
    scores = baseline_scores(cfg, truth)
    step(f"cell classifier (descriptors), supervision {', '.join(cfg.supervisions)}")
    runs = _train_cell_runs(cfg, progress)
    for supervision, run in runs.items():
        name = f"cell classifier (descriptors, {supervision})"
        scores.append(_scored_cell_run(cfg, name, run, f"cell_{supervision}", truth))
    if cfg.cnn:
        settings = {**cell_preset("cpu"), **cfg.classifier, **cfg.cnn}
        step(f"{cnn_route_name(settings)}: CNN on {settings.get('crop_size')}-px cell crops")
        run = _cell_run(cfg, out / "cell_cnn", settings, progress)
        scores.append(_scored_cell_run(cfg, cnn_route_name(settings), run, "cell_cnn", truth))
    if cfg.maskrcnn_iters > 0:
        labeller = runs.get("refined", list(runs.values())[-1])
        step(f"Mask R-CNN ({cfg.maskrcnn_iters} iterations) on the cleaned cell labels, and the hybrid route")
        run, seconds = _maskrcnn(cfg, labeller, progress)
        finder = MaskRCNNPredictor.from_checkpoint(run / "model_final.pth", device="cpu")
        scores.append(_predicted("Mask R-CNN (its own cells and labels)", finder, cfg, truth, seconds, "maskrcnn"))
        hybrid = RescoredPredictor(finder, CellClassifierPredictor.from_runs(labeller))
        scores.append(
            _predicted("hybrid (Mask R-CNN cells, cell classifier labels)", hybrid, cfg, truth, seconds, "hybrid")
        )
        # the hybrid's yardstick: true image labels on the same cells
        scores.append(
            weak_label_score(cfg, truth, out / "maskrcnn_masks", WEAK_MASKRCNN, "weak_label_maskrcnn_submission.csv")
        )
    test_ids = io.list_image_ids(Path(cfg.data) / "test")
    scores = diagnose(
        scores,
        truth,
        _true_image_labels(Path(cfg.data), test_ids, kaggle=False),
        _true_image_labels(Path(cfg.data), test_ids),
    )
    io.write_table(out / "routes.csv", routes_table(scores))
    return scores


def routes_table(scores: Sequence[RouteScore]) -> pd.DataFrame:
    """One row per route: route, mAP, cell_macro_ap, train_seconds, submission, oracle_image, weak_on_cells."""
    return pd.DataFrame([dataclasses.asdict(s) for s in scores])
