"""Synthetic data with the truth real data lacks: HPA-like datasets in the Kaggle layout
with true cell masks and per-cell labels (:mod:`~hpaseg.synth.generator`, ``hpaseg synth``),
and simple fields with known masks for segmentation tests (:mod:`~hpaseg.synth.field`)."""

from .field import FieldTruth, synthetic_field
from .generator import (
    CLASS_FREQUENCIES,
    MIN_SIZE_PX,
    SynthImage,
    SynthSummary,
    draw_image_labels,
    generate_dataset,
    image_id,
    image_rng,
    synth_image,
)

__all__ = [
    "FieldTruth",
    "synthetic_field",
    "CLASS_FREQUENCIES",
    "MIN_SIZE_PX",
    "SynthImage",
    "SynthSummary",
    "draw_image_labels",
    "generate_dataset",
    "image_id",
    "image_rng",
    "synth_image",
]
