"""Tests of hpaseg.detection.heads: the multi-label RoI head and its loss."""

from __future__ import annotations

import math

import pytest
import torch

from hpaseg.detection import MultiLabelRoIHeads, build_maskrcnn, multilabel_loss
from hpaseg.detection.heads import PixelHead, distill_targets, fit_pixel_head
from hpaseg.errors import InputError


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


def test_distill_targets_mix_teacher_rows_and_keep_hard_rows_without_one():
    hard = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    soft = torch.tensor([[0.2, 0.6], [float("nan"), float("nan")]])
    mixed = distill_targets(hard, soft, 0.5)
    assert mixed.flatten().tolist() == pytest.approx([0.6, 0.3, 0.0, 1.0])
    assert distill_targets(hard, soft, 1.0)[0].tolist() == pytest.approx([0.2, 0.6])
    assert distill_targets(hard, None, 0.5) is hard
    # BCE is linear in the target: the loss against the mix is the mix of the losses.
    logits = torch.tensor([[0.3, -1.2]])
    both = multilabel_loss(logits, distill_targets(hard[:1], soft[:1], 0.25))
    apart = 0.75 * multilabel_loss(logits, hard[:1]) + 0.25 * multilabel_loss(logits, soft[:1])
    assert float(both) == pytest.approx(float(apart), rel=1e-6)


def test_training_targets_carry_the_teacher_to_matched_proposals():
    heads = build_maskrcnn("densenet121", image_size=64, distill_weight=1.0).roi_heads
    target = _target()
    target["label_probs"] = torch.tensor([[0.9] + [0.0] * 18, [float("nan")] * 19])
    proposals = torch.tensor([[7.0, 5.0, 28.0, 30.0], [31.0, 33.0, 61.0, 60.0]])
    _, labels = heads.label_training_rois([proposals], [target])
    # gt 0, gt 1, proposal of cell 0, proposal of cell 1: cell 0 takes the teacher's row, cell 1 keeps its labels
    assert labels[[0, 2], 0].tolist() == pytest.approx([0.9, 0.9]) and float(labels[0, 16]) == 0.0
    assert labels[[1, 3]].tolist() == [target["multilabels"][1].tolist()] * 2


def test_pixel_head_reads_the_pixels_inside_its_box_only():
    torch.manual_seed(0)
    heads = build_maskrcnn("densenet121", image_size=64).roi_heads.eval()
    assert isinstance(heads.pixel_head, PixelHead)
    features = {k: torch.rand(1, 256, 64 // s, 64 // s) for k, s in zip("0123", (4, 8, 16, 32))}
    boxes = [torch.tensor([[4.0, 4.0, 28.0, 28.0]])]
    images = torch.rand(1, 4, 64, 64)
    heads.images = images
    with torch.no_grad():
        before = heads.label_logits(features, boxes, [(64, 64)])
        heads.images = images.clone()
        heads.images[..., 40:, 40:] = 5.0  # outside the box
        outside = heads.label_logits(features, boxes, [(64, 64)])
        heads.images[..., 10:20, 10:20] = 5.0  # inside
        inside = heads.label_logits(features, boxes, [(64, 64)])
    assert torch.allclose(before, outside) and not torch.allclose(before, inside, atol=1e-4)
    features_only = build_maskrcnn("densenet121", image_size=64, label_inputs="features").roi_heads
    assert features_only.pixel_head is None


def test_the_model_hands_its_working_images_to_the_label_head():
    torch.manual_seed(0)
    model = build_maskrcnn("densenet121", image_size=64).eval()
    with torch.no_grad():
        model([torch.rand(4, 64, 48)])
    images = model.roi_heads.images
    assert images is not None and images.shape[:2] == (1, 4) and images.shape[-2] >= 64


def test_unknown_label_inputs_is_refused():
    with pytest.raises(InputError, match="label_inputs 'pixels'"):
        build_maskrcnn("densenet121", image_size=64, label_inputs="pixels")


def _two_pattern_crops(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops of two kinds: green in the centre (class 0) or green on the rim (class 1)."""
    crops = torch.zeros(n, 4, 32, 32)
    targets = torch.zeros(n, 19)
    for i in range(n):
        if i % 2:
            crops[i, 1] = 1.0
            crops[i, 1, 4:28, 4:28] = 0.0
            targets[i, 1] = 1.0
        else:
            crops[i, 1, 12:20, 12:20] = 1.0
            targets[i, 0] = 1.0
        crops[i] += 0.1 * torch.rand(4, 32, 32, generator=torch.Generator().manual_seed(i))
    return crops, targets


def test_fitting_the_pixel_head_on_cell_crops_learns_them_and_is_seeded():
    crops, targets = _two_pattern_crops()
    torch.manual_seed(0)
    head = PixelHead(19)
    state = {k: v.clone() for k, v in head.state_dict().items()}
    losses = fit_pixel_head(head, crops, targets, epochs=8, seed=3)
    assert len(losses) == 8 and losses[-1] < 0.3 * losses[0], losses
    head.eval()
    with torch.no_grad():
        p = torch.sigmoid(head(crops))
    assert bool((p[0::2, 0] > p[0::2, 1]).all()) and bool((p[1::2, 1] > p[1::2, 0]).all())
    again = PixelHead(19)
    again.load_state_dict(state)
    assert fit_pixel_head(again, crops, targets, epochs=8, seed=3) == losses  # the same seed, the same run
    assert fit_pixel_head(PixelHead(19), crops[:0], targets[:0]) == []


def test_a_frozen_pixel_head_stays_as_it_is_while_the_model_trains():
    torch.manual_seed(0)
    model = build_maskrcnn("densenet121", image_size=64)
    heads = model.roi_heads
    heads.freeze_pixel_head()
    before = {k: v.clone() for k, v in heads.pixel_head.state_dict().items()}
    model.train()
    assert not heads.pixel_head.training and all(not p.requires_grad for p in heads.pixel_head.parameters())
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    losses = model([torch.rand(4, 64, 64)], [_target()])
    sum(losses.values()).backward()
    optimizer.step()
    after = heads.pixel_head.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm statistics
    assert any(p.grad is not None for p in heads.label_head.parameters())  # the feature head still learns
