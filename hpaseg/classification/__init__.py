"""Multi-label classifiers of whole images and single cells (timm backbones): their inputs,
models, losses, trainer and predictors, and the cell-classifier route of ``hpaseg predict``.

Modules: :mod:`~hpaseg.classification.data` (crops, channels, caches, augmentation),
:mod:`~hpaseg.classification.models` (timm backbones + head, RGBY stems),
:mod:`~hpaseg.classification.losses`, :mod:`~hpaseg.classification.config`,
:mod:`~hpaseg.classification.samples`, :mod:`~hpaseg.classification.trainer` (``hpaseg classify``),
:mod:`~hpaseg.classification.bags` and :mod:`~hpaseg.classification.descriptor_trainer` (the
descriptor network, the CPU default of the cell level, with weak supervision from
:mod:`hpaseg.weak`), :mod:`~hpaseg.classification.predictor` (inference, the route).
"""

from .bags import Bag, build_descriptor_cache, copy_bags, descriptor_cache_dir, load_bags, make_bag
from .config import (
    AUGMENTS,
    CELL_PRESETS,
    DEFAULT_CHANNELS,
    LEVELS,
    SUPERVISIONS,
    ClassifyConfig,
    cell_preset,
    check_config,
    input_size,
)
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
from .descriptor_trainer import (
    bag_probabilities,
    fit_image_head,
    fit_round,
    image_head_of,
    image_head_probabilities,
    refine_bags,
    split_bags,
    train_bags,
    train_descriptor_classifier,
)
from .losses import LOSSES, make_loss
from .models import (
    BACKBONES,
    DESCRIPTORS,
    DescriptorImageNet,
    DescriptorNet,
    build_classifier,
    check_backbone,
    check_input_size,
    normalization,
)
from .predictor import (
    CellClassifierPredictor,
    LoadedClassifier,
    classifier_cell_scores,
    load_classifier,
)
from .samples import PreparedData, prepare_data
from .trainer import predict_scores, refine_samples, train_classifier

__all__ = [
    "Bag",
    "make_bag",
    "build_descriptor_cache",
    "copy_bags",
    "descriptor_cache_dir",
    "load_bags",
    "CELL_PRESETS",
    "SUPERVISIONS",
    "cell_preset",
    "train_descriptor_classifier",
    "fit_round",
    "fit_image_head",
    "image_head_probabilities",
    "image_head_of",
    "split_bags",
    "refine_bags",
    "train_bags",
    "bag_probabilities",
    "DESCRIPTORS",
    "DescriptorNet",
    "DescriptorImageNet",
    "refine_samples",
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
