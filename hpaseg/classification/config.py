"""The settings of a classifier run (``hpaseg classify``): :class:`ClassifyConfig` and its checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..runtime.config import check_numbers
from ..runtime.schedule import SCHEDULES
from ..weak import POOLINGS
from .data import CHANNEL_MODES
from .losses import LOSSES
from .models import DESCRIPTORS, check_backbone, check_input_size

__all__ = [
    "LEVELS",
    "AUGMENTS",
    "SUPERVISIONS",
    "CELL_PRESETS",
    "cell_preset",
    "DEFAULT_CHANNELS",
    "FINAL",
    "EVAL_FILE",
    "CHECKPOINT_KIND",
    "ClassifyConfig",
    "input_size",
    "check_config",
]

LEVELS: tuple[str, ...] = ("image", "cell")


AUGMENTS: tuple[str, ...] = ("standard", "cutmix")


#: How a cell classifier learns from image labels (:mod:`hpaseg.weak`): ``propagated``
#: (every cell trained on its image's labels), ``mil`` (multiple-instance loss on pooled
#: cell scores), ``refined`` (propagated, then ``refine_rounds``
#: rounds of pseudo-label refinement).
SUPERVISIONS: tuple[str, ...] = ("propagated", "mil", "refined")


#: Cell-level settings sized for where they run (``hpaseg classify --level cell`` picks
#: one by device; ``hpaseg.bench learn`` measured the CPU one, benchmarks/RESULTS.md).
#: ``cpu``: descriptors + a small network, trained in seconds to minutes on 2 cores;
#: ``gpu``: a timm CNN on 128-px crops, for real data on GPUs.
CELL_PRESETS: dict[str, dict[str, object]] = {
    "cpu": {
        "backbone": DESCRIPTORS,
        "epochs": 150,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "batch_size": 8,
        "supervision": "refined",
    },
    "gpu": {
        "backbone": "efficientnet_b0",
        "crop_size": 128,
        "epochs": 20,
        "lr": 3e-4,
        "batch_size": 64,
        "supervision": "refined",
        "pretrained": "imagenet",
    },
}


def cell_preset(device: str) -> dict[str, object]:
    """The cell-level settings for ``device`` (``cuda...`` -> gpu, else cpu).

    >>> cell_preset("cpu")["backbone"]
    'descriptors'
    """
    return dict(CELL_PRESETS["gpu" if str(device).startswith("cuda") else "cpu"])


#: Channel mode of each level when none is given.
DEFAULT_CHANNELS: dict[str, str] = {"image": "green", "cell": "rgby"}


#: Name of the final checkpoint (``RUN/model_final.pth``) and of the evaluation file.
FINAL = "model_final"


EVAL_FILE = "eval.json"


#: ``kind`` of a classifier checkpoint.
CHECKPOINT_KIND = "hpaseg-classifier"


@dataclass(frozen=True)
class ClassifyConfig:
    """Every setting of a classifier run; saved as ``RUN/config.yaml``.
    Any field can be overridden with ``--opts KEY VALUE``."""

    level: str = "image"
    backbone: str = "efficientnet_b0"
    loss: str = "bce"
    augment: str = "standard"
    channels: str = "green"
    dataset: str = ""
    data: str = ""
    masks: str | None = None
    out: str = ""
    image_size: int = 256  # image level: input side in px
    crop_size: int = 128  # cell level: input side in px
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    schedule: str = "constant"  # or "cosine", "step" (hpaseg.training.lr_factor)
    warmup_iters: int = 0
    warmup_factor: float = 0.1
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    cutmix_p: float = 0.5
    cutmix_alpha: float = 1.0
    rotation_deg: float = 20.0
    translate_fraction: float = 0.1
    checkpoint_period: int = 1  # epochs
    eval_period: int = 1  # epochs between validation scores; 0 = end only
    log_period: int = 10  # iterations
    amp: bool = True  # CUDA only
    pretrained: str | None = None  # None, "imagenet" or a timm checkpoint path
    supervision: str = "propagated"  # cell level: SUPERVISIONS
    refine_rounds: int = 2  # supervision "refined": rounds after the first
    keep_fraction: float = 0.5  # refinement: keep a label at >= this fraction of the image's best cell
    pooling: str = "lse"  # supervision "mil": hpaseg.weak.POOLINGS
    hidden: int = 256  # descriptors backbone: width of the hidden layers
    depth: int = 2  # descriptors backbone: hidden layers
    dropout: float = 0.1  # descriptors backbone
    image_epochs: int = 200  # weak-supervision trainer: epochs of the image head (0: none)
    image_mix: float = 0.75  # weak-supervision trainer: image head's bag-mixing chance (hpaseg.weak.bag_mixtures)
    refit: bool = True  # weak-supervision trainer: after validating, train the final model again on train + val
    device: str = "cpu"
    workers: int = 2
    seed: int = 0


def input_size(cfg: ClassifyConfig) -> int:
    """Side of the network's inputs in px: ``image_size`` (image level), ``crop_size`` (cell
    level) or 0 (descriptors: no image input)."""
    if cfg.backbone == DESCRIPTORS:
        return 0
    return cfg.image_size if cfg.level == "image" else cfg.crop_size


def _choice(param: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise InputError(f"{param} {value!r}: expected one of {', '.join(choices)}", param=param)


#: Settings of :class:`ClassifyConfig` that must be > 0 and >= 0 (floats finite too).
_POSITIVE = ("image_size", "crop_size", "epochs", "batch_size", "hidden", "log_period", "lr")
_NON_NEGATIVE = (
    "refine_rounds",
    "depth",
    "image_epochs",
    "warmup_iters",
    "checkpoint_period",
    "eval_period",
    "workers",
    "weight_decay",
    "focal_gamma",
)


def check_config(cfg: ClassifyConfig, *, check_paths: bool = True) -> None:
    """Refuse unusable settings with an :class:`InputError` naming the parameter."""
    _choice("level", cfg.level, LEVELS)
    check_backbone(cfg.backbone)
    _choice("loss", cfg.loss, LOSSES)
    _choice("augment", cfg.augment, AUGMENTS)
    _choice("channels", cfg.channels, CHANNEL_MODES)
    _choice("schedule", cfg.schedule, SCHEDULES)
    _choice("supervision", cfg.supervision, SUPERVISIONS)
    _choice("pooling", cfg.pooling, POOLINGS)
    check_numbers(cfg, positive=_POSITIVE, non_negative=_NON_NEGATIVE)
    if not 0 < cfg.keep_fraction <= 1:
        raise InputError(f"keep_fraction {cfg.keep_fraction}: expected a number in (0, 1]", param="keep_fraction")
    if not 0 <= cfg.image_mix <= 1:
        raise InputError(f"image_mix {cfg.image_mix}: expected a probability in [0, 1]", param="image_mix")
    if not 0 <= cfg.dropout < 1:
        raise InputError(f"dropout {cfg.dropout}: expected a number in [0, 1)", param="dropout")
    if cfg.level == "image" and (cfg.backbone == DESCRIPTORS or cfg.supervision != "propagated"):
        raise InputError(
            f"level image with backbone {cfg.backbone!r} and supervision {cfg.supervision!r}: descriptors and weak "
            "supervision are cell-level; use level cell, or a timm backbone with supervision propagated",
            param=("level", "backbone"),
        )
    if not 0 < cfg.warmup_factor <= 1:
        raise InputError(f"warmup_factor {cfg.warmup_factor}: expected a number in (0, 1]", param="warmup_factor")
    if not 0 <= cfg.focal_alpha <= 1:
        raise InputError(f"focal_alpha {cfg.focal_alpha}: expected a number in [0, 1]", param="focal_alpha")
    if not 0 <= cfg.cutmix_p <= 1:
        raise InputError(f"cutmix_p {cfg.cutmix_p}: expected a probability in [0, 1]", param="cutmix_p")
    if cfg.backbone != DESCRIPTORS:
        check_input_size(cfg.backbone, input_size(cfg), param="image_size" if cfg.level == "image" else "crop_size")
    if cfg.level == "cell" and not cfg.masks:
        raise InputError(
            "level cell needs masks: the folder of {ID}_cellmask.png the dataset was propagated from",
            param=("level", "masks"),
        )
    if check_paths:
        for name in ("dataset", "data") + (("masks",) if cfg.level == "cell" else ()):
            if not Path(getattr(cfg, name)).is_dir():
                raise InputError(f"{name} {getattr(cfg, name)}: no such folder", param=name)
        for split in ("train", "val"):
            if not (Path(cfg.dataset) / f"{split}.json").is_file():
                raise InputError(
                    f"dataset {cfg.dataset}: no {split}.json; expected the output folder of 'hpaseg propagate'",
                    param="dataset",
                )
