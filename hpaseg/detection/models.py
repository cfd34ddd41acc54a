"""Mask R-CNN for RGBY cells on torchvision: DenseNet121(-FPN), ResNet101-FPN, ResNeXt101-FPN.

Every model takes four-channel RGBY images (float in [0, 1], shape (4, H, W)). Anchor
sizes are set for cells, which span roughly 100-600 px in a 2048-px HPA image, and
scale with the working image size. One instance per cell: the box and mask heads detect
"cell" vs background (class-agnostic, label 1), and a multi-label head
(:class:`~hpaseg.detection.heads.MultiLabelRoIHeads`) gives each cell 19 sigmoid
probabilities (``label_probs`` of each detection), trained on the COCO files' per-cell labels.

Backbones (``BACKBONES``):

* ``densenet121`` (default): DenseNet121 with an FPN over its four dense blocks.
* ``densenet121_c5``: the earlier HPA work's variant, the final 1024-channel map alone
  (one feature level; heavier heads, kept for comparison).
* ``resnet101_fpn``, ``resnext101_fpn`` (ResNeXt101-32x8d): torchvision's ResNet-FPN.
* ``resnet18_fpn``: ResNet18-FPN, the light backbone of the CPU preset
  (:data:`hpaseg.pipeline.routes.MASKRCNN_CPU`): far fewer operations per iteration, so
  more iterations fit a CPU budget; the GPU preset stays DenseNet121 / ResNet101 / ResNeXt101.

Pretrained weights: ``pretrained=None`` (random), ``"imagenet"`` (torchvision's download
API; needs the internet or a filled ``TORCH_HOME`` cache) or a path to a torchvision
classification checkpoint of the same architecture. The RGB stem is adapted to RGBY
(:mod:`hpaseg.runtime.stems`).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from ..classes import NUM_CLASSES, REFERENCE_SIZE_PX
from ..errors import InputError
from ..runtime.checkpoint import read_checkpoint
from ..runtime.stems import adapt_first_conv
from .heads import DEFAULT_DISTILL_WEIGHT, DEFAULT_LABEL_INPUTS, MultiLabelRoIHeads, hand_images_to_heads

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "ANCHOR_SIZES_PX_AT_2048",
    "DETECTION_CLASSES",
    "FPN_CHANNELS",
    "MODEL_KIND",
    "RGBY_MEAN",
    "RGBY_STD",
    "RPN_PRE_NMS_TOP_N",
    "RPN_POST_NMS_TOP_N",
    "build_maskrcnn",
    "check_fpn_channels",
    "classification_net",
    "load_classification_weights",
]

#: Anchor sizes at a 2048-px image, smallest to largest feature level; scaled by image_size / 2048.
ANCHOR_SIZES_PX_AT_2048: tuple[int, ...] = (64, 128, 256, 512, 1024)
#: Anchor aspect ratios (cells are round to elongated).
ANCHOR_ASPECT_RATIOS: tuple[float, ...] = (0.5, 1.0, 2.0)
#: Per-channel normalisation: ImageNet's RGB statistics (what pretrained stems expect);
#: yellow gets the mean of red and green, as its kernel does.
RGBY_MEAN: tuple[float, ...] = (0.485, 0.456, 0.406, 0.4705)
RGBY_STD: tuple[float, ...] = (0.229, 0.224, 0.225, 0.2265)
#: Detections kept per image: HPA images hold up to ~60 cells (before NMS of duplicates).
DETECTIONS_PER_IMAGE = 300
#: RPN proposals per FPN level kept before NMS, (training, inference), and per image after
#: it: detectron2's values in ``Base-HPA-MaskRCNN.yaml`` (``MODEL.RPN.PRE_NMS_TOPK_*``,
#: ``POST_NMS_TOPK_*``), so both engines train and predict on the same proposals
#: (torchvision's own defaults keep 2000 after NMS in training).
RPN_PRE_NMS_TOP_N: tuple[int, int] = (2000, 1000)
RPN_POST_NMS_TOP_N: tuple[int, int] = (1000, 1000)
#: Box/mask head classes: background and cell.
DETECTION_CLASSES = 2
#: Checkpoint ``kind`` of this model (class-agnostic cells + multi-label head); earlier
#: checkpoints (softmax heads over 19 classes, one instance per (cell, label)) lack it.
MODEL_KIND = "maskrcnn-cells-multilabel"
#: Channels of the FPN levels (and of the RPN, box and mask heads that read them):
#: torchvision's and detectron2's 256. Fewer (``fpn_channels``) make the heads, not the
#: backbone, cheaper: the CPU preset's (:data:`hpaseg.pipeline.routes.MASKRCNN_CPU`).
FPN_CHANNELS = 256

# torchvision classification constructor and stem key of each backbone.
_NETS: dict[str, tuple[Callable[..., nn.Module], str, str]] = {
    "densenet121": (torchvision.models.densenet121, "features.conv0.weight", "DenseNet121_Weights"),
    "densenet121_c5": (torchvision.models.densenet121, "features.conv0.weight", "DenseNet121_Weights"),
    "resnet101_fpn": (torchvision.models.resnet101, "conv1.weight", "ResNet101_Weights"),
    "resnext101_fpn": (torchvision.models.resnext101_32x8d, "conv1.weight", "ResNeXt101_32X8D_Weights"),
    "resnet18_fpn": (torchvision.models.resnet18, "conv1.weight", "ResNet18_Weights"),
}
#: Channels of layers 1-4 of the ResNets (BasicBlock for ResNet18, Bottleneck otherwise).
_RESNET_CHANNELS: dict[str, list[int]] = {"resnet18_fpn": [64, 128, 256, 512]}
BACKBONES: tuple[str, ...] = tuple(_NETS)
DEFAULT_BACKBONE = "densenet121"


def _check_backbone(name: str) -> None:
    if name not in _NETS:
        raise InputError(
            f"backbone {name!r}: unknown backbone; expected one of {', '.join(BACKBONES)}", param="backbone"
        )


def check_fpn_channels(backbone: str, fpn_channels: int) -> None:
    """Refuse an ``fpn_channels`` that ``backbone`` cannot have: not a positive count, or
    other than :data:`FPN_CHANNELS` for ``densenet121_c5`` (no FPN).

    >>> check_fpn_channels("resnet18_fpn", 64)
    >>> check_fpn_channels("densenet121_c5", 64)
    Traceback (most recent call last):
    ...
    hpaseg.errors.InputError: fpn_channels 64: densenet121_c5 has no FPN; leave it at 256
    """
    if fpn_channels < 1:
        raise InputError(f"fpn_channels {fpn_channels}: expected a positive count", param="fpn_channels")
    if backbone == "densenet121_c5" and fpn_channels != FPN_CHANNELS:
        raise InputError(
            f"fpn_channels {fpn_channels}: densenet121_c5 has no FPN; leave it at {FPN_CHANNELS}",
            param="fpn_channels",
        )


def _fix_densenet_keys(state_dict: dict) -> dict:
    # Old DenseNet checkpoints name 'norm.1' what torchvision now calls 'norm1' (same fix as torchvision's loader).
    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
    )
    out = OrderedDict()
    for key, value in state_dict.items():
        m = pattern.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def load_classification_weights(net: nn.Module, backbone: str, source: str | Path) -> None:
    """Load RGB classification weights into ``net`` (before its stem is adapted to RGBY).

    Parameters
    ----------
    source : str or path
        ``"imagenet"`` (torchvision download API, DEFAULT weights) or a checkpoint file
        holding a state dict (possibly under ``"state_dict"`` or ``"model"``).
    """
    _check_backbone(backbone)
    ctor, stem_key, weights_enum = _NETS[backbone]
    if str(source) == "imagenet":
        weights = getattr(torchvision.models, weights_enum).DEFAULT
        state = weights.get_state_dict(progress=True)
    else:
        state = read_checkpoint(
            source, param="pretrained", hint=f"give a torchvision {backbone.split('_')[0]} checkpoint or 'imagenet'"
        )
        for wrapper in ("state_dict", "model"):
            if isinstance(state, dict) and wrapper in state and isinstance(state[wrapper], dict):
                state = state[wrapper]
        if isinstance(state, dict) and state and all(str(k).startswith("module.") for k in state):
            state = {k[len("module.") :]: v for k, v in state.items()}  # saved from DataParallel / DDP
    state = _fix_densenet_keys(dict(state))
    if stem_key not in state:
        raise InputError(
            f"pretrained {source}: no {stem_key!r} in the checkpoint; it is not a torchvision {backbone} classification checkpoint",
            param="pretrained",
        )
    own = net.state_dict()
    shape_mismatch = [
        k
        for k in own
        if k in state
        and own[k].shape != state[k].shape
        and not k.endswith(("fc.weight", "fc.bias", "classifier.weight", "classifier.bias"))
    ]
    if shape_mismatch:
        raise InputError(
            f"pretrained {source}: tensor shapes differ from {backbone} for {shape_mismatch[:3]}; the checkpoint is for another architecture",
            param="pretrained",
        )
    state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in state and not k.startswith(("fc.", "classifier."))]
    if missing:
        raise InputError(
            f"pretrained {source}: {len(missing)} backbone tensors missing (e.g. {missing[:3]}); the checkpoint is for another architecture",
            param="pretrained",
        )
    net.load_state_dict(state, strict=False)


def _freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d by a FrozenBatchNorm2d with the same statistics."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            _freeze_batchnorm(child)
    return module


def classification_net(backbone: str, pretrained: str | Path | None = None) -> nn.Module:
    """The torchvision classification network of ``backbone`` with an RGBY stem."""
    _check_backbone(backbone)
    ctor, _, _ = _NETS[backbone]
    net = ctor(weights=None)
    if pretrained is not None:
        load_classification_weights(net, backbone, pretrained)
    if backbone.startswith("densenet"):
        net.features.conv0 = adapt_first_conv(net.features.conv0)
    else:
        net.conv1 = adapt_first_conv(net.conv1)
    return net


def _feature_extractor(
    backbone: str, pretrained: str | Path | None, frozen: bool, fpn_channels: int = FPN_CHANNELS
) -> tuple[nn.Module, int]:
    """The backbone as a module returning an OrderedDict of feature maps, and its number of levels.

    ``frozen``: FrozenBatchNorm2d everywhere and, for the ResNets, the stem and ``layer1``
    not trained (detectron2's ``FrozenBN`` with ``FREEZE_AT: 2``)."""
    net = classification_net(backbone, pretrained)
    if frozen:
        _freeze_batchnorm(net)  # batches of 1-4 images: keep the pretrained statistics
    if backbone == "densenet121_c5":
        features = nn.Sequential(net.features, nn.ReLU(inplace=True))
        features.out_channels = net.classifier.in_features  # 1024
        return _SingleLevel(features), 1
    if backbone == "densenet121":
        # Dense blocks 1-4 (strides 4, 8, 16, 32); norm5 closes block 4.
        return (
            BackboneWithFPN(
                net.features,
                return_layers={"denseblock1": "0", "denseblock2": "1", "denseblock3": "2", "norm5": "3"},
                in_channels_list=[256, 512, 1024, 1024],
                out_channels=fpn_channels,
                extra_blocks=LastLevelMaxPool(),
            ),
            5,
        )
    if frozen:  # as torchvision: train layers 2-4 of a pretrained ResNet
        for name, param in net.named_parameters():
            if not name.startswith(("layer2", "layer3", "layer4")):
                param.requires_grad_(False)
    return (
        BackboneWithFPN(
            net,
            return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
            in_channels_list=_RESNET_CHANNELS.get(backbone, [256, 512, 1024, 2048]),
            out_channels=fpn_channels,
            extra_blocks=LastLevelMaxPool(),
        ),
        5,
    )


class _SingleLevel(nn.Module):
    """Wrap a feature network so it returns ``{"0": features}`` as Mask R-CNN expects."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.out_channels = body.out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict([("0", self.body(x))])


def anchor_sizes(image_size: int, levels: int) -> tuple[tuple[int, ...], ...]:
    """Anchor sizes per feature level for a working image of ``image_size`` px.

    >>> anchor_sizes(512, 5)
    ((16,), (32,), (64,), (128,), (256,))
    >>> anchor_sizes(512, 1)
    ((16, 32, 64, 128, 256),)
    """
    sizes = tuple(max(4, round(s * image_size / REFERENCE_SIZE_PX)) for s in ANCHOR_SIZES_PX_AT_2048)
    return tuple((s,) for s in sizes) if levels == len(sizes) else (sizes,)


def build_maskrcnn(
    backbone: str = DEFAULT_BACKBONE,
    *,
    image_size: int = 1024,
    pretrained: str | Path | None = None,
    num_classes: int = NUM_CLASSES,
    score_threshold: float = 0.05,
    roi_batch_size: int = 512,
    label_loss_weight: float = 1.0,
    frozen_backbone: bool | None = None,
    label_inputs: str = DEFAULT_LABEL_INPUTS,
    distill_weight: float = DEFAULT_DISTILL_WEIGHT,
    image_head: bool = False,
    fpn_channels: int = FPN_CHANNELS,
) -> MaskRCNN:
    """Build a four-channel Mask R-CNN: class-agnostic cells and a multi-label head.

    Parameters
    ----------
    backbone : str
        One of :data:`BACKBONES`.
    image_size : int
        Working size in px: images are resized so their longer side is this.
    pretrained : None, "imagenet" or path
        RGB classification weights for the backbone, adapted to RGBY.
    num_classes : int
        Classes of the multi-label head (19).
    score_threshold : float
        Minimum cell (detection) score of a returned detection.
    roi_batch_size : int
        Proposals per image the box head trains on (torchvision's default 512; fewer is
        faster and enough for the ~10-60 cells of an image).
    label_loss_weight : float
        Factor of the multi-label head's loss (``loss_labels``).
    frozen_backbone : bool, optional
        FrozenBatchNorm2d in the backbone and, for the ResNets, the stem and ``layer1``
        frozen, as detectron2's configs (``FrozenBN``, ``FREEZE_AT: 2``); default: when
        ``pretrained`` is given (trainable BatchNorm suits training from scratch).
    label_inputs : str
        What the label head reads: ``"pixels+features"`` (default) or ``"features"``
        (:data:`hpaseg.detection.heads.LABEL_INPUTS`).
    distill_weight : float
        Weight of a teacher's probabilities in the label head's targets, for cells that
        have them (:func:`hpaseg.detection.heads.distill_targets`).
    image_head : bool
        Hold an image head on the pixel head's features of the cells
        (:class:`~hpaseg.detection.heads.MultiLabelRoIHeads`; fitted by the trainer).
    fpn_channels : int
        Channels of the FPN levels, and the width of the mask head's four convolutions
        (default :data:`FPN_CHANNELS`, torchvision's mask head); not for
        ``densenet121_c5``, which has no FPN.

    Returns
    -------
    torchvision.models.detection.MaskRCNN
        Its ``roi_heads`` is a :class:`~hpaseg.detection.heads.MultiLabelRoIHeads`. Training
        targets need ``boxes``, ``labels`` (all 1), ``masks`` and ``multilabels`` (cells, 19);
        in eval mode each output also has ``label_probs`` (detections, 19).
    """
    _check_backbone(backbone)
    check_fpn_channels(backbone, fpn_channels)
    frozen = pretrained is not None if frozen_backbone is None else bool(frozen_backbone)
    features, levels = _feature_extractor(backbone, pretrained, frozen, fpn_channels)
    featmap_names = ["0"] if levels == 1 else ["0", "1", "2", "3"]
    sizes = anchor_sizes(image_size, levels)
    anchors = AnchorGenerator(sizes=sizes, aspect_ratios=(ANCHOR_ASPECT_RATIOS,) * len(sizes))
    model = MaskRCNN(
        features,
        num_classes=DETECTION_CLASSES,
        min_size=image_size,
        max_size=image_size,
        image_mean=list(RGBY_MEAN),
        image_std=list(RGBY_STD),
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(featmap_names=featmap_names, output_size=7, sampling_ratio=2),
        mask_roi_pool=MultiScaleRoIAlign(featmap_names=featmap_names, output_size=14, sampling_ratio=2),
        box_score_thresh=score_threshold,
        box_detections_per_img=DETECTIONS_PER_IMAGE,
        box_batch_size_per_image=roi_batch_size,
        rpn_pre_nms_top_n_train=RPN_PRE_NMS_TOP_N[0],
        rpn_pre_nms_top_n_test=RPN_PRE_NMS_TOP_N[1],
        rpn_post_nms_top_n_train=RPN_POST_NMS_TOP_N[0],
        rpn_post_nms_top_n_test=RPN_POST_NMS_TOP_N[1],
    )
    if levels > 1 and fpn_channels != FPN_CHANNELS:  # a mask head as wide as the levels (torchvision's: 4 x 256)
        model.roi_heads.mask_head = MaskRCNNHeads(fpn_channels, (fpn_channels,) * 4, 1)
        model.roi_heads.mask_predictor = MaskRCNNPredictor(fpn_channels, fpn_channels, DETECTION_CLASSES)
    model.roi_heads = MultiLabelRoIHeads(
        model.roi_heads,
        num_classes,
        label_loss_weight=label_loss_weight,
        label_inputs=label_inputs,
        distill_weight=distill_weight,
        image_head=image_head,
    )
    hand_images_to_heads(model)
    return model
