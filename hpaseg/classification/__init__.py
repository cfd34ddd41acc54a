"""Multi-label classifiers of whole images and single cells (timm backbones): their inputs,
models, losses, trainer and predictors, and the cell-classifier route of ``hpaseg predict``.

Modules: :mod:`~hpaseg.classification.data` (crops, channels, caches, augmentation),
:mod:`~hpaseg.classification.models` (timm backbones + head, RGBY stems),
:mod:`~hpaseg.classification.losses`, :mod:`~hpaseg.classification.config`,
:mod:`~hpaseg.classification.samples`, :mod:`~hpaseg.classification.trainer` (``hpaseg classify``), :mod:`~hpaseg.classification.predictor` (inference, fusion, the route).
"""

from .config import AUGMENTS, DEFAULT_CHANNELS, LEVELS, ClassifyConfig, check_config, input_size
from .data import (
    CHANNEL_MODES,
    ClassifierDataset,
    Sample,
    build_crop_cache,
    channel_count,
    crop_cell,
    crop_cells,
    cutmix,
    multi_hot,
    select_channels,
    standard_augment,
)
from .losses import LOSSES, make_loss
from .models import (
    BACKBONES,
    build_classifier,
    check_backbone,
    check_input_size,
    normalization,
)
from .predictor import (
    CellClassifierPredictor,
    LoadedClassifier,
    classifier_cell_scores,
    fuse_probabilities,
    load_classifier,
)
from .samples import PreparedData, prepare_data
from .trainer import predict_scores, train_classifier

__all__ = [
    "CHANNEL_MODES",
    "ClassifierDataset",
    "Sample",
    "build_crop_cache",
    "channel_count",
    "crop_cell",
    "crop_cells",
    "cutmix",
    "multi_hot",
    "select_channels",
    "standard_augment",
    "LOSSES",
    "make_loss",
    "BACKBONES",
    "build_classifier",
    "check_backbone",
    "check_input_size",
    "normalization",
    "CellClassifierPredictor",
    "LoadedClassifier",
    "classifier_cell_scores",
    "fuse_probabilities",
    "load_classifier",
    "AUGMENTS",
    "DEFAULT_CHANNELS",
    "LEVELS",
    "ClassifyConfig",
    "PreparedData",
    "check_config",
    "input_size",
    "predict_scores",
    "prepare_data",
    "train_classifier",
]
