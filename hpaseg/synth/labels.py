"""Image and cell labels of the synthetic fields: HPA-like class imbalance and weak
supervision (a label missing from some cells of its image)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..classes import CLASS_NAMES, NEGATIVE, NUM_CLASSES
from ..errors import InputError

__all__ = [
    "CLASS_FREQUENCIES",
    "NEGATIVE_IMAGE_PROBABILITY",
    "LABEL_COUNT_PROBABILITIES",
    "VARY_PROBABILITY_ONE_LABEL",
    "VARY_PROBABILITY_SEVERAL_LABELS",
    "MITOTIC_SPINDLE",
    "draw_image_labels",
    "check_labels",
    "assign_cell_labels",
]

#: Relative image-label frequencies of classes 0-17, HPA-like: roughly the label counts of
#: the Kaggle 2021 train.csv, with Mitotic spindle, Aggresome and Nucleoli fibrillar center
#: kept rare but not vanishing. Negative (18) is drawn on its own, see :data:`NEGATIVE_IMAGE_PROBABILITY`.
CLASS_FREQUENCIES: tuple[float, ...] = (
    8800,
    1100,
    2400,
    300,
    1260,
    1950,
    880,
    2090,
    1000,
    680,
    1040,
    150,
    1540,
    2930,
    2130,
    250,
    6130,
    2130,
    0,
)
#: Probability that an image is Negative as a whole (every cell 18).
NEGATIVE_IMAGE_PROBABILITY = 0.02
#: Probabilities of 1, 2 and 3 labels per (non-negative) image.
LABEL_COUNT_PROBABILITIES: tuple[float, ...] = (0.55, 0.33, 0.12)
#: Probability that one label of the image is missing from some of its cells, for images of
#: one label and of several (about 0.4 overall).
VARY_PROBABILITY_ONE_LABEL = 0.3
VARY_PROBABILITY_SEVERAL_LABELS = 0.5
#: Fraction of an image's interphase cells that lack its varied label (drawn per image).
_LACKING_FRACTION = (0.25, 0.6)
#: Class 11, carried by the mitotic cells only.
MITOTIC_SPINDLE = CLASS_NAMES.index("Mitotic spindle")


def draw_image_labels(rng: np.random.Generator) -> tuple[int, ...]:
    """Draw the labels of one image: 1-3 classes with HPA-like imbalance, or Negative alone.

    Parameters
    ----------
    rng : numpy.random.Generator

    Returns
    -------
    tuple of int
        Sorted class ids; ``(18,)`` for a Negative image, else 1-3 ids from 0-17.

    Examples
    --------
    >>> labels = draw_image_labels(np.random.default_rng(0))
    >>> 1 <= len(labels) <= 3 and labels == tuple(sorted(set(labels)))
    True
    """
    if rng.random() < NEGATIVE_IMAGE_PROBABILITY:
        return (NEGATIVE,)
    weights = np.asarray(CLASS_FREQUENCIES[:NEGATIVE], dtype=float)
    n_labels = 1 + int(rng.choice(len(LABEL_COUNT_PROBABILITIES), p=LABEL_COUNT_PROBABILITIES))
    picked = rng.choice(NEGATIVE, size=n_labels, replace=False, p=weights / weights.sum())
    return tuple(sorted(int(v) for v in picked))


def check_labels(image_labels: Sequence[int]) -> tuple[int, ...]:
    """``image_labels`` as sorted unique class ids; InputError when not 1+ ids in 0-18."""
    try:
        labels = tuple(sorted({int(v) for v in image_labels}))
    except (TypeError, ValueError):
        raise InputError(f"image_labels {image_labels!r}: expected class ids 0-{NUM_CLASSES - 1}") from None
    if not labels or labels[0] < 0 or labels[-1] >= NUM_CLASSES:
        raise InputError(f"image_labels {image_labels!r}: expected 1 or more class ids 0-{NUM_CLASSES - 1}")
    return labels


def assign_cell_labels(
    rng: np.random.Generator, image_labels: tuple[int, ...], mitotic: np.ndarray, vary_cells: bool | None
) -> list[tuple[int, ...]]:
    """Labels of each cell (index 0..n-1) from the image's labels; see :mod:`hpaseg.synth`."""
    n = len(mitotic)
    if image_labels == (NEGATIVE,):
        return [(NEGATIVE,)] * n
    spindle = MITOTIC_SPINDLE
    base = [lab for lab in image_labels if lab not in (spindle, NEGATIVE)]
    interphase = np.flatnonzero(~mitotic)
    cell_sets = [set(base) for _ in range(n)]
    if vary_cells is None:
        p_vary = VARY_PROBABILITY_ONE_LABEL if len(image_labels) == 1 else VARY_PROBABILITY_SEVERAL_LABELS
        vary_cells = bool(rng.random() < p_vary)
    if vary_cells and base and len(interphase) >= 2:
        varied = base[int(rng.integers(len(base)))]
        lacks = rng.random(len(interphase)) < rng.uniform(*_LACKING_FRACTION)
        lacks[int(rng.integers(len(interphase)))] = True  # at least one cell lacks it ...
        keeps = np.flatnonzero(~lacks)
        if len(keeps) == 0:  # ... and at least one keeps it
            lacks[int(rng.integers(len(interphase)))] = False
        for idx in interphase[lacks]:
            cell_sets[idx].discard(varied)
    if NEGATIVE in image_labels and len(interphase) and not any(not cell_sets[i] for i in interphase):
        cell_sets[int(interphase[rng.integers(len(interphase))])] = set()
    for idx in np.flatnonzero(mitotic):
        cell_sets[idx] = {spindle} if spindle in image_labels else cell_sets[idx]
    return [tuple(sorted(s)) if s else (NEGATIVE,) for s in cell_sets]
