"""Scores: the competition metric, cell matching, classification metrics.

Modules: :mod:`~hpaseg.evaluation.competition` (mAP over classes at mask IoU >= 0.6,
per image, per cell), :mod:`~hpaseg.evaluation.matching` (the one IoU matcher, label
images), :mod:`~hpaseg.evaluation.classification` (macro-F1, AP, confusion matrices),
:mod:`~hpaseg.evaluation.spread` (figures over seeds or folds, paired differences).
"""

from .classification import (
    DEFAULT_THRESHOLD_GRID,
    evaluate_scores,
    macro_ap,
    macro_f1,
    multilabel_confusion,
    per_class_ap,
    tune_thresholds,
)
from .competition import (
    COMPETITION_IOU_THRESHOLD,
    MapResult,
    cell_targets,
    check_image_ids,
    competition_map,
    few_ids,
    interpolated_average_precision,
    per_image_map,
    worst_images,
)
from .matching import (
    SegmentationMatch,
    greedy_match,
    label_iou_matrix,
    match_label_images,
)
from .spread import paired_summary, verdict

__all__ = [
    "DEFAULT_THRESHOLD_GRID",
    "evaluate_scores",
    "macro_ap",
    "macro_f1",
    "multilabel_confusion",
    "per_class_ap",
    "tune_thresholds",
    "COMPETITION_IOU_THRESHOLD",
    "MapResult",
    "cell_targets",
    "check_image_ids",
    "competition_map",
    "few_ids",
    "interpolated_average_precision",
    "per_image_map",
    "worst_images",
    "SegmentationMatch",
    "greedy_match",
    "label_iou_matrix",
    "match_label_images",
    "paired_summary",
    "verdict",
]
