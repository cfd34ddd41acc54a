"""Reference labellings of segmented cells that need no trained model, to put a model's
score in context:

* *prior*: every cell gets every class, with the class's frequency among the
  propagated training cells as its confidence (no pixel of the test images is used
  beyond their segmentation);
* *random*: a few random classes per cell, random confidences;
* *weak-label oracle*: each cell labelled with its image's **true** labels, which a
  real model never sees; what handing every cell its image's labels achieves.

Two diagnostics of a route's own submission split its loss into segmentation, image
recognition and cell localisation:

* :func:`restrict_to_image_labels` (*oracle-image*): the route's own (cell, class)
  scores, kept only for the classes of each image's true labels: what perfect image
  recognition would give with the route's ranking of cells. It never scores below the
  route (it only removes false positives of absent classes).
* :func:`weak_labels_on_cells`: the route's cells, each given all its image's true
  labels at confidence 1: the weak-label baseline on the route's own segmentation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from ..classes import NUM_CLASSES
from ..io import parse_labels
from ..submission import CellLabel, Prediction, SubmissionRow

__all__ = [
    "prior_confidences",
    "prior_labels",
    "random_labels",
    "oracle_labels",
    "restrict_to_image_labels",
    "weak_labels_on_cells",
]


def prior_confidences(cell_label_strings: Sequence[str]) -> np.ndarray:
    """Fraction of cells that carry each class.

    Parameters
    ----------
    cell_label_strings : sequence of str
        One ``'|'``-separated label string per cell.

    Returns
    -------
    ndarray, shape (19,), float64

    >>> prior_confidences(["0|16", "16"])[[0, 16, 18]].tolist()
    [0.5, 1.0, 0.0]
    """
    counts = Counter(label for text in cell_label_strings for label in parse_labels(text))
    n = max(len(cell_label_strings), 1)
    return np.array([counts.get(k, 0) / n for k in range(NUM_CLASSES)])


def prior_labels(cells: Mapping[str, Sequence[int]], prior: np.ndarray) -> list[CellLabel]:
    """Every cell of every image with every class of non-zero prior, at its prior.

    >>> [(c.cell, c.label, c.confidence) for c in prior_labels({"a": [1]}, np.eye(19)[16] * 0.5)]
    [(1, 16, 0.5)]
    """
    return [
        CellLabel(i, c, k, float(prior[k]))
        for i, ids in cells.items()
        for c in ids
        for k in range(NUM_CLASSES)
        if prior[k] > 0
    ]


def random_labels(
    cells: Mapping[str, Sequence[int]], rng: np.random.Generator, *, per_cell: int = 2
) -> list[CellLabel]:
    """``per_cell`` random distinct classes per cell with uniform random confidences.

    >>> len(random_labels({"a": [1, 2]}, np.random.default_rng(0)))
    4
    """
    return [
        CellLabel(i, c, int(k), float(rng.random()))
        for i, ids in cells.items()
        for c in ids
        for k in rng.choice(NUM_CLASSES, size=per_cell, replace=False)
    ]


def oracle_labels(cells: Mapping[str, Sequence[int]], image_labels: Mapping[str, Sequence[int]]) -> list[CellLabel]:
    """Every cell with its image's true labels at confidence 1 (the weak-label oracle).

    >>> [(c.cell, c.label) for c in oracle_labels({"a": [1, 2]}, {"a": [0, 16]})]
    [(1, 0), (1, 16), (2, 0), (2, 16)]
    """
    return [CellLabel(i, c, int(k), 1.0) for i, ids in cells.items() for c in ids for k in sorted(image_labels[i])]


def restrict_to_image_labels(
    rows: Sequence[SubmissionRow], image_labels: Mapping[str, Sequence[int]]
) -> list[SubmissionRow]:
    """A submission's predictions kept only for the classes of each image's true labels
    (the *oracle-image* diagnostic); images absent from ``image_labels`` keep none.

    >>> row = SubmissionRow("a", 2, 1, [Prediction(0, 0.9, "m"), Prediction(5, 0.4, "m")])
    >>> [(p.label, p.confidence) for p in restrict_to_image_labels([row], {"a": [5]})[0].predictions]
    [(5, 0.4)]
    """
    return [
        SubmissionRow(
            r.image_id,
            r.width,
            r.height,
            [p for p in r.predictions if p.label in set(image_labels.get(r.image_id, ()))],
        )
        for r in rows
    ]


def weak_labels_on_cells(
    rows: Sequence[SubmissionRow], image_labels: Mapping[str, Sequence[int]]
) -> list[SubmissionRow]:
    """Each distinct cell (mask) of a submission given all its image's true labels at
    confidence 1: the weak-label baseline on a route's own cells.

    >>> row = SubmissionRow("a", 2, 1, [Prediction(0, 0.9, "m1"), Prediction(5, 0.4, "m1"), Prediction(3, 0.2, "m2")])
    >>> [(p.label, p.confidence, p.mask) for p in weak_labels_on_cells([row], {"a": [16, 0]})[0].predictions]
    [(0, 1.0, 'm1'), (16, 1.0, 'm1'), (0, 1.0, 'm2'), (16, 1.0, 'm2')]
    """
    out = []
    for r in rows:
        masks = list(dict.fromkeys(p.mask for p in r.predictions))
        labels = sorted(int(k) for k in image_labels.get(r.image_id, ()))
        out.append(SubmissionRow(r.image_id, r.width, r.height, [Prediction(k, 1.0, m) for m in masks for k in labels]))
    return out
