"""Multi-label classifiers for HPA images and cell crops: a ``timm`` backbone and the
companion study's head (features -> Linear 512 -> ReLU -> Linear 19).

Backbones (``BACKBONES``, our name -> timm model)
--------------------------------------------------
* ``nfnet_l0`` -> ``nfnet_l0`` (the study's README said NFNet-L0);
* ``nfnet_f1`` -> ``dm_nfnet_f1`` (the study's code built ``nfnet_f1``; timm's
  ``nfnet_f1`` has no ImageNet weights, DeepMind's NFNet-F1 ``dm_nfnet_f1`` has, so the
  name stands for that one);
* ``resnet50``, ``inception_v3`` (needs inputs of at least 75 px), ``efficientnet_b0``,
  ``efficientnet_b3``, ``efficientnet_b5``;
* ``resnet18``: the light one, for cell crops on a CPU (``hpaseg.pipeline.routes.CNN_CPU``).

Cell crops under weak supervision (:class:`CropNet`)
----------------------------------------------------
The weak-supervision trainer of cell classifiers
(:mod:`hpaseg.classification.cell_trainer`) trains a :class:`Classifier` wrapped in a
:class:`CropNet`, which takes the cached uint8 crops as they are, scales and normalises
them itself, and gives the pooled backbone features the image head learns from.

Channels
--------
``in_chans=3``: the study's setting, the green (protein) channel replicated to three
(:func:`hpaseg.classification.data.select_channels`); the RGB stem is used as it is.
``in_chans=4``: RGBY. Pretrained RGB stems are adapted with
:func:`hpaseg.runtime.stems.rgb_to_rgby_weight`, as for the Mask R-CNN stems: the
red, green and blue kernels are kept and the yellow (ER) kernel starts as the mean of
the red and green kernels (a choice: yellow is a stain of its own, with no ImageNet
counterpart). timm's own
``in_chans=4`` adaptation (RGB kernels repeated and scaled by 3/4) is not used.

Pretrained weights
------------------
``pretrained=None``: random initialisation. ``"imagenet"``: timm's download
(``timm.create_model(name, pretrained=True)``; needs the internet or a filled
Hugging Face cache). A path: a timm checkpoint of the same architecture holding a
state dict (possibly under ``"state_dict"`` or ``"model"``); its classifier is dropped.
Inputs are normalised with the backbone's ImageNet mean and std
(:func:`normalization`); yellow gets the mean of the red and green statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import timm
import torch
from torch import nn

from ..classes import NUM_CLASSES
from ..errors import InputError
from ..runtime.checkpoint import read_checkpoint
from ..runtime.stems import RGBY_CHANNELS, adapt_state_dict_stem
from ..weak import StandardizedMLP

__all__ = [
    "DESCRIPTORS",
    "DescriptorNet",
    "CropNet",
    "BACKBONES",
    "HEAD_HIDDEN",
    "MIN_INPUT_PX",
    "Classifier",
    "check_backbone",
    "check_input_size",
    "build_classifier",
    "load_rgb_weights",
    "normalization",
]

#: Our backbone names -> timm model names.
BACKBONES: dict[str, str] = {
    "nfnet_l0": "nfnet_l0",
    "nfnet_f1": "dm_nfnet_f1",
    "resnet50": "resnet50",
    "inception_v3": "inception_v3",
    "efficientnet_b0": "efficientnet_b0",
    "efficientnet_b3": "efficientnet_b3",
    "efficientnet_b5": "efficientnet_b5",
    "resnet18": "resnet18",
}
#: The backbone name of the descriptor network (:class:`DescriptorNet`): per-cell
#: descriptors (:mod:`hpaseg.descriptors`) instead of pixels; cell level only.
DESCRIPTORS = "descriptors"
#: Width of the hidden layer of the head (the study's 512).
HEAD_HIDDEN = 512
#: Smallest input side (px) a backbone accepts; others work from 32 px.
MIN_INPUT_PX: dict[str, int] = {"inception_v3": 75}
_DEFAULT_MIN_INPUT_PX = 32


def check_backbone(name: str, *, param: str = "backbone") -> str:
    """Return the timm model name of backbone ``name`` (``descriptors`` for the descriptor
    network); :class:`InputError` for an unknown one.

    >>> check_backbone("nfnet_f1")
    'dm_nfnet_f1'
    """
    if name == DESCRIPTORS:
        return name
    if name not in BACKBONES:
        raise InputError(
            f"{param} {name!r}: unknown backbone; expected {DESCRIPTORS} or one of {', '.join(BACKBONES)}", param=param
        )
    return BACKBONES[name]


class DescriptorNet(StandardizedMLP):
    """Per-cell descriptors -> standardised -> ``depth`` x (Linear ``hidden``, ReLU, Dropout)
    -> Linear ``num_classes`` logits.

    ``forward`` takes ``(N, D)`` raw descriptors (:func:`hpaseg.descriptors.describe_cells`);
    the standardisation (``mean``, ``std`` of the training cells) is part of the model.
    """

    def __init__(
        self,
        n_inputs: int,
        *,
        hidden: int = 256,
        depth: int = 2,
        dropout: float = 0.1,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__(n_inputs, n_inputs, hidden=hidden, depth=depth, dropout=dropout, num_classes=num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(x))


def check_input_size(name: str, size: int, *, param: str = "image_size") -> None:
    """Refuse an input side the backbone cannot take (too small for its strides)."""
    smallest = MIN_INPUT_PX.get(name, _DEFAULT_MIN_INPUT_PX)
    if size < smallest:
        raise InputError(f"{param} {size}: backbone {name!r} needs inputs of at least {smallest} px", param=param)


class Classifier(nn.Module):
    """Backbone features (global average pooled) -> Linear 512 -> ReLU -> Linear ``num_classes``.

    ``forward`` takes ``(N, C, H, W)`` float normalised images and returns ``(N, num_classes)``
    logits (apply a sigmoid for per-class probabilities).
    """

    def __init__(
        self, backbone: nn.Module, num_features: int, num_classes: int = NUM_CLASSES, hidden: int = HEAD_HIDDEN
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Linear(num_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class CropNet(nn.Module):
    """A :class:`Classifier` on uint8 RGBY cell crops: the cell network of the weak-supervision
    trainer for a CNN backbone (the descriptors' is :class:`DescriptorNet`).

    ``forward`` takes ``(N, S, S, 4)`` uint8 crops as cached
    (:func:`hpaseg.classification.data.crop_cells`), scales them to [0, 1] and normalises
    them with ``mean`` and ``std`` (the backbone's, :func:`normalization`), and returns
    ``(N, num_classes)`` logits; in training mode each crop is first turned by a random one
    of the 8 right-angle rotations and flips (a cell has no orientation; drawn from torch's
    generator, so seeded runs repeat). :meth:`features` gives the pooled backbone features
    ``(N, F)``, the inputs of the run's image head
    (:class:`hpaseg.weak.ImageHead`, pooled over an image's cells).
    """

    def __init__(self, classifier: Classifier, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.classifier = classifier
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    @property
    def num_features(self) -> int:
        """Width of :meth:`features`."""
        return int(self.classifier.head[0].in_features)

    def _inputs(self, crops: torch.Tensor) -> torch.Tensor:
        x = crops.permute(0, 3, 1, 2).float().div_(255.0)
        if self.training:
            x = _turn(x)
        return (x - self.mean) / self.std

    def features(self, crops: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features ``(N, F)`` of ``(N, S, S, 4)`` uint8 crops."""
        return self.classifier.backbone(self._inputs(crops))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of :meth:`features`."""
        return self.classifier.head(features)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(crops))


def _turn(x: torch.Tensor) -> torch.Tensor:
    """Each ``(C, S, S)`` image of ``x`` under a random one of the 8 symmetries of the square."""
    which = torch.randint(0, 8, (len(x),))
    out = torch.empty_like(x)
    for k in range(8):
        rows = (which == k).nonzero().flatten()
        if len(rows):
            turned = torch.rot90(x[rows], k % 4, (2, 3))
            out[rows] = turned.flip(3) if k >= 4 else turned
    return out


def _unwrap(state: object) -> dict:
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise InputError(f"expected a state dict, got {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_rgb_weights(name: str, source: str | Path) -> dict[str, torch.Tensor]:
    """The RGB state dict of backbone ``name`` from ``"imagenet"`` (timm download) or a file."""
    timm_name = check_backbone(name)
    if str(source) == "imagenet":
        try:
            return timm.create_model(timm_name, pretrained=True, num_classes=0).state_dict()
        except Exception as exc:  # network, hub and cache errors come in many types
            raise InputError(
                f"pretrained imagenet: cannot get timm's {timm_name} weights ({type(exc).__name__}: {exc}); go online or give a local checkpoint file",
                param="pretrained",
            ) from exc
    path = Path(source)
    state = read_checkpoint(path, param="pretrained", hint=f"give a timm {timm_name} checkpoint or 'imagenet'")
    try:
        return _unwrap(state)
    except InputError as exc:
        raise InputError(f"pretrained {path}: {exc}", param="pretrained") from None


def _load_into(backbone: nn.Module, state: dict[str, torch.Tensor], name: str, source: str | Path) -> None:
    cfg = backbone.pretrained_cfg
    stem_key = f"{cfg['first_conv']}.weight"
    head_prefixes = tuple(
        f"{c}." for c in ([cfg["classifier"]] if isinstance(cfg["classifier"], str) else cfg["classifier"])
    )
    if stem_key not in state:
        raise InputError(
            f"pretrained {source}: no {stem_key!r} in the checkpoint; it is not a timm {BACKBONES[name]} checkpoint",
            param="pretrained",
        )
    state = {k: v for k, v in state.items() if not k.startswith(head_prefixes)}
    own = backbone.state_dict()
    if own[stem_key].shape[1] == RGBY_CHANNELS and state[stem_key].shape[1] == 3:
        adapt_state_dict_stem(state, stem_key)
    mismatch = [k for k in own if k in state and own[k].shape != state[k].shape]
    missing = [k for k in own if k not in state]
    if mismatch or missing:
        example = (mismatch or missing)[:3]
        raise InputError(
            f"pretrained {source}: {len(mismatch)} tensors of another shape and {len(missing)} missing (e.g. {example}); the checkpoint is for another architecture than {BACKBONES[name]}",
            param="pretrained",
        )
    backbone.load_state_dict({k: state[k] for k in own})


def build_classifier(
    name: str, *, in_chans: int = RGBY_CHANNELS, pretrained: str | Path | None = None, num_classes: int = NUM_CLASSES
) -> Classifier:
    """A :class:`Classifier` on backbone ``name`` taking ``in_chans`` (3 or 4) channels.

    Parameters
    ----------
    name : str
        One of :data:`BACKBONES`.
    in_chans : int
        3 (green replicated, or RGB) or 4 (RGBY).
    pretrained : None, "imagenet" or path
        See the module docstring; an RGB checkpoint's stem is adapted when ``in_chans`` is 4.
    num_classes : int

    Raises
    ------
    InputError
        Unknown backbone, or a checkpoint that does not fit it.
    """

    timm_name = check_backbone(name)
    if in_chans not in (3, RGBY_CHANNELS):
        raise InputError(f"in_chans {in_chans}: expected 3 or {RGBY_CHANNELS}", param="in_chans")
    backbone = timm.create_model(timm_name, pretrained=False, num_classes=0, in_chans=in_chans)
    if pretrained is not None:
        _load_into(backbone, load_rgb_weights(name, pretrained), name, pretrained)
    return Classifier(backbone, backbone.num_features, num_classes)


def normalization(name: str, in_chans: int = RGBY_CHANNELS) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel ``(mean, std)`` on the [0, 1] scale that the backbone's pretrained weights expect.

    >>> normalization("efficientnet_b0")[0]
    (0.485, 0.456, 0.406, 0.4705)
    >>> normalization("inception_v3", 3)
    ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    """

    cfg = timm.get_pretrained_cfg(check_backbone(name))
    mean, std = tuple(float(v) for v in cfg.mean), tuple(float(v) for v in cfg.std)
    if in_chans == RGBY_CHANNELS:
        mean += (round((mean[0] + mean[1]) / 2, 6),)
        std += (round((std[0] + std[1]) / 2, 6),)
    return mean, std
