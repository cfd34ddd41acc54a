"""detectron2 configs of hpaseg: the YAMLs shipped as package data, and reading one with
``--opts`` overrides.

The configs live in the repository's ``detectron_configs/`` folder, installed as the
package ``hpaseg.detectron_configs`` (``setup.py``), so they are found after a
non-editable install too: ``Base-HPA-MaskRCNN.yaml`` and short ``_BASE_`` children
(``mask_rcnn_R_101_FPN_hpa.yaml``, ``mask_rcnn_X_101_32x8d_FPN_hpa.yaml``). hpaseg's
own keys live under ``HPA`` and are added in one place, :func:`add_hpa_config`. The
models detect class-agnostic cells (``MODEL.ROI_HEADS.NUM_CLASSES`` 1) and label them
with hpaseg's multi-label RoI heads (``MODEL.ROI_HEADS.NAME: HPAMultiLabelROIHeads``,
:mod:`.heads`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from ...errors import InputError
from ..heads import DEFAULT_DISTILL_WEIGHT, DEFAULT_LABEL_INPUTS, IMAGE_EPOCHS, LABEL_EPOCHS
from ..models import anchor_sizes
from .heads import ROI_HEADS_NAME, register_hpa_roi_heads

__all__ = [
    "CONFIG_PACKAGE",
    "config_dir",
    "config_names",
    "resolve_config",
    "require_detectron2",
    "add_hpa_config",
    "load_config",
]

#: The package holding the shipped YAML configs.
CONFIG_PACKAGE = "hpaseg.detectron_configs"


def config_dir() -> Path:
    """The folder of the shipped configs (inside the installed package)."""
    return Path(str(resources.files(CONFIG_PACKAGE)))


def config_names() -> list[str]:
    """File names of the shipped configs.

    >>> "mask_rcnn_R_101_FPN_hpa.yaml" in config_names()
    True
    """
    return sorted(p.name for p in config_dir().glob("*.yaml"))


def resolve_config(config: str | Path) -> Path:
    """A config file: a path as given, else the shipped config of that name.

    >>> resolve_config("mask_rcnn_R_101_FPN_hpa.yaml").name
    'mask_rcnn_R_101_FPN_hpa.yaml'
    """
    path = Path(config)
    if path.is_file():
        return path
    shipped = config_dir() / path.name
    if shipped.is_file() and path.name == str(config):
        return shipped
    raise InputError(
        f"config {path}: no such file; give a path or one of the shipped configs: {', '.join(config_names())}",
        param="config",
    )


def require_detectron2() -> None:
    """Raise a one-line InputError when detectron2 cannot be imported."""
    try:
        import detectron2  # noqa: F401
    except ImportError as exc:
        raise InputError(
            "engine 'detectron2': detectron2 is not installed; install it from its official source "
            "(pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git', see README) "
            "or use the torchvision engine",
            param="engine",
        ) from exc


def add_hpa_config(cfg) -> None:
    """Add hpaseg's keys (``cfg.HPA``) to a detectron2 config: the one place they are defined."""
    from detectron2.config import CfgNode as CN

    cfg.HPA = CN()
    cfg.HPA.DATASET_DIR = ""  # folder with train.json/val.json from hpaseg propagate
    cfg.HPA.DATA_DIR = ""  # folder of the training images
    cfg.HPA.IMAGE_SIZE = 1024  # working size (longer side, px); anchors scale with it
    cfg.HPA.EVAL_MAX_IMAGES = 50  # validation images scored by the competition metric
    cfg.HPA.PRETRAINED_FORMAT = "BGR"  # channel order of MODEL.WEIGHTS' stem: BGR (MSRA) or RGB (FAIR, torchvision)
    cfg.HPA.AUGMENT = True  # random flips of training images
    cfg.HPA.LABEL_LOSS_WEIGHT = 1.0  # factor of the multi-label head's loss (loss_labels)
    cfg.HPA.LABEL_INPUTS = DEFAULT_LABEL_INPUTS  # what the label head reads: "pixels+features" or "features"
    cfg.HPA.TEACHER = ""  # a cell classifier run (its cell_probabilities.csv) or such a CSV; "" = none
    cfg.HPA.DISTILL_WEIGHT = DEFAULT_DISTILL_WEIGHT  # weight of the teacher's probabilities in the label targets
    cfg.HPA.LABEL_EPOCHS = LABEL_EPOCHS  # pixel head alone on the training cells' crops first, then frozen; 0 = joint
    cfg.HPA.IMAGE_EPOCHS = IMAGE_EPOCHS  # image head on the cells' pixel features, after the pixel head; 0 = none


def load_config(config_file: str | Path, opts: list[str] | None = None, **overrides: Any):
    """Read a detectron2 YAML (with its ``_BASE_`` chain), then ``--opts KEY VALUE`` pairs.

    Unknown keys raise an InputError naming the key and the file.
    """
    require_detectron2()
    from detectron2.config import get_cfg

    register_hpa_roi_heads()
    path = resolve_config(config_file)
    cfg = get_cfg()
    add_hpa_config(cfg)
    try:
        cfg.merge_from_file(str(path))
    except KeyError as exc:
        raise InputError(
            f"config {path}: unknown key {exc.args[0] if exc.args else exc}; see detectron2's config reference and hpaseg's HPA.* keys",
            param="config",
        ) from None
    except Exception as exc:  # yaml errors, bad _BASE_
        raise InputError(
            f"config {path}: cannot read ({type(exc).__name__}: {str(exc).splitlines()[0]})", param="config"
        ) from None
    try:
        cfg.merge_from_list(list(opts or []))
    except (KeyError, AssertionError, ValueError) as exc:
        raise InputError(f"opts {' '.join(opts or [])}: {str(exc).splitlines()[0]}", param="opts") from None
    for key, value in overrides.items():
        cfg.merge_from_list([key, value])
    if len(cfg.MODEL.PIXEL_MEAN) != 4 or len(cfg.MODEL.PIXEL_STD) != 4:
        raise InputError(
            f"config {path}: MODEL.PIXEL_MEAN and PIXEL_STD need four values (RGBY), got {len(cfg.MODEL.PIXEL_MEAN)} and {len(cfg.MODEL.PIXEL_STD)}",
            param="config",
        )
    sizes = anchor_sizes(cfg.HPA.IMAGE_SIZE, len(cfg.MODEL.ROI_HEADS.IN_FEATURES) + 1)
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [list(s) for s in sizes]
    if cfg.MODEL.ROI_HEADS.NAME != ROI_HEADS_NAME:
        raise InputError(
            f"config {path}: MODEL.ROI_HEADS.NAME is {cfg.MODEL.ROI_HEADS.NAME!r}; hpaseg needs {ROI_HEADS_NAME!r} "
            "(class-agnostic cells + multi-label head); a config of the earlier per-(cell, label) model: retrain "
            "with a shipped config",
            param="config",
        )
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 1  # class-agnostic: "cell"; the 19 classes are the label head's
    cfg.INPUT.MIN_SIZE_TRAIN = (cfg.HPA.IMAGE_SIZE,)
    cfg.INPUT.MAX_SIZE_TRAIN = cfg.HPA.IMAGE_SIZE
    cfg.INPUT.MIN_SIZE_TEST = cfg.HPA.IMAGE_SIZE
    cfg.INPUT.MAX_SIZE_TEST = cfg.HPA.IMAGE_SIZE
    return cfg
