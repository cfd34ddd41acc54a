"""How well a segmentation agrees with reference masks (HPA-Cell-Segmentation's, say):
cells matched one-to-one at IoU 0.5 and 0.6 (F1), mean best IoU, splits and merges, per
image and pooled over images.

Definitions (``cover = 0.2``):

* a true cell is **split** when two or more predicted cells each cover at least 20% of it;
* a predicted cell **merges** when it covers at least 20% of each of two or more true cells;
* **mean best IoU**: each true cell's highest IoU with any predicted cell, averaged over
  the true cells (pooled: over all true cells of all images);
* **F1** = 2 matched / (n_true + n_pred), one-to-one matching (:func:`greedy_match`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..errors import InputError
from .matching import greedy_match, label_iou_matrix, label_overlap

__all__ = ["COVER_FRACTION", "SegmentationScore", "score_segmentation", "pool_scores", "compare_to_reference"]

#: Fraction of a cell another cell must cover to count towards a split or a merge.
COVER_FRACTION = 0.2


@dataclass
class SegmentationScore:
    """Agreement of one predicted label image (or a pool of them) with the reference."""

    n_true: int
    n_pred: int
    matched_05: int
    matched_06: int
    splits: int
    merges: int
    best_ious: list[float] = field(default_factory=list)

    @property
    def f1_05(self) -> float:
        """F1 of cells matched at IoU >= 0.5."""
        return 2 * self.matched_05 / max(self.n_true + self.n_pred, 1)

    @property
    def f1_06(self) -> float:
        """F1 of cells matched at IoU >= 0.6 (the competition's threshold)."""
        return 2 * self.matched_06 / max(self.n_true + self.n_pred, 1)

    @property
    def mean_best_iou(self) -> float:
        """Mean over true cells of their best IoU with a predicted cell (NaN without true cells)."""
        return float(np.mean(self.best_ious)) if self.best_ious else float("nan")

    def row(self) -> dict:
        """The figures as a table row."""
        return {
            "n_true": self.n_true,
            "n_pred": self.n_pred,
            "f1_iou05": round(self.f1_05, 4),
            "f1_iou06": round(self.f1_06, 4),
            "mean_best_iou": round(self.mean_best_iou, 4),
            "splits": self.splits,
            "merges": self.merges,
        }


def score_segmentation(
    true_labels: np.ndarray, pred_labels: np.ndarray, *, cover: float = COVER_FRACTION
) -> SegmentationScore:
    """Compare a predicted label image with the reference (see the module docstring).

    Examples
    --------
    >>> t = np.array([[1, 1, 1, 1, 2, 2]]); p = np.array([[3, 3, 4, 4, 4, 4]])
    >>> s = score_segmentation(t, p)
    >>> (s.n_true, s.n_pred, s.matched_05, s.matched_06, s.splits, s.merges)  # IoUs 2/4 and 2/4
    (2, 2, 2, 0, 1, 1)
    """
    iou, true_ids, pred_ids = label_iou_matrix(true_labels, pred_labels)
    inter, t_all, p_all = label_overlap(true_labels, pred_labels)
    covered = inter[np.ix_(t_all != 0, p_all != 0)] / np.maximum(inter[t_all != 0].sum(axis=1, keepdims=True), 1)
    return SegmentationScore(
        n_true=len(true_ids),
        n_pred=len(pred_ids),
        matched_05=len(greedy_match(iou, 0.5)),
        matched_06=len(greedy_match(iou, 0.6)),
        splits=int(np.sum((covered >= cover).sum(axis=1) >= 2)),
        merges=int(np.sum((covered >= cover).sum(axis=0) >= 2)),
        best_ious=(iou.max(axis=1) if iou.shape[1] else np.zeros(len(true_ids))).tolist(),
    )


def pool_scores(scores: Sequence[SegmentationScore]) -> SegmentationScore:
    """The scores of several images as one (counts summed, best IoUs pooled)."""
    out = SegmentationScore(0, 0, 0, 0, 0, 0, [])
    for s in scores:
        out.n_true += s.n_true
        out.n_pred += s.n_pred
        out.matched_05 += s.matched_05
        out.matched_06 += s.matched_06
        out.splits += s.splits
        out.merges += s.merges
        out.best_ious.extend(s.best_ious)
    return out


def compare_to_reference(
    mask_dir: str | os.PathLike, reference_dir: str | os.PathLike, image_ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """Score the cell masks of ``mask_dir`` against the reference masks of ``reference_dir``.

    Parameters
    ----------
    mask_dir : path
        ``{ID}_cellmask.png`` to score (``hpaseg segment``'s output).
    reference_dir : path
        Reference cell masks, ``{ID}_cellmask.png`` or ``{ID}.npz`` (HPA-Cell-Segmentation's
        format; :func:`hpaseg.io.read_cell_mask`).
    image_ids : sequence of str, optional
        Images to score (default: those of ``mask_dir`` that have a reference).

    Returns
    -------
    pandas.DataFrame
        One row per image (``ID`` and the columns of :meth:`SegmentationScore.row`),
        then a row ``ID = "pooled"`` over all images.

    Raises
    ------
    InputError
        No image to score, a missing reference, or masks of different sizes.
    """
    reference_dir = Path(reference_dir)
    if not reference_dir.is_dir():
        raise InputError(f"reference {reference_dir}: no such folder", param="reference")
    if image_ids is None:
        image_ids = [i for i in io.mask_image_ids(mask_dir) if io.has_cell_mask(reference_dir, i)]
    if not image_ids:
        raise InputError(
            f"reference {reference_dir}: no reference mask for any image of {mask_dir}; expected {{ID}}_cellmask.png or {{ID}}.npz",
            param="reference",
        )
    rows, scores = [], []
    for image_id in image_ids:
        predicted = io.read_mask(io.mask_paths(mask_dir, image_id)[0])
        reference, source = io.read_cell_mask(reference_dir, image_id)
        if reference.shape != predicted.shape:
            raise InputError(
                f"{source}: reference is {reference.shape[0]}x{reference.shape[1]} px but the mask of {image_id!r} is {predicted.shape[0]}x{predicted.shape[1]}; they must match"
            )
        scores.append(score_segmentation(reference, predicted))
        rows.append({"ID": image_id, **scores[-1].row()})
    rows.append({"ID": "pooled", **pool_scores(scores).row()})
    return pd.DataFrame(rows)
