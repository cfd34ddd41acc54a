"""detectron2 RoI heads of hpaseg: class-agnostic cells (``MODEL.ROI_HEADS.NUM_CLASSES 1``)
with detectron2's standard box and mask heads, plus a multi-label head giving each cell
19 sigmoid probabilities (the detectron2 twin of :mod:`hpaseg.detection.heads`).

The label head is a linear layer on the box head's features of a RoI. Training: the
sampled foreground proposals (ground-truth boxes included, as detectron2 appends them)
with their matched cell's multi-hot labels (``gt_multilabels``, set by
:class:`~hpaseg.detection.detectron2.data.HPADatasetMapper`); loss ``loss_labels``, the
mean binary cross-entropy. Inference: the head runs on the final detections' boxes and
each predicted ``Instances`` gets ``label_probs`` (detections, 19).

Registered in detectron2's ``ROI_HEADS_REGISTRY`` as ``HPAMultiLabelROIHeads`` by
:func:`register_hpa_roi_heads` (called by :func:`~hpaseg.detection.detectron2.config.load_config`,
not on import); the HPA base YAML selects it.
"""

from __future__ import annotations

import torch
from torch import nn

from ...classes import NUM_CLASSES
from ..heads import multilabel_loss

__all__ = ["ROI_HEADS_NAME", "register_hpa_roi_heads"]

#: Name of hpaseg's RoI heads in detectron2's ROI_HEADS_REGISTRY (``MODEL.ROI_HEADS.NAME``).
ROI_HEADS_NAME = "HPAMultiLabelROIHeads"


def _heads_class():
    from detectron2.config import configurable
    from detectron2.modeling.roi_heads import StandardROIHeads

    class HPAMultiLabelROIHeads(StandardROIHeads):
        """detectron2's StandardROIHeads (one foreground class: cell) plus a multi-label head."""

        @configurable
        def __init__(self, *, label_predictor: nn.Module, **kwargs) -> None:
            super().__init__(**kwargs)
            self.label_predictor = label_predictor

        @classmethod
        def from_config(cls, cfg, input_shape):
            ret = super().from_config(cfg, input_shape)
            ret["label_predictor"] = nn.Linear(ret["box_head"].output_shape.channels, NUM_CLASSES)
            return ret

        def label_logits(self, features, boxes) -> torch.Tensor:
            """Label logits (sum of boxes, 19) of RoIs ``boxes`` (one ``Boxes`` per image)."""
            if sum(len(b) for b in boxes) == 0:
                return self.label_predictor.weight.new_zeros((0, NUM_CLASSES))
            pooled = self.box_pooler([features[f] for f in self.box_in_features], boxes)
            return self.label_predictor(self.box_head(pooled))

        def forward(self, images, features, proposals, targets=None):
            instances, losses = super().forward(images, features, proposals, targets)
            if self.training:
                foreground = [p[p.gt_classes < self.num_classes] for p in instances if p.has("gt_multilabels")]
                logits = self.label_logits(features, [p.proposal_boxes for p in foreground])
                target = torch.cat([p.gt_multilabels for p in foreground]) if foreground else logits.detach()
                losses["loss_labels"] = multilabel_loss(logits, target)
            return instances, losses

        def forward_with_given_boxes(self, features, instances):
            instances = super().forward_with_given_boxes(features, instances)
            boxes = [x.pred_boxes for x in instances]
            probs = torch.sigmoid(self.label_logits(features, boxes))
            for inst, p in zip(instances, probs.split([len(b) for b in boxes])):
                inst.label_probs = p
            return instances

    return HPAMultiLabelROIHeads


def register_hpa_roi_heads() -> None:
    """Register ``HPAMultiLabelROIHeads`` in detectron2's ROI_HEADS_REGISTRY (once; later calls do nothing)."""
    from detectron2.modeling import ROI_HEADS_REGISTRY

    if ROI_HEADS_NAME not in ROI_HEADS_REGISTRY:
        ROI_HEADS_REGISTRY.register(_heads_class())
