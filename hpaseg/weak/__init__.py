"""Weak supervision: learning per-cell labels from per-image labels.

* :mod:`~hpaseg.weak.bags`: the image as a bag of cells: propagated targets (every cell
  gets its image's labels), the multiple-instance loss on a pooled cell score, and bag
  mixing (several images' cells as one bag with the union of their labels);
* :mod:`~hpaseg.weak.refine`: pseudo-label refinement: each cell re-labelled from its
  own predictions within its image's labels, cells left with none become Negative;
* :mod:`~hpaseg.weak.image_head`: the image head, image labels learned from an image's
  cell features (descriptors, CNN or Mask R-CNN pixel-head features), with bag mixing;
* :mod:`~hpaseg.weak.fusion`: cell and image probabilities fused into the per-cell scores
  every route reports, with Negative estimated from the other classes.

Pure numpy/torch on top of :mod:`hpaseg.classes`; the trainers of
:mod:`hpaseg.classification` and :mod:`hpaseg.detection` use it.
"""

from .bags import (
    MAX_MIXED_IMAGES,
    POOLINGS,
    bag_loss,
    bag_mixtures,
    cell_loss,
    mixed_bag,
    pool_logits,
    propagated_targets,
    targets_matrix,
)
from .fusion import (
    FUSIONS,
    IMAGE_POOLINGS,
    NEGATIVE_RULES,
    ScoreRule,
    fuse_scores,
    image_estimate,
    image_probabilities,
    negative_from_classes,
)
from .image_head import IMAGE_HEAD, ImageHead, StandardizedMLP, fit_image_head, image_head_probabilities, one_thread
from .refine import refine_targets

__all__ = [
    "POOLINGS",
    "MAX_MIXED_IMAGES",
    "bag_loss",
    "cell_loss",
    "bag_mixtures",
    "mixed_bag",
    "pool_logits",
    "propagated_targets",
    "targets_matrix",
    "refine_targets",
    "IMAGE_HEAD",
    "ImageHead",
    "StandardizedMLP",
    "fit_image_head",
    "image_head_probabilities",
    "one_thread",
    "FUSIONS",
    "NEGATIVE_RULES",
    "ScoreRule",
    "fuse_scores",
    "image_estimate",
    "image_probabilities",
    "IMAGE_POOLINGS",
    "negative_from_classes",
]
