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
  masks, each classified, optionally fused with an image-level classifier
  (:class:`hpaseg.classification.CellClassifierPredictor`).

Labels: :func:`hpaseg.labels.cell_labels` (``--min-score``, ``--negative-threshold``).
"""

from __future__ import annotations

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
from ..pipeline.predict import Predictor, check_images, open_maskrcnn, predict_folder, write_predictions
from ..runtime.hardware import default_device
from .base import ArgumentParser, add_quiet, cli_entry, configure_output

__all__ = ["build_parser", "main"]

_DEFAULT_FUSION_WEIGHT = 0.5


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg predict``."""
    parser = ArgumentParser(
        prog="hpaseg predict", description="Predict per-cell masks and labels for images and write a Kaggle submission."
    )
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
    g = parser.add_argument_group("cell-classifier route (instead of --weights)")
    g.add_argument("--classifier", help="cell-level run of hpaseg classify (RUN or RUN/model_final.pth)")
    g.add_argument(
        "--masks", help="folder of {ID}_cellmask.png of the test images (hpaseg segment); needed with --classifier"
    )
    g.add_argument(
        "--image-classifier", help="image-level run of hpaseg classify whose probabilities are fused with the cells'"
    )
    g.add_argument(
        "--fusion-weight",
        type=float,
        default=None,
        help=f"w in w * p_cell + (1 - w) * p_image (default {_DEFAULT_FUSION_WEIGHT}; needs --image-classifier)",
    )
    g = parser.add_argument_group("data and output")
    g.add_argument("--data", required=True, help="folder of {ID}_{red,green,blue,yellow}.png test images")
    g.add_argument("--ids", nargs="+", help="only these image IDs (default: all in --data)")
    g.add_argument("--out", required=True, help="submission CSV to write")
    g.add_argument("--save-masks", help="also write {ID}_cellmask.png and cells.csv (ID,cell,label,confidence) here")
    g = parser.add_argument_group("inference")
    g.add_argument("--device", default=default_device(), help="cuda or cpu (default: cuda when available)")
    g.add_argument("--batch-size", type=int, default=2, help="images per forward pass (default 2)")
    g.add_argument("--workers", type=int, default=4, help="image-reading threads (default 4)")
    g.add_argument(
        "--min-score",
        type=float,
        default=LabelRule.min_score,
        help="lowest class score reported (default %(default)s: every class ranked)",
    )
    g.add_argument(
        "--negative-threshold",
        type=float,
        default=None,
        help="a cell with no class at or above this is also Negative (default: Mask R-CNN "
        f"{PostprocessConfig.negative_threshold}, Negative from the other classes; cell classifier {LabelRule.negative_threshold})",
    )
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
    add_quiet(parser)
    return parser


def _check_classifier_args(args) -> None:
    """Options of the cell-classifier route, checked before anything is read."""
    if args.weights is not None:
        raise InputError(
            "--weights (Mask R-CNN route) and --classifier (cell-classifier route) exclude each other; give one"
        )
    if args.engine != "torchvision":
        raise InputError(f"--engine {args.engine}: the cell-classifier route has no engine option; drop --engine")
    if args.masks is None:
        raise InputError(
            "--classifier needs --masks: the folder of {ID}_cellmask.png of the test images (hpaseg segment)"
        )
    if not Path(args.masks).is_dir():
        raise InputError(f"--masks {args.masks}: no such folder")
    if args.backbone is not None:
        check_backbone(args.backbone)
    if args.fusion_weight is not None:
        if args.image_classifier is None:
            raise InputError("--fusion-weight needs --image-classifier (the image-level run to fuse with)")
        if not 0.0 <= args.fusion_weight <= 1.0:
            raise InputError(f"--fusion-weight {args.fusion_weight}: expected a number in [0, 1]")


def _check_maskrcnn_args(args) -> None:
    for option in ("masks", "image_classifier", "fusion_weight"):
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


def _predictor(args, config: PostprocessConfig, rule: LabelRule) -> Predictor:
    """The route's predictor, its weights loaded and matched against ``--backbone``."""
    if args.classifier is not None:
        weight = _DEFAULT_FUSION_WEIGHT if args.fusion_weight is None else args.fusion_weight
        predictor = CellClassifierPredictor.from_runs(
            args.classifier, args.image_classifier, device=args.device, fusion_weight=weight, rule=rule
        )
        trained = predictor.cell_classifier.backbone
        if args.backbone is not None and trained != args.backbone:
            raise InputError(
                f"--classifier {predictor.cell_classifier.path}: trained with backbone {trained!r}, not --backbone {args.backbone!r}; pass --backbone {trained}"
            )
        return predictor
    predictor = open_maskrcnn(
        args.weights, engine=args.engine, device=args.device, config_file=args.config, postprocess=config
    )
    if args.engine == "torchvision" and predictor.backbone != args.backbone:
        raise InputError(
            f"--weights {args.weights}: trained with backbone {predictor.backbone!r}, not --backbone {args.backbone!r}; pass --backbone {predictor.backbone}"
        )
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
    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size}: expected a positive integer")
    check_output_path(args.out, option="--out", folder=False)
    if args.save_masks:
        check_output_path(args.save_masks, option="--save-masks", folder=True)
    negative = {} if args.negative_threshold is None else {"negative_threshold": args.negative_threshold}
    config = PostprocessConfig(
        nms_iou=args.nms_iou,
        min_detection_score=args.min_detection_score,
        weight_by_detection=args.weight_by_detection,
        min_score=args.min_score,
        **negative,
    )
    rule = LabelRule(min_score=args.min_score, **negative)
    ids = check_images(args.data, args.ids, args.masks if args.classifier is not None else None)  # before a model loads
    predictor = _predictor(args, config, rule)
    predictions = predict_folder(
        predictor,
        args.data,
        ids,
        masks_dir=args.masks,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.quiet,
    )
    rows = write_predictions(predictions, args.out, save_masks=args.save_masks)
    n_cells = sum(len({p.mask for p in r.predictions}) for r in rows)
    print(
        f"predicted {n_cells} cells in {len(rows)} images ({sum(len(r.predictions) for r in rows)} (cell, label) predictions) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
