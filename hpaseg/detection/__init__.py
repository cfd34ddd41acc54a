"""Mask R-CNN: four-channel models, their training data, trainers, post-processing and
predictors, on torchvision (:mod:`~hpaseg.detection.models`, :mod:`~hpaseg.detection.trainer`,
:mod:`~hpaseg.detection.predictor`) and detectron2 (:mod:`hpaseg.detection.detectron2`).
"""

from .data import CellDataset, collate, target_from_cells
from .heads import MultiLabelRoIHeads, multilabel_loss
from .models import (
    BACKBONES,
    DEFAULT_BACKBONE,
    MODEL_KIND,
    anchor_sizes,
    build_maskrcnn,
    classification_net,
)
from .postprocess import (
    CellPrediction,
    PostprocessConfig,
    cell_scores,
    compose_label_image,
    mask_iou_matrix,
    select_cells,
)
from .predictor import (
    CellProbabilities,
    CellScores,
    DetectedCells,
    MaskRCNNPredictor,
    build_model_from_checkpoint,
    cells_from_output,
    detect_tensors,
    load_checkpoint,
    predict_tensors,
)
from .trainer import (
    REFERENCE_BATCH,
    TrainConfig,
    check_train_config,
    evaluate_map,
    train_torchvision,
)

__all__ = [
    "CellDataset",
    "collate",
    "target_from_cells",
    "MultiLabelRoIHeads",
    "multilabel_loss",
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "MODEL_KIND",
    "anchor_sizes",
    "build_maskrcnn",
    "classification_net",
    "CellPrediction",
    "PostprocessConfig",
    "cell_scores",
    "compose_label_image",
    "mask_iou_matrix",
    "select_cells",
    "CellProbabilities",
    "CellScores",
    "DetectedCells",
    "MaskRCNNPredictor",
    "build_model_from_checkpoint",
    "cells_from_output",
    "detect_tensors",
    "load_checkpoint",
    "predict_tensors",
    "REFERENCE_BATCH",
    "TrainConfig",
    "check_train_config",
    "evaluate_map",
    "train_torchvision",
]
