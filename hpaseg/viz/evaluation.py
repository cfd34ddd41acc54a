"""Figures of evaluation results: AP per class, per-class confusion matrices."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..classes import CLASS_NAMES, NUM_CLASSES
from ..evaluation import MapResult
from .colors import CLASS_COLORS
from .figures import new_figure

__all__ = ["plot_class_ap", "plot_confusion_grid"]


def plot_class_ap(result: MapResult, *, title: str | None = None) -> Figure:
    """Per-class AP as horizontal bars, with true-cell counts and the mAP.

    Parameters
    ----------
    result : MapResult
        From :func:`hpaseg.metrics.competition_map`.

    Returns
    -------
    Figure
        One bar per class that has true cells, in the class colour, labelled with its
        AP, true cells and predictions; classes without true cells are listed (they do
        not count towards the mAP) but get no bar; a dashed line marks the mAP.
    """
    fig = new_figure(8.5, 0.32 * NUM_CLASSES + 1.2)
    ax = fig.add_subplot()
    ys = np.arange(NUM_CLASSES)
    for k in range(NUM_CLASSES):
        n_true, n_pred = result.n_true.get(k, 0), result.n_pred.get(k, 0)
        if n_true:
            ap = result.ap[k]
            ax.barh(k, ap, color=CLASS_COLORS[k], edgecolor="black", linewidth=0.6, height=0.75)
            ax.text(
                ap + 0.01,
                k,
                f"{ap:.2f}   ({n_true} true, {n_pred} predicted)",
                va="center",
                fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5},
            )
        else:
            ax.text(
                0.01, k, f"no true cells ({n_pred} predicted)", va="center", fontsize=8, color="0.45", style="italic"
            )
    ax.axvline(
        result.mAP, color="black", ls="--", lw=1.2, label=f"mAP = {result.mAP:.3f} (mean over classes with true cells)"
    )
    fig.legend(loc="outside lower center", fontsize=9, frameon=False)
    ax.set_yticks(ys, [CLASS_NAMES[k] for k in ys], fontsize=9)
    for k, label in enumerate(ax.get_yticklabels()):
        if not result.n_true.get(k, 0):
            label.set_color("0.45")
    ax.set_ylim(NUM_CLASSES - 0.5, -0.6)
    ax.set_xlim(0, 1.35)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel(f"average precision (mask IoU ≥ {result.iou_threshold:g})")
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(f"{title or 'Per-class AP'} — mAP {result.mAP:.3f}", fontsize=11)
    return fig


def plot_confusion_grid(
    confusion: np.ndarray,
    class_ids: Sequence[int] | None = None,
    *,
    ncols: int = 5,
    hide_empty: bool = False,
    title: str | None = None,
) -> Figure:
    """A 2×2 confusion matrix per class, in a grid.

    Parameters
    ----------
    confusion : ndarray, shape (C, 2, 2), int
        ``[[TN, FP], [FN, TP]]`` per class (:func:`hpaseg.metrics.multilabel_confusion`).
    class_ids : sequence of int, optional
        The class of each matrix (default 0..C-1).
    ncols : int
        Matrices per row.
    hide_empty : bool
        Leave out classes with neither a true nor a predicted positive.

    Returns
    -------
    Figure
        Cells coloured by the fraction of their row (of true negatives or true
        positives) and labelled with the count and that fraction; the frame of each
        matrix is in the class colour.
    """
    confusion = np.asarray(confusion)
    if confusion.ndim != 3 or confusion.shape[1:] != (2, 2):
        raise ValueError(f"confusion has shape {confusion.shape}; expected (C, 2, 2)")
    class_ids = list(range(len(confusion))) if class_ids is None else [int(k) for k in class_ids]
    if len(class_ids) != len(confusion):
        raise ValueError(f"{len(class_ids)} class ids for {len(confusion)} matrices")
    if hide_empty:
        keep = [i for i, m in enumerate(confusion) if m[1].sum() or m[:, 1].sum()]
        confusion, class_ids = confusion[keep], [class_ids[i] for i in keep]
    if not len(confusion):
        raise ValueError("no confusion matrix to draw (every class is empty)")
    n = len(confusion)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = new_figure(2.25 * ncols, 2.15 * nrows + 0.5)
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    for ax, k, m in zip(axes, class_ids, confusion):
        rows = m.sum(axis=1, keepdims=True)
        frac = np.divide(m, rows, out=np.zeros(m.shape, float), where=rows > 0)
        ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        for i in range(2):
            for j in range(2):
                share = f"{frac[i, j]:.0%}" if rows[i, 0] else "–"
                ax.text(
                    j,
                    i,
                    f"{int(m[i, j])}\n{share}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if frac[i, j] > 0.6 else "black",
                )
        ax.set_xticks([0, 1], ["pred −", "pred +"], fontsize=7)
        ax.set_yticks([0, 1], ["true −", "true +"], fontsize=7)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_color(CLASS_COLORS[k])
            spine.set_linewidth(3)
        ax.set_title(textwrap.fill(CLASS_NAMES[k], 24), fontsize=8)
    note = "rows: true class absent / present; columns: predicted; count and share of the row"
    fig.suptitle(f"{title}\n{note}" if title else note, fontsize=10)
    return fig
