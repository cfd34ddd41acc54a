"""The RoI heads of hpaseg's torchvision Mask R-CNN: class-agnostic cell detection and
masks (torchvision's own heads, one foreground class) plus a multi-label head that gives
each cell a probability for every one of the 19 classes.

The label head (:class:`LabelHead`) is its own two-layer MLP on the RoI-pooled features
the box head reads (7x7 per FPN channel), so what it learns does not compete with the
class-agnostic box features. Training: RoIs are the image's ground-truth
cell boxes plus up to ``label_samples_per_image`` foreground proposals (box IoU >= the
box head's foreground threshold with a cell, which they take the labels of), each with
its cell's multi-hot target (``targets[i]["multilabels"]``, shape (cells, 19)); loss
``loss_labels`` = mean binary cross-entropy (:func:`multilabel_loss`). Inference: the
head runs on the final detections' boxes; each detection gets ``label_probs`` (19
sigmoid probabilities).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import box_iou

__all__ = ["LABEL_SAMPLES_PER_IMAGE", "LABEL_REPRESENTATION", "LabelHead", "MultiLabelRoIHeads", "multilabel_loss"]

#: Foreground proposals per image the label head trains on, besides the ground-truth boxes.
LABEL_SAMPLES_PER_IMAGE = 64
#: Width of the label head's hidden layers.
LABEL_REPRESENTATION = 512


class LabelHead(nn.Sequential):
    """Two hidden layers (ReLU) and one logit per class, on flattened RoI features.

    Parameters
    ----------
    in_features : int
        Channels x height x width of a pooled RoI.
    num_labels : int
    representation : int
        Width of the hidden layers.
    """

    def __init__(self, in_features: int, num_labels: int, representation: int = LABEL_REPRESENTATION) -> None:
        super().__init__(
            nn.Flatten(start_dim=1),
            nn.Linear(in_features, representation),
            nn.ReLU(inplace=True),
            nn.Linear(representation, representation),
            nn.ReLU(inplace=True),
            nn.Linear(representation, num_labels),
        )
        self.num_labels = num_labels


def multilabel_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of per-RoI label logits against multi-hot targets.

    Parameters
    ----------
    logits : Tensor, shape (R, C)
    targets : Tensor, shape (R, C), float in {0, 1}

    Returns
    -------
    Tensor, scalar; 0 (with a gradient path) when there is no RoI.

    >>> float(multilabel_loss(torch.zeros(2, 3), torch.ones(2, 3))) == float(torch.log(torch.tensor(2.0)))
    True
    """
    if logits.numel() == 0:
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype))


class MultiLabelRoIHeads(RoIHeads):
    """torchvision's RoI heads (cell vs background boxes and masks) plus a multi-label head.

    Built from the heads torchvision's ``MaskRCNN`` made, keeping their modules and settings.

    Parameters
    ----------
    heads : RoIHeads
        Box and mask heads with two classes (background, cell).
    num_labels : int
        Classes of the label head (19).
    label_samples_per_image : int
        Foreground proposals per image the label head trains on, besides the ground truth.
    label_loss_weight : float
        Factor of ``loss_labels``.
    """

    def __init__(
        self,
        heads: RoIHeads,
        num_labels: int,
        *,
        label_samples_per_image: int = LABEL_SAMPLES_PER_IMAGE,
        label_loss_weight: float = 1.0,
    ) -> None:
        super().__init__(
            heads.box_roi_pool,
            heads.box_head,
            heads.box_predictor,
            heads.proposal_matcher.high_threshold,
            heads.proposal_matcher.low_threshold,
            heads.fg_bg_sampler.batch_size_per_image,
            heads.fg_bg_sampler.positive_fraction,
            heads.box_coder.weights,
            heads.score_thresh,
            heads.nms_thresh,
            heads.detections_per_img,
            mask_roi_pool=heads.mask_roi_pool,
            mask_head=heads.mask_head,
            mask_predictor=heads.mask_predictor,
        )
        channels = heads.box_head.fc6.in_features  # FPN channels x pooled height x width
        self.label_head = LabelHead(channels, num_labels)
        self.label_samples_per_image = int(label_samples_per_image)
        self.label_loss_weight = float(label_loss_weight)

    def label_logits(
        self, features: dict[str, torch.Tensor], boxes: list[torch.Tensor], image_shapes: list[tuple[int, int]]
    ) -> torch.Tensor:
        """Label logits (sum of boxes, num_labels) of RoIs ``boxes`` (one (R_i, 4) tensor per image)."""
        if sum(len(b) for b in boxes) == 0:
            return next(self.label_head.parameters()).new_zeros((0, self.label_head.num_labels))
        return self.label_head(self.box_roi_pool(features, boxes, image_shapes))

    def label_training_rois(
        self, proposals: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per image: the ground-truth boxes and up to ``label_samples_per_image`` foreground
        proposals matched to them; and the multi-hot targets of all, concatenated."""
        rois, labels = [], []
        for props, target in zip(proposals, targets):
            gt_boxes, multi = target["boxes"], target["multilabels"]
            if len(gt_boxes) == 0:
                rois.append(gt_boxes)
                continue
            iou = box_iou(props.detach(), gt_boxes)  # (P, G)
            best, matched = iou.max(dim=1)
            foreground = torch.nonzero(best >= self.proposal_matcher.high_threshold).flatten()
            if len(foreground) > self.label_samples_per_image:
                pick = torch.randperm(len(foreground), device=foreground.device)[: self.label_samples_per_image]
                foreground = foreground[pick]
            rois.append(torch.cat([gt_boxes, props[foreground].detach()]))
            labels.append(torch.cat([multi, multi[matched[foreground]]]))
        width = self.label_head.num_labels
        return rois, torch.cat(labels) if labels else proposals[0].new_zeros((0, width))

    def forward(self, features, proposals, image_shapes, targets=None):  # noqa: D102 (RoIHeads.forward)
        result, losses = super().forward(features, proposals, image_shapes, targets)
        if self.training:
            rois, label_targets = self.label_training_rois(proposals, targets)
            loss = multilabel_loss(self.label_logits(features, rois, image_shapes), label_targets)
            losses["loss_labels"] = self.label_loss_weight * loss
        else:
            boxes = [r["boxes"] for r in result]
            probs = torch.sigmoid(self.label_logits(features, boxes, image_shapes))
            for r, p in zip(result, probs.split([len(b) for b in boxes])):
                r["label_probs"] = p
        return result, losses
