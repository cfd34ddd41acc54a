"""An image as a bag of cells: the targets and losses of weak (image-level) supervision.

Two ways to learn per-cell labels from an image's labels:

* **propagated targets** (:func:`propagated_targets`): every cell gets its image's labels
  and a per-cell loss treats them as true; simple, and with few images the best first
  round (``hpaseg.bench learn`` compares them);
* **multiple-instance learning** (:func:`bag_loss`): a class absent from the image is
  absent from each of its cells (per-cell loss); a class present in the image is present
  in *some* cell: the loss is on the cells' scores pooled over the bag
  (:func:`pool_logits`: ``max``, ``lse`` = log-sum-exp, a soft maximum, or ``mean``).

Label convention (the Kaggle ``train.csv``'s): Negative (18) labels whole images only and
never stands beside another label, though negative cells occur in positive images. So a
positive image's labels do not say that none of its cells is Negative, only that some
cell is not: neither loss reads a missing 18 as "no cell is Negative"
(:func:`cell_loss` with ``negative_known=False`` and :func:`bag_loss` pool the cells'
Negative logits towards the minimum against 0). Negative is learned from images labelled
Negative, from that constraint and from refined targets, and the score rule also
derives it from the other classes (:mod:`hpaseg.weak.fusion`).

Bag mixing (:func:`bag_mixtures`) augments image-level training: an image holds a class
when one of its cells does, so the cells of several images taken together are a valid
training bag whose labels are the union of theirs (CutMix or mosaic augmentation, at the
level of bags of cells). It multiplies the label combinations a few hundred images show,
the rare classes' among them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..classes import NEGATIVE, NUM_CLASSES, labels_negative_unknown
from ..errors import InputError

__all__ = [
    "POOLINGS",
    "MAX_MIXED_IMAGES",
    "targets_matrix",
    "propagated_targets",
    "pool_logits",
    "cell_loss",
    "bag_loss",
    "bag_mixtures",
]

#: Poolings of cell logits into an image logit.
POOLINGS: tuple[str, ...] = ("lse", "max", "mean")
#: The most images one mixed bag joins (:func:`bag_mixtures`).
MAX_MIXED_IMAGES = 4


def targets_matrix(cell_labels: Sequence[Sequence[int]]) -> np.ndarray:
    """Multi-hot targets, one row per cell.

    >>> targets_matrix([(0, 16), (18,)])[:, [0, 16, 18]].tolist()
    [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    y = np.zeros((len(cell_labels), NUM_CLASSES), np.float32)
    for i, labels in enumerate(cell_labels):
        y[i, list(labels)] = 1.0
    return y


def propagated_targets(n_cells: int, image_labels: Sequence[int]) -> np.ndarray:
    """Every cell gets its image's labels: an ``(n_cells, 19)`` multi-hot matrix.

    >>> propagated_targets(2, (0, 5))[:, [0, 5, 18]].tolist()
    [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]
    """
    return targets_matrix([tuple(image_labels)] * n_cells)


def pool_logits(logits: torch.Tensor, pooling: str = "lse", r: float = 5.0) -> torch.Tensor:
    """One image logit per class from its cells' logits.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        One row per cell, N >= 1.
    pooling : {"lse", "max", "mean"}
        ``lse``: ``log(mean(exp(r * x))) / r``, between the mean (r -> 0) and the
        maximum (r -> inf); ``max``; ``mean``.
    r : float
        Sharpness of ``lse``.

    Returns
    -------
    Tensor, shape (C,)

    Examples
    --------
    >>> x = torch.tensor([[0.0, 2.0], [4.0, 2.0]])
    >>> pool_logits(x, "max").tolist(), pool_logits(x, "mean").tolist()
    ([4.0, 2.0], [2.0, 2.0])
    """
    if pooling == "max":
        return logits.max(0).values
    if pooling == "mean":
        return logits.mean(0)
    if pooling == "lse":
        return (torch.logsumexp(r * logits, 0) - float(np.log(logits.shape[0]))) / r
    raise InputError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}", param="pooling")


def _some_cell_not_negative(negative_logits: torch.Tensor, pooling: str, r: float) -> torch.Tensor:
    """What a positive image's labels do say about Negative: *some* cell is not Negative.
    Binary cross-entropy of the cells' Negative logits pooled towards the minimum
    (``-pool(-z)``) against 0."""
    pooled = -pool_logits(-negative_logits[:, None], pooling, r)
    return F.binary_cross_entropy_with_logits(pooled, torch.zeros_like(pooled))


def cell_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    negative_known: bool = True,
    pooling: str = "lse",
    r: float = 5.0,
) -> torch.Tensor:
    """Per-cell binary cross-entropy of one image's cells against multi-hot targets.

    With ``negative_known`` False (propagated targets of a positive image: its labels do
    not say which of its cells are Negative) the Negative column is not a per-cell
    target; only what the labels imply is: some cell is not Negative (the cells' Negative
    logits pooled towards the minimum, against 0). Each part is weighted by its share of
    the 19 classes, so the scale is that of a per-cell binary cross-entropy.

    >>> z = torch.zeros(2, 19); t = torch.zeros(2, 19); t[:, 0] = 1
    >>> round(float(cell_loss(z, t)), 4), round(float(cell_loss(z, t, negative_known=False)), 4)
    (0.6931, 0.6931)
    >>> z[1, 18] = 9.0  # one cell confidently Negative: wrong if its Negative were known to be 0 ...
    >>> bool(cell_loss(z, t, negative_known=False) < cell_loss(z, t))  # ... allowed when it is not
    True
    """
    if negative_known:
        return F.binary_cross_entropy_with_logits(logits, targets)
    known = F.binary_cross_entropy_with_logits(logits[:, :NEGATIVE], targets[:, :NEGATIVE])
    return (known * NEGATIVE + _some_cell_not_negative(logits[:, NEGATIVE], pooling, r)) / NUM_CLASSES


def bag_loss(
    logits: torch.Tensor,
    image_labels: Sequence[int],
    *,
    pooling: str = "lse",
    r: float = 5.0,
) -> torch.Tensor:
    """Multiple-instance loss of one image (a bag of cells) with its labels.

    Classes absent from the image: binary cross-entropy of every cell against 0.
    Classes present (0-17): binary cross-entropy of the pooled logit against 1.
    Negative (18): an image labelled Negative alone has every cell Negative; in an image
    with other labels a missing Negative is not "no cell is Negative" (Kaggle convention,
    module docstring) but "some cell is not": the cells' Negative logits pooled towards
    the minimum against 0; a listed one is present. Each part is weighted by its
    share of the 19 classes, so the loss is on the scale of a per-cell binary
    cross-entropy.

    Parameters
    ----------
    logits : Tensor, shape (N, 19)
        The image's cells, N >= 1.
    image_labels : sequence of int
    pooling, r
        See :func:`pool_logits`.

    Returns
    -------
    Tensor
        A scalar.
    """
    labels = sorted({int(k) for k in image_labels})
    if tuple(labels) == (NEGATIVE,):
        return F.binary_cross_entropy_with_logits(logits, torch.from_numpy(propagated_targets(len(logits), labels)))
    present = torch.zeros(NUM_CLASSES, dtype=torch.bool)
    present[labels] = True
    absent = ~present
    unknown = NEGATIVE not in labels and labels_negative_unknown(labels)
    if unknown:
        absent[NEGATIVE] = False  # not listed: some cell is not Negative, below
    loss = logits.new_zeros(())
    if absent.any():
        part = logits[:, absent]
        loss = loss + F.binary_cross_entropy_with_logits(part, torch.zeros_like(part)) * (absent.sum() / NUM_CLASSES)
    if present.any():
        pooled = pool_logits(logits[:, present], pooling, r)
        loss = loss + F.binary_cross_entropy_with_logits(pooled, torch.ones_like(pooled)) * (
            present.sum() / NUM_CLASSES
        )
    if unknown:
        loss = loss + _some_cell_not_negative(logits[:, NEGATIVE], pooling, r) / NUM_CLASSES
    return loss


def bag_mixtures(
    order: Sequence[int],
    n_bags: int,
    rng: np.random.Generator,
    *,
    probability: float,
    max_images: int = MAX_MIXED_IMAGES,
) -> list[np.ndarray]:
    """Groups of bags to train on as one: each bag of ``order``, alone or mixed with others.

    With chance ``probability`` a bag is joined by 1 to ``max_images - 1`` others drawn
    at random from the ``n_bags`` (the number uniform); the group's cells are the union
    of theirs, its labels the union of their labels (module docstring).

    Parameters
    ----------
    order : sequence of int
        The bags of one batch, each the first of its group.
    n_bags : int
        Bags to draw partners from (indices ``0 .. n_bags - 1``).
    rng : numpy.random.Generator
    probability : float
        In [0, 1]; 0 keeps every bag alone.
    max_images : int
        At least 2.

    Returns
    -------
    list of ndarray of int
        One group per bag of ``order``, that bag first.

    Examples
    --------
    >>> groups = bag_mixtures([3, 1], 10, np.random.default_rng(0), probability=1.0)
    >>> [int(g[0]) for g in groups], all(2 <= len(g) <= 4 for g in groups)
    ([3, 1], True)
    >>> [g.tolist() for g in bag_mixtures([3, 1], 10, np.random.default_rng(0), probability=0.0)]
    [[3], [1]]
    """
    if not 0.0 <= probability <= 1.0:
        raise InputError(f"image_mix {probability}: expected a probability in [0, 1]", param="image_mix")
    if max_images < 2:
        raise InputError(f"max_images {max_images}: expected at least 2", param="max_images")
    groups = []
    for first in order:
        extra = int(rng.integers(1, max_images)) if probability > 0 and rng.random() < probability else 0
        groups.append(np.concatenate([[int(first)], rng.integers(0, n_bags, extra)]).astype(np.int64))
    return groups


def mixed_bag(
    cells: Sequence[torch.Tensor], targets: torch.Tensor, group: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """One training bag from a group of :func:`bag_mixtures`: the cells of its bags, one
    after the other, and the union of their image labels.

    Parameters
    ----------
    cells : sequence of Tensor
        Each bag's ``(N_i, D)`` cells.
    targets : Tensor, shape (bags, C)
        Each bag's multi-hot image labels.
    group : sequence of int

    Returns
    -------
    cells : Tensor, shape (sum N_i, D)
    labels : Tensor, shape (C,)

    Examples
    --------
    >>> x, y = mixed_bag([torch.zeros(2, 3), torch.ones(1, 3)], torch.tensor([[1.0, 0.0], [0.0, 1.0]]), [0, 1])
    >>> tuple(x.shape), y.tolist()
    ((3, 3), [1.0, 1.0])
    """
    members = [int(i) for i in group]
    joined = cells[members[0]] if len(members) == 1 else torch.cat([cells[i] for i in members])
    return joined, targets[members].amax(0)
