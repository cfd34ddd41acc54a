"""Tests of hpaseg.detection.models: the four-channel Mask R-CNNs."""

from __future__ import annotations

import pytest
import torch
import torchvision

from hpaseg.detection.models import (
    BACKBONES,
    anchor_sizes,
    build_maskrcnn,
    classification_net,
)
from hpaseg.errors import InputError
from hpaseg.runtime.stems import (
    rgb_to_rgby_weight,
)

from ..weights import assert_rgb_weights_round_trip


def test_pretrained_checkpoint_file_is_adapted(tmp_path):
    """A randomly initialised torchvision checkpoint on disk stands in for ImageNet weights."""
    rgb = torchvision.models.densenet121(weights=None)
    path = tmp_path / "densenet121_rgb.pth"
    torch.save({"state_dict": rgb.state_dict()}, path)
    net = classification_net("densenet121", pretrained=path)
    stem = net.features.conv0.weight
    assert stem.shape[1] == 4
    torch.testing.assert_close(stem, rgb_to_rgby_weight(rgb.features.conv0.weight))
    torch.testing.assert_close(
        net.features.denseblock3.denselayer5.conv1.weight, rgb.features.denseblock3.denselayer5.conv1.weight
    )
    model = build_maskrcnn("densenet121", image_size=64, pretrained=path)
    assert type(model.backbone.body.norm0).__name__ == "FrozenBatchNorm2d"  # pretrained statistics kept
    torch.testing.assert_close(model.backbone.body.conv0.weight, rgb_to_rgby_weight(rgb.features.conv0.weight))


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(InputError, match="another architecture"):
        classification_net("resnet101_fpn", pretrained=path)
    with pytest.raises(InputError, match="no such file"):
        classification_net("resnet101_fpn", pretrained=tmp_path / "missing.pth")
    with pytest.raises(InputError, match="unknown backbone"):
        build_maskrcnn("vgg16")


def test_anchor_sizes_scale_with_image_size():
    assert anchor_sizes(1024, 5) == ((32,), (64,), (128,), (256,), (512,))
    assert anchor_sizes(2048, 1) == ((64, 128, 256, 512, 1024),)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_trains_and_predicts_on_rgby(backbone):
    torch.manual_seed(0)
    model = build_maskrcnn(backbone, image_size=64)
    mask = torch.zeros(1, 64, 64, dtype=torch.uint8)
    mask[0, 10:40, 12:44] = 1
    target = {
        "boxes": torch.tensor([[12.0, 10.0, 44.0, 40.0]]),
        "labels": torch.tensor([1]),
        "masks": mask,
        "multilabels": torch.eye(19)[[17]],
    }
    model.train()
    losses = model([torch.rand(4, 64, 64)], [target])
    assert set(losses) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_mask",
        "loss_labels",
        "loss_objectness",
        "loss_rpn_box_reg",
    }
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    stem = (
        model.backbone.body.conv0
        if backbone == "densenet121"
        else (model.backbone.body[0].conv0 if backbone == "densenet121_c5" else model.backbone.body.conv1)
    )
    assert stem.weight.shape[1] == 4 and stem.weight.grad is not None
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(4, 64, 64)])[0]
    assert out["masks"].shape[1:] == (1, 64, 64) and out["label_probs"].shape[1:] == (19,)
    assert model.roi_heads.box_predictor.cls_score.out_features == 2  # background + cell (class-agnostic)
    assert model.roi_heads.label_head.num_labels == 19


#: torchvision classification network and stem of each backbone (what a local checkpoint holds).
_TORCHVISION_NETS = {
    "densenet121": (torchvision.models.densenet121, "features.conv0.weight", "classifier."),
    "densenet121_c5": (torchvision.models.densenet121, "features.conv0.weight", "classifier."),
    "resnet101_fpn": (torchvision.models.resnet101, "conv1.weight", "fc."),
    "resnext101_fpn": (torchvision.models.resnext101_32x8d, "conv1.weight", "fc."),
    "resnet18_fpn": (torchvision.models.resnet18, "conv1.weight", "fc."),
}


@pytest.mark.parametrize(
    "backbone, wrap",
    [(b, "plain") for b in BACKBONES]
    + [("densenet121", "state_dict"), ("densenet121", "model"), ("densenet121", "module.")],
)
def test_every_backbone_loads_a_local_rgb_checkpoint_with_its_stem_adapted(backbone, wrap, tmp_path):
    """A random torchvision model saved to a file stands in for ImageNet weights: every
    backbone takes it offline (bare, or under "state_dict" or "model", keys with DataParallel's
    "module." prefix too), every weight but
    the classifier's arrives exactly, and the stem's yellow kernel is the mean of its red
    and green kernels (hpaseg.runtime.stems)."""
    ctor, stem_key, head = _TORCHVISION_NETS[backbone]
    torch.manual_seed(0)
    rgb = ctor(weights=None).state_dict()
    saved = {
        "plain": rgb,
        "state_dict": {"state_dict": rgb, "epoch": 90},
        "model": {"model": rgb},
        "module.": {"state_dict": {f"module.{k}": v for k, v in rgb.items()}},  # saved from DataParallel
    }[wrap]
    torch.save(saved, tmp_path / "rgb.pth")
    loaded = classification_net(backbone, pretrained=tmp_path / "rgb.pth").state_dict()
    # The classifier network keeps its own (random) head: the Mask R-CNN drops it.
    assert_rgb_weights_round_trip(rgb, {k: v for k, v in loaded.items() if not k.startswith(head)}, stem_key, (head,))
