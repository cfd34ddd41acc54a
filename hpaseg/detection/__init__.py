"""Mask R-CNN: four-channel models, their training data, trainers, post-processing and
predictors, on torchvision (:mod:`~hpaseg.detection.models`, :mod:`~hpaseg.detection.trainer`,
:mod:`~hpaseg.detection.predictor`) and detectron2 (:mod:`hpaseg.detection.detectron2`).
"""

from .data import CellDataset, collate, target_from_cells
from .models import (
    BACKBONES,
    DEFAULT_BACKBONE,
    anchor_sizes,
    build_maskrcnn,
    classification_net,
)
from .postprocess import (
    CellPrediction,
    PostprocessConfig,
    compose_label_image,
    group_detections,
)
from .predictor import (
    CellScores,
    MaskRCNNPredictor,
    build_model_from_checkpoint,
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
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "anchor_sizes",
    "build_maskrcnn",
    "classification_net",
    "CellPrediction",
    "PostprocessConfig",
    "compose_label_image",
    "group_detections",
    "CellScores",
    "MaskRCNNPredictor",
    "build_model_from_checkpoint",
    "load_checkpoint",
    "predict_tensors",
    "REFERENCE_BATCH",
    "TrainConfig",
    "check_train_config",
    "evaluate_map",
    "train_torchvision",
]
