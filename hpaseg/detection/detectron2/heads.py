"""detectron2 RoI heads of hpaseg: class-agnostic cells (``MODEL.ROI_HEADS.NUM_CLASSES 1``)
with detectron2's standard box and mask heads, plus a multi-label head giving each cell
19 sigmoid probabilities (the detectron2 twin of :mod:`hpaseg.detection.heads`).

The label head is the torchvision engine's: :class:`hpaseg.detection.heads.LabelHead`
(its own MLP) on the box pooler's features of a RoI, plus, with ``HPA.LABEL_INPUTS``
``pixels+features`` (the default), :class:`~hpaseg.detection.heads.PixelHead` on the
RoI's pixels of the normalised input batch (:func:`~hpaseg.detection.heads.pixel_crops`).
Training: the sampled foreground proposals (ground-truth boxes included, as detectron2
appends them) with their matched cell's multi-hot labels (``gt_multilabels``) and, with
a teacher (``HPA.TEACHER``), its probabilities (``gt_label_probs``), both set by
:class:`~hpaseg.detection.detectron2.data.HPADatasetMapper`; loss ``loss_labels``, the
mean binary cross-entropy against :func:`~hpaseg.detection.heads.distill_targets`
(``HPA.DISTILL_WEIGHT``). Inference: the head runs on the final detections' boxes and
each predicted ``Instances`` gets ``label_probs`` (detections, 19).

Image head (``HPA.IMAGE_EPOCHS`` > 0, with a pixel head fitted first, ``HPA.LABEL_EPOCHS``
> 0): the torchvision engine's (:class:`~hpaseg.detection.heads.FittedLabelParts`), fitted
by :func:`~hpaseg.detection.detectron2.trainer.fit_pixel_head_on_cells` after the pixel
head; at inference each ``Instances`` also gets ``label_features`` (detections, F), which
:func:`~hpaseg.detection.detectron2.evaluator.instances_to_cells` pools over the kept
cells into the image's probabilities.

Registered in detectron2's ``ROI_HEADS_REGISTRY`` as ``HPAMultiLabelROIHeads`` by
:func:`register_hpa_roi_heads` (called by :func:`~hpaseg.detection.detectron2.config.load_config`,
not on import); the HPA base YAML selects it.
"""

from __future__ import annotations

import torch
from torch import nn

from ...classes import NUM_CLASSES
from ..heads import (
    FittedLabelParts,
    LabelHead,
    PixelHead,
    check_label_inputs,
    distill_targets,
    multilabel_loss,
    pixel_crops,
    wants_image_head,
)

__all__ = ["ROI_HEADS_NAME", "register_hpa_roi_heads"]

#: Name of hpaseg's RoI heads in detectron2's ROI_HEADS_REGISTRY (``MODEL.ROI_HEADS.NAME``).
ROI_HEADS_NAME = "HPAMultiLabelROIHeads"


def _heads_class():
    from detectron2.config import configurable
    from detectron2.modeling.roi_heads import StandardROIHeads

    class HPAMultiLabelROIHeads(FittedLabelParts, StandardROIHeads):
        """detectron2's StandardROIHeads (one foreground class: cell) plus a multi-label head."""

        @configurable
        def __init__(
            self,
            *,
            label_head: nn.Module,
            pixel_head: nn.Module | None = None,
            label_loss_weight: float = 1.0,
            distill_weight: float = 0.0,
            image_head: bool = False,
            label_inputs: str = "pixels+features",
            **kwargs,
        ) -> None:
            super().__init__(**kwargs)
            self.label_head = label_head
            self.pixel_head = pixel_head
            self.label_loss_weight = label_loss_weight
            self.distill_weight = distill_weight
            self.images: torch.Tensor | None = None  # the normalised batch of the current forward
            self.pixel_head_frozen = False
            self._add_image_head(image_head, label_inputs)

        @classmethod
        def from_config(cls, cfg, input_shape):
            ret = super().from_config(cfg, input_shape)
            channels = input_shape[cfg.MODEL.ROI_HEADS.IN_FEATURES[0]].channels
            resolution = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
            ret["label_head"] = LabelHead(channels * resolution * resolution, NUM_CLASSES)
            ret["label_loss_weight"] = cfg.HPA.LABEL_LOSS_WEIGHT
            ret["distill_weight"] = cfg.HPA.DISTILL_WEIGHT
            ret["label_inputs"] = check_label_inputs(cfg.HPA.LABEL_INPUTS)
            if ret["label_inputs"] == "pixels+features":
                ret["pixel_head"] = PixelHead(NUM_CLASSES, in_channels=len(cfg.MODEL.PIXEL_MEAN))
            ret["image_head"] = wants_image_head(cfg.HPA.IMAGE_EPOCHS, cfg.HPA.LABEL_EPOCHS, cfg.HPA.LABEL_INPUTS)
            return ret

        def label_logits(self, features, boxes) -> torch.Tensor:
            """Label logits (sum of boxes, 19) of RoIs ``boxes`` (one ``Boxes`` per image)."""
            if sum(len(b) for b in boxes) == 0:
                return next(self.label_head.parameters()).new_zeros((0, NUM_CLASSES))
            logits = self.label_head(self.box_pooler([features[f] for f in self.box_in_features], boxes))
            if self.pixel_head is not None:
                logits = logits + self.pixel_head(pixel_crops(self.images, [b.tensor for b in boxes]))
            return logits

        def forward(self, images, features, proposals, targets=None):
            self.images = images.tensor
            instances, losses = super().forward(images, features, proposals, targets)
            if self.training:
                foreground = [p[p.gt_classes < self.num_classes] for p in instances if p.has("gt_multilabels")]
                logits = self.label_logits(features, [p.proposal_boxes for p in foreground])
                if foreground:
                    soft = (
                        torch.cat([p.gt_label_probs for p in foreground])
                        if all(p.has("gt_label_probs") for p in foreground)
                        else None
                    )
                    target = distill_targets(
                        torch.cat([p.gt_multilabels for p in foreground]), soft, self.distill_weight
                    )
                else:
                    target = logits.detach()
                losses["loss_labels"] = self.label_loss_weight * multilabel_loss(logits, target)
            return instances, losses

        def forward_with_given_boxes(self, features, instances):
            instances = super().forward_with_given_boxes(features, instances)
            boxes = [x.pred_boxes for x in instances]
            probs = torch.sigmoid(self.label_logits(features, boxes))
            for inst, p in zip(instances, probs.split([len(b) for b in boxes])):
                inst.label_probs = p
            for inst, f in zip(instances, self.cell_features([b.tensor for b in boxes]) or []):
                inst.label_features = f
            return instances

    return HPAMultiLabelROIHeads


def register_hpa_roi_heads() -> None:
    """Register ``HPAMultiLabelROIHeads`` in detectron2's ROI_HEADS_REGISTRY (once; later calls do nothing)."""
    from detectron2.modeling import ROI_HEADS_REGISTRY

    if ROI_HEADS_NAME not in ROI_HEADS_REGISTRY:
        ROI_HEADS_REGISTRY.register(_heads_class())
