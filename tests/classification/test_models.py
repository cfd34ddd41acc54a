"""Tests of hpaseg.classification: losses, timm backbones and RGBY stems."""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision

from hpaseg.classes import NUM_CLASSES
from hpaseg.classification import make_loss
from hpaseg.classification.models import BACKBONES, build_classifier, normalization
from hpaseg.errors import InputError
from hpaseg.runtime.stems import rgb_to_rgby_weight

from ..weights import assert_rgb_weights_round_trip

IMAGE_PX, CROP_PX = 64, 32


def test_focal_loss_is_torchvisions_on_a_hand_case():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 0.25]])
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = 0.25 * targets + 0.75 * (1 - targets)
    by_hand = (alpha_t * (1 - p_t) ** 2 * ce).mean()
    # First element alone: x = 0, y = 1 -> 0.25 * 0.5^2 * ln 2.
    assert float(make_loss("focal")(logits[:1, :1], targets[:1, :1])) == pytest.approx(0.25 * 0.25 * math.log(2))
    torch.testing.assert_close(make_loss("focal")(logits, targets), by_hand)
    torch.testing.assert_close(
        make_loss("focal")(logits, targets),
        torchvision.ops.sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2, reduction="mean"),
    )
    torch.testing.assert_close(make_loss("bce")(logits, targets), ce.mean())
    with pytest.raises(InputError, match="loss 'l2': expected one of bce, focal"):
        make_loss("l2")


def test_stem_adapted_from_a_random_rgb_checkpoint_file(tmp_path):
    """A randomly initialised timm checkpoint on disk stands in for ImageNet weights."""
    rgb = timm.create_model("efficientnet_b0", pretrained=False)  # with its 1000-class classifier
    path = tmp_path / "efficientnet_b0_rgb.pth"
    torch.save({"state_dict": rgb.state_dict()}, path)
    model = build_classifier("efficientnet_b0", in_chans=4, pretrained=path)
    stem = model.backbone.conv_stem.weight
    assert stem.shape[1] == 4
    torch.testing.assert_close(stem, rgb_to_rgby_weight(rgb.conv_stem.weight))
    torch.testing.assert_close(
        stem[:, 3], (rgb.conv_stem.weight[:, 0] + rgb.conv_stem.weight[:, 1]) / 2
    )  # yellow = mean(red, green)
    torch.testing.assert_close(model.backbone.blocks[3][1].conv_pw.weight, rgb.blocks[3][1].conv_pw.weight)
    torch.testing.assert_close(model.backbone.bn2.running_var, rgb.bn2.running_var)
    assert [m.out_features for m in model.head if isinstance(m, torch.nn.Linear)] == [512, NUM_CLASSES]
    green = build_classifier("efficientnet_b0", in_chans=3, pretrained=path)
    torch.testing.assert_close(green.backbone.conv_stem.weight, rgb.conv_stem.weight)
    assert model(torch.rand(2, 4, 32, 32)).shape == (2, NUM_CLASSES)
    # NFNet stems are weight-standardised convolutions: adapted through the state dict as well.
    nf = timm.create_model("nfnet_l0", pretrained=False)
    torch.save(nf.state_dict(), tmp_path / "nfnet_l0.pth")
    nf4 = build_classifier("nfnet_l0", in_chans=4, pretrained=tmp_path / "nfnet_l0.pth")
    torch.testing.assert_close(nf4.backbone.stem.conv1.weight, rgb_to_rgby_weight(nf.stem.conv1.weight))
    assert type(nf4.backbone.stem.conv1).__name__ == "ScaledStdConv2d"


def test_backbone_names_and_bad_checkpoints(tmp_path):
    assert set(BACKBONES) == {
        "nfnet_l0",
        "nfnet_f1",
        "resnet50",
        "inception_v3",
        "efficientnet_b0",
        "efficientnet_b3",
        "efficientnet_b5",
        "resnet18",
    }
    with pytest.raises(
        InputError,
        match="backbone 'vgg16': unknown backbone; expected descriptors or one of nfnet_l0, nfnet_f1, resnet50",
    ):
        build_classifier("vgg16")
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(InputError, match="another architecture"):
        build_classifier("resnet50", pretrained=tmp_path / "resnet18.pth")
    with pytest.raises(InputError, match="no 'conv_stem.weight'"):
        build_classifier("efficientnet_b0", pretrained=tmp_path / "resnet18.pth")
    with pytest.raises(InputError, match="no such file"):
        build_classifier("resnet50", pretrained=tmp_path / "missing.pth")
    assert normalization("resnet50", 4)[1] == (0.229, 0.224, 0.225, 0.2265)


def _heads(model) -> tuple[str, ...]:
    classifier = model.pretrained_cfg["classifier"]
    return tuple(f"{c}." for c in ([classifier] if isinstance(classifier, str) else classifier))


@pytest.mark.parametrize(
    "backbone",
    [pytest.param(b, marks=pytest.mark.slow) if b == "nfnet_f1" else b for b in sorted(BACKBONES)],  # 0.5 GB file
)
def test_every_backbone_loads_a_local_rgb_checkpoint_with_its_stem_adapted(backbone, tmp_path):
    """A random RGB timm model saved as a plain state dict stands in for ImageNet weights:
    every backbone takes it offline, and its weights arrive exactly."""
    torch.manual_seed(0)
    rgb = timm.create_model(BACKBONES[backbone], pretrained=False)  # with its 1000-class head
    path = tmp_path / f"{backbone}.pth"
    torch.save(rgb.state_dict(), path)
    model = build_classifier(backbone, in_chans=4, pretrained=path)
    stem_key = f"{rgb.pretrained_cfg['first_conv']}.weight"
    assert_rgb_weights_round_trip(rgb.state_dict(), model.backbone.state_dict(), stem_key, _heads(rgb))


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module-prefix"])
def test_checkpoint_wrappers_are_read(wrap, tmp_path):
    """What training scripts save: a bare state dict, one under "state_dict" or "model",
    or keys prefixed by DataParallel's "module."."""
    torch.manual_seed(1)
    rgb = timm.create_model("efficientnet_b0", pretrained=False)
    state = rgb.state_dict()
    saved = {
        "plain": state,
        "state_dict": {"state_dict": state, "epoch": 3},
        "model": {"model": state, "optimizer": {}},
        "module-prefix": {f"module.{k}": v for k, v in state.items()},
    }[wrap]
    torch.save(saved, tmp_path / "ckpt.pth")
    model = build_classifier("efficientnet_b0", in_chans=4, pretrained=tmp_path / "ckpt.pth")
    assert_rgb_weights_round_trip(state, model.backbone.state_dict(), "conv_stem.weight", ("classifier.",))
