"""Multi-label classification metrics: macro-F1 (at 0.5 or tuned per-class thresholds),
per-class and macro AP, per-class confusion matrices (scikit-learn underneath), and the
validation report of a classifier run."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    multilabel_confusion_matrix,
)

from ..classes import CLASS_NAMES, NUM_CLASSES
from ..errors import InputError

__all__ = [
    "DEFAULT_THRESHOLD_GRID",
    "macro_f1",
    "tune_thresholds",
    "per_class_ap",
    "macro_ap",
    "multilabel_confusion",
    "evaluate_scores",
]

#: Thresholds tried by :func:`tune_thresholds`: 0.05, 0.10, ..., 0.95.
DEFAULT_THRESHOLD_GRID: np.ndarray = np.round(np.arange(1, 20) * 0.05, 2)


_DEFAULT_THRESHOLD = 0.5


def _check_multilabel(y_true: np.ndarray, y_other: np.ndarray, other: str) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_other = np.asarray(y_other)
    if y_true.ndim != 2 or y_true.shape != y_other.shape:
        raise InputError(f"y_true has shape {y_true.shape} and {other} {y_other.shape}; expected the same (N, C) shape")
    if not np.isin(y_true, (0, 1)).all():
        raise InputError("y_true has values other than 0 and 1; expected a {0, 1} indicator matrix")
    return y_true.astype(np.int64), y_other


def macro_f1(y_true: np.ndarray, y_score: np.ndarray, thresholds: float | np.ndarray = _DEFAULT_THRESHOLD) -> float:
    """Macro-averaged F1 of thresholded scores (``y_score >= threshold`` is positive).

    Parameters
    ----------
    y_true : ndarray, shape (N, C), {0, 1}
    y_score : ndarray, shape (N, C), float
    thresholds : float or ndarray of shape (C,)
        One threshold for all classes or one per class.

    Returns
    -------
    float
        Unweighted mean over the C classes of F1 (0 for a class with neither true
        nor predicted positives, scikit-learn's ``zero_division=0``).

    Examples
    --------
    >>> y = np.array([[1, 0], [0, 1], [1, 1]])
    >>> s = np.array([[0.9, 0.2], [0.4, 0.6], [0.3, 0.7]])
    >>> macro_f1(y, s)  # class 0: P=1, R=1/2, F1=2/3; class 1: F1=1
    0.8333333333333333
    >>> macro_f1(y, s, thresholds=np.array([0.25, 0.5]))
    0.9
    """

    y_true, y_score = _check_multilabel(y_true, y_score, "y_score")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.ndim not in (0, 1) or (thresholds.ndim == 1 and thresholds.shape[0] != y_score.shape[1]):
        raise InputError(f"thresholds has shape {thresholds.shape}; expected a scalar or ({y_score.shape[1]},)")
    y_pred = (y_score >= thresholds).astype(np.int64)
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def tune_thresholds(
    y_true: np.ndarray, y_score: np.ndarray, grid: Sequence[float] | np.ndarray = DEFAULT_THRESHOLD_GRID
) -> np.ndarray:
    """Per-class thresholds maximising each class's F1 on a validation split.

    Parameters
    ----------
    y_true : ndarray, shape (N, C), {0, 1}
    y_score : ndarray, shape (N, C), float
    grid : sequence of float
        Candidate thresholds.

    Returns
    -------
    ndarray, shape (C,), float64
        For each class the grid value with the highest F1; among equal F1 (e.g. a
        class without positives, where every threshold scores 0) the one closest to
        0.5, then the lower one.

    Examples
    --------
    >>> y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> s = np.array([[0.9, 0.2], [0.4, 0.6], [0.3, 0.7], [0.1, 0.65]])
    >>> tune_thresholds(y, s, grid=[0.2, 0.5, 0.8]).tolist()
    [0.2, 0.5]
    """

    y_true, y_score = _check_multilabel(y_true, y_score, "y_score")
    grid = np.asarray(grid, dtype=np.float64).ravel()
    if grid.size == 0:
        raise InputError("grid is empty; expected at least one candidate threshold")
    f1 = np.stack(
        [f1_score(y_true, (y_score >= t).astype(np.int64), average=None, zero_division=0) for t in grid]
    )  # (G, C)
    best = f1 >= f1.max(axis=0, keepdims=True) - 1e-12
    preference = np.lexsort((grid, np.abs(grid - _DEFAULT_THRESHOLD)))  # closest to 0.5, then lower
    rank = np.empty(grid.size, dtype=np.int64)
    rank[preference] = np.arange(grid.size)
    choice = np.argmin(np.where(best, rank[:, None], grid.size), axis=0)
    return grid[choice]


def per_class_ap(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """Average precision of each class (scikit-learn's ``average_precision_score``).

    Returns
    -------
    ndarray, shape (C,), float64
        NaN for a class without positive samples.

    Examples
    --------
    >>> y = np.array([[1, 0], [0, 0], [1, 0]])
    >>> s = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.3]])
    >>> per_class_ap(y, s).round(4).tolist()  # ranks: P, N, P -> (1 + 2/3) / 2
    [0.8333, nan]
    """

    y_true, y_score = _check_multilabel(y_true, y_score, "y_score")
    out = np.full(y_true.shape[1], np.nan)
    for c in range(y_true.shape[1]):
        if y_true[:, c].any():
            out[c] = average_precision_score(y_true[:, c], y_score[:, c])
    return out


def macro_ap(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean of :func:`per_class_ap` over the classes that have positive samples.

    >>> macro_ap(np.array([[1, 0], [0, 0], [1, 0]]), np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.3]])).__round__(4)
    0.8333
    """
    ap = per_class_ap(y_true, y_score)
    if np.isnan(ap).all():
        raise InputError("no class has a positive sample; macro AP is undefined")
    return float(np.nanmean(ap))


def multilabel_confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Confusion matrix of each class (scikit-learn's ``multilabel_confusion_matrix``).

    Parameters
    ----------
    y_true, y_pred : ndarray, shape (N, C), {0, 1}

    Returns
    -------
    ndarray, shape (C, 2, 2), int64
        ``[[TN, FP], [FN, TP]]`` for each class.

    Examples
    --------
    >>> multilabel_confusion(np.array([[1, 0], [0, 1]]), np.array([[1, 1], [0, 0]])).tolist()
    [[[1, 0], [0, 1]], [[0, 1], [1, 0]]]
    """

    y_true, y_pred = _check_multilabel(y_true, y_pred, "y_pred")
    if not np.isin(y_pred, (0, 1)).all():
        raise InputError(
            "y_pred has values other than 0 and 1; expected a {0, 1} indicator matrix (threshold scores first)"
        )
    return multilabel_confusion_matrix(y_true, y_pred.astype(np.int64)).astype(np.int64)


def _nan_to_none(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _f1(confusion: np.ndarray) -> np.ndarray:
    (_tn, fp), (fn, tp) = confusion[:, 0].T, confusion[:, 1].T
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros(len(tp), np.float64), where=denom > 0)


def evaluate_scores(y_true: np.ndarray, y_score: np.ndarray) -> dict:
    """Validation metrics of per-class probabilities (see the module docstring).

    Parameters
    ----------
    y_true : ndarray, shape (N, 19), {0, 1}
    y_score : ndarray, shape (N, 19), float in [0, 1]

    Returns
    -------
    dict
        ``macro_f1``, ``macro_f1_tuned``, ``macro_ap`` (NaN-free floats, or None when no
        class has a positive), ``thresholds`` (19 tuned thresholds), ``classes_scored`` and
        ``per_class``: one dict per class with ``id, name, n_positive, ap, f1, f1_tuned,
        threshold, tn, fp, fn, tp`` (counts at the tuned threshold; ap None without positives).

    Examples
    --------
    >>> y = np.zeros((4, 19), int); y[:2, 0] = 1; y[1:3, 5] = 1
    >>> s = np.full((4, 19), 0.1); s[:2, 0] = 0.9; s[1:3, 5] = 0.4; s[3, 5] = 0.45
    >>> r = evaluate_scores(y, s)
    >>> r["classes_scored"], r["macro_f1"], r["macro_f1_tuned"], round(r["macro_ap"], 4)  # class 5: F1 0 at 0.5, 0.8 at 0.4
    ([0, 5], 0.5, 0.9, 0.8333)
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_score = np.asarray(y_score, dtype=np.float64)
    present = y_true.any(axis=0)
    thresholds = tune_thresholds(y_true, y_score)
    ap = per_class_ap(y_true, y_score)
    confusion_05 = multilabel_confusion(y_true, (y_score >= 0.5).astype(np.int64))
    confusion = multilabel_confusion(y_true, (y_score >= thresholds).astype(np.int64))
    f1_05, f1_tuned = _f1(confusion_05), _f1(confusion)
    scored = present.any()
    result = {
        "macro_f1": macro_f1(y_true[:, present], y_score[:, present]) if scored else None,
        "macro_f1_tuned": macro_f1(y_true[:, present], y_score[:, present], thresholds[present]) if scored else None,
        "macro_ap": float(np.nanmean(ap)) if scored else None,
        "thresholds": [float(t) for t in thresholds],
        "classes_scored": [int(k) for k in np.flatnonzero(present)],
        "n_samples": int(len(y_true)),
        "per_class": [
            {
                "id": k,
                "name": CLASS_NAMES[k],
                "n_positive": int(y_true[:, k].sum()),
                "ap": _nan_to_none(float(ap[k])),
                "f1": float(f1_05[k]),
                "f1_tuned": float(f1_tuned[k]),
                "threshold": float(thresholds[k]),
                "tn": int(confusion[k, 0, 0]),
                "fp": int(confusion[k, 0, 1]),
                "fn": int(confusion[k, 1, 0]),
                "tp": int(confusion[k, 1, 1]),
            }
            for k in range(NUM_CLASSES)
        ],
    }
    return result
