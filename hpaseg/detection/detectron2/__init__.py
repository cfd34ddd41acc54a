"""The detectron2 engine: ResNet101-FPN and ResNeXt101-32x8d-FPN Mask R-CNN on RGBY cells.

detectron2 is optional (not on PyPI): it is imported only inside these modules'
functions, and everything here raises a clear :class:`~hpaseg.errors.InputError` when it
is missing. Modules: :mod:`.config` (the shipped YAMLs, ``HPA.*`` keys),
:mod:`.data` (dataset registration, the RGBY mapper), :mod:`.evaluator` (competition mAP),
:mod:`.checkpoint` (RGB -> RGBY stems), :mod:`.heads` (class-agnostic cells + multi-label
head), :mod:`.trainer`, :mod:`.predictor`.
"""

from .checkpoint import RGBYCheckpointer, check_checkpoint
from .config import (
    add_hpa_config,
    config_dir,
    config_names,
    load_config,
    require_detectron2,
    resolve_config,
)
from .data import HPADatasetMapper, register_hpa_datasets
from .evaluator import HPAEvaluator, instances_to_cells
from .heads import ROI_HEADS_NAME, register_hpa_roi_heads
from .predictor import Detectron2Predictor
from .trainer import Detectron2TrainConfig, train_detectron2

__all__ = [
    "RGBYCheckpointer",
    "check_checkpoint",
    "ROI_HEADS_NAME",
    "register_hpa_roi_heads",
    "add_hpa_config",
    "config_dir",
    "config_names",
    "load_config",
    "require_detectron2",
    "resolve_config",
    "HPADatasetMapper",
    "register_hpa_datasets",
    "HPAEvaluator",
    "instances_to_cells",
    "Detectron2Predictor",
    "Detectron2TrainConfig",
    "train_detectron2",
]
