"""Pseudo-label refinement: re-label each cell from its own predictions, within its image's labels.

After a first round trained on propagated labels, a cell keeps a label of its image when
its probability of that label is at least ``keep_fraction`` of the highest probability
of that label among the image's cells; it never gets a label its image lacks. A cell
left with no label 0-17 becomes Negative (18). The next round trains on these targets
(``hpaseg.bench learn`` measures the gain of each round on per-cell truth).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..classes import NEGATIVE, NUM_CLASSES
from ..errors import InputError
from .bags import propagated_targets

__all__ = ["refine_targets"]


def refine_targets(probabilities: np.ndarray, image_labels: Sequence[int], *, keep_fraction: float = 0.5) -> np.ndarray:
    """The refined multi-hot targets of one image's cells.

    Parameters
    ----------
    probabilities : ndarray, shape (N, 19)
        The previous round's per-cell probabilities.
    image_labels : sequence of int
        The image's labels (train.csv).
    keep_fraction : float
        In (0, 1]: a cell keeps label k if ``p[cell, k] >= keep_fraction * max(p[:, k])``.

    Returns
    -------
    ndarray, shape (N, 19), float32
        A subset of the image's labels per cell; Negative (18) where none is left.

    Examples
    --------
    Two cells of an image labelled Nucleoplasm (0); the second hardly shows it:

    >>> p = np.zeros((2, 19)); p[:, 0] = [0.9, 0.1]
    >>> t = refine_targets(p, (0,))
    >>> t[:, 0].tolist(), t[:, 18].tolist()
    ([1.0, 0.0], [0.0, 1.0])
    """
    if not 0.0 < keep_fraction <= 1.0:
        raise InputError(f"keep_fraction {keep_fraction}: expected a number in (0, 1]", param="keep_fraction")
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != NUM_CLASSES:
        raise InputError(f"probabilities of shape {p.shape}: expected (cells, {NUM_CLASSES})", param="probabilities")
    labels = sorted({int(k) for k in image_labels})
    targets = propagated_targets(len(p), labels)
    if not len(p) or labels == [NEGATIVE]:
        return targets
    for k in labels:
        if k != NEGATIVE:
            targets[:, k] = p[:, k] >= keep_fraction * p[:, k].max()
    targets[:, NEGATIVE] = ~targets[:, :NEGATIVE].any(1)
    return targets
