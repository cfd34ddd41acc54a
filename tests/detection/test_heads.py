"""Tests of hpaseg.detection.heads: the multi-label RoI head and its loss."""

from __future__ import annotations

import math

import pytest
import torch

from hpaseg.detection import MultiLabelRoIHeads, build_maskrcnn, multilabel_loss


def test_multilabel_loss_on_a_constructed_case():
    logits = torch.tensor([[10.0, -10.0, 0.0], [0.0, 0.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    # Two nearly exact terms, four log(2) terms, averaged over the six entries.
    expected = (2 * math.log1p(math.exp(-10.0)) + 4 * math.log(2.0)) / 6
    assert float(multilabel_loss(logits, targets)) == pytest.approx(expected, rel=1e-6)
    empty = torch.zeros((0, 19), requires_grad=True)
    loss = multilabel_loss(empty, torch.zeros((0, 19)))
    assert float(loss.detach()) == 0.0
    loss.backward()  # a gradient path even without RoIs


def _target():
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    masks[0, 4:30, 6:28] = 1
    masks[1, 34:60, 30:62] = 1
    multilabels = torch.zeros(2, 19)
    multilabels[0, [0, 16]] = 1
    multilabels[1, 18] = 1
    boxes = torch.tensor([[6.0, 4.0, 28.0, 30.0], [30.0, 34.0, 62.0, 60.0]])
    return {"boxes": boxes, "labels": torch.ones(2, dtype=torch.int64), "masks": masks, "multilabels": multilabels}


def test_training_rois_are_gt_boxes_and_matched_proposals():
    torch.manual_seed(0)
    heads = build_maskrcnn("densenet121", image_size=64).roi_heads
    assert isinstance(heads, MultiLabelRoIHeads)
    target = _target()
    proposals = torch.tensor([[7.0, 5.0, 28.0, 30.0], [0.0, 0.0, 4.0, 4.0], [31.0, 33.0, 61.0, 60.0]])
    rois, labels = heads.label_training_rois([proposals], [target])
    assert (
        rois[0].tolist() == torch.cat([target["boxes"], proposals[[0, 2]]]).tolist()
    )  # the background one is left out
    assert labels.tolist() == torch.cat([target["multilabels"], target["multilabels"]]).tolist()
    heads.label_samples_per_image = 1
    rois, labels = heads.label_training_rois([proposals], [target])
    assert len(rois[0]) == 3 and len(labels) == 3


def test_forward_shapes_class_agnostic_with_label_probabilities():
    torch.manual_seed(0)
    model = build_maskrcnn("densenet121", image_size=64, score_threshold=0.0)
    assert model.roi_heads.box_predictor.cls_score.out_features == 2  # background, cell
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 2
    model.train()
    losses = model([torch.rand(4, 64, 64)], [_target()])
    assert set(losses) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_mask",
        "loss_labels",
        "loss_objectness",
        "loss_rpn_box_reg",
    }
    losses["loss_labels"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.roi_heads.label_head.parameters())
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(4, 64, 64), torch.rand(4, 64, 48)])
    for o, width in zip(out, (64, 48)):
        n = len(o["boxes"])
        assert o["label_probs"].shape == (n, 19) and o["masks"].shape == (n, 1, 64, width)
        assert set(o["labels"].tolist()) <= {1}
        assert bool(((o["label_probs"] >= 0) & (o["label_probs"] <= 1)).all())
