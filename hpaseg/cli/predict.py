"""``hpaseg predict`` (``python -m hpaseg.predict``): per-cell masks and labels for unseen
images -> Kaggle submission.

Routes, each a predictor run by the one predict loop (:func:`hpaseg.pipeline.predict.predict_folder`):

* Mask R-CNN (``--weights RUN/model_final.pth``): torchvision
  (:class:`hpaseg.detection.MaskRCNNPredictor`) or detectron2
  (:class:`hpaseg.detection.detectron2.Detectron2Predictor`, ``--engine detectron2``);
  the model finds the cells (class-agnostic) and gives each its 19 label probabilities.
  Post-processing and scores: :mod:`hpaseg.detection.postprocess` (``--min-detection-score``,
  ``--nms-iou``, ``--weight-by-detection``).
* Cell classifier (``--classifier RUN --masks MASKS``): the cells of the segmentation
  masks, each classified (:class:`hpaseg.classification.CellClassifierPredictor`); the
  image's probabilities are pooled from its cells (``--image-pooling``) and mixed
  (``--image-model-weight``) with an image model's: an image-level run
  (``--image-classifier``) or the cell run's image head.
* Hybrid (``--weights W --classifier RUN``): Mask R-CNN finds the cells, the cell
  classifier labels them (:class:`hpaseg.pipeline.predict.RescoredPredictor`).

Scores: :class:`hpaseg.weak.ScoreRule` (``--fusion``, ``--fusion-weight``, ``--negative``,
``--image-pooling``, ``--image-model-weight``);
labels: :func:`hpaseg.labels.cell_labels` (``--min-score``, ``--negative-threshold``;
every class of every cell by default).

Job arrays: ``--shard I/N`` predicts only task I's images (the sorted IDs, every N-th from
I) and writes a partial submission; ``hpaseg merge`` joins the N parts into one checked
submission (``slurm/predict-array.sbatch``, ``slurm/merge.sbatch``). ``--resume`` keeps an
``--out`` that exists (written last and atomically, so it is complete): a resubmitted
array redoes only the parts that are missing.
"""

from __future__ import annotations

import argparse
import sys
from argparse import BooleanOptionalAction
from collections.abc import Sequence
from pathlib import Path

from ..classification import CellClassifierPredictor, check_backbone
from ..detection import (
    BACKBONES,
    DEFAULT_BACKBONE,
    PostprocessConfig,
)
from ..errors import InputError
from ..io import check_output_path
from ..labels import LabelRule
from ..pipeline.predict import (
    CELLS_FILE,
    Predictor,
    RescoredPredictor,
    check_images,
    open_maskrcnn,
    predict_folder,
    write_predictions,
)
from ..runtime.hardware import default_device
from ..weak import FUSIONS, IMAGE_POOLINGS, NEGATIVE_RULES, ScoreRule
from .base import ArgumentParser, add_quiet, add_shard, cli_entry, configure_output, parse_shard

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg predict``."""
    parser = ArgumentParser(
        prog="hpaseg predict", description="Predict per-cell masks and labels for images and write a Kaggle submission."
    )
    _add_model_options(parser)
    _add_classifier_options(parser)
    _add_data_and_inference_options(parser)
    _add_postprocess_options(parser)
    add_quiet(parser)
    return parser


def _add_model_options(parser: ArgumentParser) -> None:
    """Mask R-CNN weights and engine."""
    g = parser.add_argument_group("model")
    g.add_argument("--engine", default="torchvision", help="torchvision (default) or detectron2")
    g.add_argument(
        "--backbone",
        default=None,
        help=f"Mask R-CNN: one of {', '.join(BACKBONES)} (default {DEFAULT_BACKBONE}); cell classifier: its backbone (default: the checkpoint's); must match the weights",
    )
    g.add_argument(
        "--weights", default=None, help="Mask R-CNN route: checkpoint from hpaseg train (RUN/model_final.pth)"
    )
    g.add_argument("--config", help="detectron2 engine: the run's config.yaml (default: next to the weights)")


def _add_classifier_options(parser: ArgumentParser) -> None:
    """The cell-classifier and hybrid routes, and the score rule."""
    g = parser.add_argument_group("cell-classifier route (--classifier with --masks; with --weights: hybrid)")
    g.add_argument("--classifier", help="cell-level run of hpaseg classify (RUN or RUN/model_final.pth)")
    g.add_argument(
        "--masks", help="folder of {ID}_cellmask.png of the test images (hpaseg segment); the cells to classify"
    )
    g.add_argument(
        "--image-classifier",
        help="image-level run of hpaseg classify: its probabilities are the image model's (default: the image head of a descriptors run)",
    )
    d = ScoreRule()
    g.add_argument(
        "--fusion",
        default=d.fusion,
        help=f"{', '.join(FUSIONS)}: how cell and image probabilities combine (default {d.fusion})",
    )
    g.add_argument(
        "--fusion-weight",
        type=float,
        default=d.weight,
        help=f"--fusion mean: w in w * p_cell + (1 - w) * p_image (default {d.weight})",
    )
    g.add_argument(
        "--image-pooling",
        default=d.image_pooling,
        help=f"{', '.join(IMAGE_POOLINGS)}: how an image's probabilities come from its cells' (default {d.image_pooling})",
    )
    g.add_argument(
        "--image-model-weight",
        type=float,
        default=d.image_model_weight,
        help=f"a in p_image = (1 - a) * pooled + a * image model, when there is an image model (default {d.image_model_weight})",
    )
    g.add_argument(
        "--border-factor",
        type=float,
        default=d.border_factor,
        help=f"cell-classifier route: scores of cells cut by the image border times this, in [0, 1] (default {d.border_factor})",
    )
    g.add_argument(
        "--negative",
        default=d.negative,
        help=f"{', '.join(NEGATIVE_RULES)}: Negative from the model, from the other classes, or the larger (default {d.negative})",
    )


def _add_data_and_inference_options(parser: ArgumentParser) -> None:
    """Images, outputs, device and the label rule."""
    g = parser.add_argument_group("data and output")
    g.add_argument("--data", required=True, help="folder of {ID}_{red,green,blue,yellow}.png test images")
    g.add_argument("--ids", nargs="+", help="only these image IDs (default: all in --data)")
    g.add_argument("--out", required=True, help="submission CSV to write")
    g.add_argument(
        "--save-masks",
        help="also write {ID}_cellmask.png and cells.csv (ID,cell,label,confidence; with --shard I/N: cells.I-of-N.csv) here",
    )
    g = parser.add_argument_group("job arrays")
    add_shard(g)
    g.add_argument(
        "--resume",
        action="store_true",
        help="keep --out when it exists (a part finished by an earlier run of the same command: a resubmitted "
        "array redoes only the missing parts); merge the parts with 'hpaseg merge'",
    )
    g = parser.add_argument_group("inference")
    g.add_argument("--device", default=default_device(), help="cuda or cpu (default: cuda when available)")
    g.add_argument("--batch-size", type=int, default=2, help="images per forward pass (default 2)")
    g.add_argument("--workers", type=int, default=4, help="image-reading threads (default 4)")
    g.add_argument(
        "--min-score",
        type=float,
        default=LabelRule.min_score,
        help="lowest class score reported (default %(default)s: every class of every cell is ranked)",
    )
    g.add_argument(
        "--negative-threshold",
        type=float,
        default=LabelRule.negative_threshold,
        help="a cell with no class at or above this is also Negative (default %(default)s: off; --negative estimates Negative)",
    )


def _add_postprocess_options(parser: ArgumentParser) -> None:
    """Mask R-CNN post-processing."""
    g = parser.add_argument_group("Mask R-CNN post-processing")
    g.add_argument(
        "--min-detection-score",
        type=float,
        default=PostprocessConfig.min_detection_score,
        help="drop detected cells scoring below this (default %(default)s)",
    )
    g.add_argument(
        "--nms-iou",
        "--group-iou",
        dest="nms_iou",
        type=float,
        default=PostprocessConfig.nms_iou,
        help="a detection whose mask overlaps a better one this much is a duplicate (default %(default)s)",
    )
    g.add_argument(
        "--weight-by-detection",
        action=BooleanOptionalAction,
        default=PostprocessConfig.weight_by_detection,
        help="multiply each cell's class scores by its detection score (default %(default)s)",
    )


def _check_classifier_args(args) -> None:
    """Options of the cell-classifier and hybrid routes, checked before anything is read."""
    if args.weights is not None:
        if args.masks is not None:
            raise InputError(
                "--masks and --weights exclude each other: with --weights (hybrid route) Mask R-CNN finds the cells; drop one"
            )
    else:
        if args.engine != "torchvision":
            raise InputError(f"--engine {args.engine}: the cell-classifier route has no engine option; drop --engine")
        if args.masks is None:
            raise InputError(
                "--classifier needs --masks (the folder of {ID}_cellmask.png of the test images, hpaseg segment) or --weights (Mask R-CNN finds the cells)"
            )
        if not Path(args.masks).is_dir():
            raise InputError(f"--masks {args.masks}: no such folder")
        if args.backbone is not None:
            check_backbone(args.backbone)
    if args.fusion_weight != ScoreRule.weight and args.fusion != "mean":
        raise InputError(f"--fusion-weight belongs to --fusion mean, not --fusion {args.fusion}; add --fusion mean")


def _check_maskrcnn_args(args) -> None:
    for option in ("masks", "image_classifier"):
        if getattr(args, option) is not None:
            raise InputError(
                f"--{option.replace('_', '-')} belongs to the cell-classifier route; add --classifier RUN (or drop it for the Mask R-CNN route)"
            )
    if args.weights is None:
        raise InputError(
            "the following arguments are required: --weights (Mask R-CNN route), or --classifier RUN --masks MASKS (cell-classifier route)"
        )
    if args.engine not in ("torchvision", "detectron2"):
        raise InputError(f"--engine {args.engine!r}: expected torchvision or detectron2")
    args.backbone = args.backbone or DEFAULT_BACKBONE
    if args.engine == "torchvision" and args.backbone not in BACKBONES:
        raise InputError(f"--backbone {args.backbone!r}: unknown backbone; expected one of {', '.join(BACKBONES)}")


def _cell_classifier(args, score_rule: ScoreRule, rule: LabelRule) -> CellClassifierPredictor:
    predictor = CellClassifierPredictor.from_runs(
        args.classifier, args.image_classifier, device=args.device, score_rule=score_rule, rule=rule
    )
    trained = predictor.cell_classifier.backbone
    if args.weights is None and args.backbone is not None and trained != args.backbone:
        raise InputError(
            f"--classifier {predictor.cell_classifier.path}: trained with backbone {trained!r}, not --backbone {args.backbone!r}; pass --backbone {trained}"
        )
    return predictor


def _predictor(args, config: PostprocessConfig, score_rule: ScoreRule, rule: LabelRule) -> Predictor:
    """The route's predictor, its weights loaded and matched against ``--backbone``."""
    if args.classifier is not None and args.weights is None:
        return _cell_classifier(args, score_rule, rule)
    predictor = open_maskrcnn(
        args.weights, engine=args.engine, device=args.device, config_file=args.config, postprocess=config
    )
    if args.engine == "torchvision" and predictor.backbone != args.backbone:
        raise InputError(
            f"--weights {args.weights}: trained with backbone {predictor.backbone!r}, not --backbone {args.backbone!r}; pass --backbone {predictor.backbone}"
        )
    if args.classifier is not None:
        return RescoredPredictor(predictor, _cell_classifier(args, score_rule, rule))
    return predictor


@cli_entry("predict", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg predict``."""
    args = build_parser().parse_args(argv)
    configure_output()
    if args.classifier is None:
        _check_maskrcnn_args(args)
    else:
        _check_classifier_args(args)
        if args.weights is not None:
            _check_maskrcnn_args(argparse.Namespace(**{**vars(args), "masks": None, "image_classifier": None}))
    score_rule = ScoreRule(
        fusion=args.fusion,
        weight=args.fusion_weight,
        negative=args.negative,
        image_pooling=args.image_pooling,
        image_model_weight=args.image_model_weight,
        border_factor=args.border_factor,
    )
    rule = LabelRule(min_score=args.min_score, negative_threshold=args.negative_threshold)
    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size}: expected a positive integer")
    shard = parse_shard(args.shard) if args.shard is not None else None
    check_output_path(args.out, option="--out", folder=False)
    if args.save_masks:
        check_output_path(args.save_masks, option="--save-masks", folder=True)
    if args.resume and Path(args.out).is_file():
        print(f"kept {args.out}: written by an earlier run (--resume); delete it or drop --resume to predict again")
        return 0
    config = PostprocessConfig(
        nms_iou=args.nms_iou,
        min_detection_score=args.min_detection_score,
        score_rule=score_rule,
        weight_by_detection=args.weight_by_detection,
        min_score=args.min_score,
        negative_threshold=args.negative_threshold,
    )
    ids = check_images(args.data, args.ids, args.masks, shard=shard)  # before a model loads
    predictor = _predictor(args, config, score_rule, rule)
    predictions = predict_folder(
        predictor,
        args.data,
        ids,
        masks_dir=args.masks,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.quiet,
    )
    cells_name = CELLS_FILE if shard is None else f"cells.{shard[0]}-of-{shard[1]}.csv"
    rows = write_predictions(predictions, args.out, save_masks=args.save_masks, cells_name=cells_name)
    n_cells = sum(len({p.mask for p in r.predictions}) for r in rows)
    part = "" if shard is None else f" (shard {shard[0]}/{shard[1]}: a part for 'hpaseg merge')"
    print(
        f"predicted {n_cells} cells in {len(rows)} images ({sum(len(r.predictions) for r in rows)} (cell, label) predictions) -> {args.out}{part}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
