"""Metrics: the competition metric (mAP over classes at mask IoU >= 0.6), segmentation
quality of label images, and multilabel classification metrics.

Competition metric
------------------
:func:`competition_map` follows the Kaggle "HPA Single-Cell Image Classification"
metric, the Open Images instance-segmentation mAP of the TensorFlow Object Detection
API: for each class, the predictions of that class in all images are ranked by
confidence; going down the ranking, each is matched to the still-unmatched true cell
of that class in the same image with the highest mask IoU, if that IoU is at least
0.6 (a true positive), else it is a false positive. AP is the area under the
precision-recall curve with precision made non-increasing from the right
(:func:`interpolated_average_precision`, as ``compute_average_precision`` in
``object_detection/utils/metrics.py``); mAP is the mean over classes that have true
cells. Details that differ from or are unspecified by that code:

* ties in confidence keep submission order (a stable sort; TF reverses an unstable
  ``argsort``, so tied predictions may be ranked differently there);
* a prediction goes to the best *still-unmatched* true cell (TF takes the best cell
  and calls the prediction a false positive if that cell is taken). With IoU >= 0.5
  a prediction can overlap at most one cell of a partition that much, so both rules
  agree when true cells do not overlap, as in HPA masks;
* predictions for images absent from the truth are ignored (counted in
  ``MapResult.n_ignored_predictions``); true cells of images absent from the
  submission are misses;
* Open Images' image-level "verified labels" (which make predictions of unverified
  classes be ignored) are not modelled: every prediction is scored.

IoUs are computed by ``pycocotools.mask.iou`` on the compressed RLEs; no mask is
decoded to pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from pycocotools import mask as coco_mask

from .classes import CLASS_NAMES, NUM_CLASSES
from .errors import InputError
from .submission import SubmissionRow, decode_rle

__all__ = [
    "SegmentationMatch",
    "label_iou_matrix",
    "match_label_images",
    "COMPETITION_IOU_THRESHOLD",
    "MapResult",
    "interpolated_average_precision",
    "competition_map",
    "DEFAULT_THRESHOLD_GRID",
    "macro_f1",
    "tune_thresholds",
    "per_class_ap",
    "macro_ap",
    "multilabel_confusion",
]

#: Mask IoU at which a prediction matches a true cell in the Kaggle metric.
COMPETITION_IOU_THRESHOLD: float = 0.6
#: Thresholds tried by :func:`tune_thresholds`: 0.05, 0.10, ..., 0.95.
DEFAULT_THRESHOLD_GRID: np.ndarray = np.round(np.arange(1, 20) * 0.05, 2)
_DEFAULT_THRESHOLD = 0.5


def label_iou_matrix(true_labels: np.ndarray, pred_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every true cell with every predicted cell, from one pass over the images.

    Parameters
    ----------
    true_labels, pred_labels : ndarray, shape (H, W), int
        Label images (0 = background).

    Returns
    -------
    iou : ndarray, shape (n_true, n_pred), float64
    true_ids, pred_ids : ndarray of int
        The label of each row and column.

    Examples
    --------
    >>> t = np.array([[1, 1, 0, 2]]); p = np.array([[5, 0, 0, 7]])
    >>> iou, ti, pi = label_iou_matrix(t, p)
    >>> iou.tolist(), ti.tolist(), pi.tolist()
    ([[0.5, 0.0], [0.0, 1.0]], [1, 2], [5, 7])
    """
    if true_labels.shape != pred_labels.shape:
        raise ValueError(f"label images differ in shape: {true_labels.shape} vs {pred_labels.shape}")
    true_ids, t_inv = np.unique(true_labels, return_inverse=True)
    pred_ids, p_inv = np.unique(pred_labels, return_inverse=True)
    nt, npred = len(true_ids), len(pred_ids)
    inter = np.bincount(t_inv.ravel() * npred + p_inv.ravel(), minlength=nt * npred).reshape(nt, npred).astype(np.float64)
    area_t = inter.sum(axis=1, keepdims=True)
    area_p = inter.sum(axis=0, keepdims=True)
    union = area_t + area_p - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    t_keep = true_ids != 0
    p_keep = pred_ids != 0
    return iou[np.ix_(t_keep, p_keep)], true_ids[t_keep], pred_ids[p_keep]


@dataclass(frozen=True)
class SegmentationMatch:
    """Cells of two label images matched one-to-one at IoU >= a threshold."""

    n_true: int
    n_pred: int
    n_matched: int
    mean_matched_iou: float

    @property
    def precision(self) -> float:
        return self.n_matched / self.n_pred if self.n_pred else 0.0

    @property
    def recall(self) -> float:
        return self.n_matched / self.n_true if self.n_true else 0.0

    @property
    def f1(self) -> float:
        total = self.n_true + self.n_pred
        return 2 * self.n_matched / total if total else 0.0


def match_label_images(true_labels: np.ndarray, pred_labels: np.ndarray, *, iou_threshold: float = 0.6) -> SegmentationMatch:
    """Match predicted cells to true cells one-to-one, greedily by IoU, at ``IoU >= iou_threshold``.

    With ``iou_threshold >= 0.5`` a cell can overlap at most one cell of a partition
    that much, so greedy matching is optimal.

    >>> m = match_label_images(np.array([[1, 1, 2, 2]]), np.array([[3, 3, 3, 0]]))
    >>> (m.n_true, m.n_pred, m.n_matched)
    (2, 1, 1)
    """
    iou, true_ids, pred_ids = label_iou_matrix(true_labels, pred_labels)
    pairs = np.argwhere(iou >= iou_threshold)
    order = np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")
    used_t, used_p, matched = set(), set(), []
    for i, j in pairs[order]:
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
            matched.append(iou[i, j])
    return SegmentationMatch(len(true_ids), len(pred_ids), len(matched), float(np.mean(matched)) if matched else 0.0)


# --------------------------------------------------------------------------- competition mAP
def interpolated_average_precision(is_tp: Sequence[bool] | np.ndarray, n_true: int) -> float:
    """Average precision of a ranking, Open Images / TF Object Detection API style.

    Precision is made non-increasing from the right, then summed over the steps in
    recall: ``AP = sum_i (r_i - r_{i-1}) * max_{j >= i} p_j``.

    Parameters
    ----------
    is_tp : array_like, shape (P,), bool
        Whether each prediction, in decreasing order of confidence, is a true positive.
    n_true : int
        Number of true instances (> 0), matched or not.

    Returns
    -------
    float
        In [0, 1]; 0.0 when there are no predictions.

    Examples
    --------
    TP, FP, TP, FP against 3 true cells: 1/3 * 1 + 1/3 * 2/3 = 5/9.

    >>> round(interpolated_average_precision([True, False, True, False], 3), 6)
    0.555556
    """
    tp = np.asarray(is_tp, dtype=bool).ravel()
    if n_true <= 0:
        raise ValueError(f"n_true is {n_true}; AP needs at least one true instance")
    if tp.sum() > n_true:
        raise ValueError(f"{int(tp.sum())} true positives but only {n_true} true instances")
    if tp.size == 0:
        return 0.0
    hits = np.cumsum(tp)
    precision = np.concatenate(([0.0], hits / np.arange(1, tp.size + 1), [0.0]))
    recall = np.concatenate(([0.0], hits / n_true, [1.0]))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


@dataclass(frozen=True)
class MapResult:
    """Result of :func:`competition_map`.

    Attributes
    ----------
    ap : dict of int to float
        AP of every class 0-18; NaN for a class without true cells.
    n_true, n_pred, n_tp : dict of int to int
        True cells, scored predictions and true positives of every class.
    mAP : float
        Mean AP over the classes with true cells (the competition score).
    iou_threshold : float
    n_ignored_predictions : int
        Predictions on images absent from the truth (not scored).
    """

    ap: dict[int, float]
    n_true: dict[int, int]
    n_pred: dict[int, int]
    n_tp: dict[int, int]
    mAP: float
    iou_threshold: float = COMPETITION_IOU_THRESHOLD
    n_ignored_predictions: int = 0

    def to_dict(self) -> dict:
        """JSON-ready form (NaN written as ``None``)."""
        return {
            "mAP": self.mAP,
            "iou_threshold": self.iou_threshold,
            "n_ignored_predictions": self.n_ignored_predictions,
            "classes": [
                {
                    "id": c,
                    "name": CLASS_NAMES[c],
                    "n_true": self.n_true[c],
                    "n_pred": self.n_pred[c],
                    "n_tp": self.n_tp[c],
                    "ap": None if math.isnan(self.ap[c]) else self.ap[c],
                }
                for c in sorted(self.ap)
            ],
        }


@dataclass
class _ImageEval:
    """One truth image: IoUs of its distinct predicted masks with its distinct true masks."""

    iou: np.ndarray  # (n_pred_masks, n_true_masks) float64
    true_by_class: dict[int, np.ndarray] = field(default_factory=dict)  # class -> true mask indices


def _distinct_rles(row: SubmissionRow, kind: str) -> tuple[list[dict], list[int]]:
    """Decode each distinct mask string of a row once; return the RLEs and, per
    prediction, the index of its RLE."""
    index: dict[str, int] = {}
    rles: list[dict] = []
    per_prediction = []
    for k, p in enumerate(row.predictions):
        if p.mask not in index:
            where = f"{kind} image {row.image_id!r}, prediction {k + 1} (label {p.label})"
            index[p.mask] = len(rles)
            rles.append(decode_rle(p.mask, row.height, row.width, where=where))
        per_prediction.append(index[p.mask])
    return rles, per_prediction


def _index_rows(rows: Sequence[SubmissionRow], kind: str) -> dict[str, SubmissionRow]:
    out: dict[str, SubmissionRow] = {}
    for row in rows:
        if row.image_id in out:
            raise InputError(f"{kind}: image {row.image_id!r} appears twice; each image must appear once")
        out[row.image_id] = row
    return out


def competition_map(
    truth: Sequence[SubmissionRow],
    submission: Sequence[SubmissionRow],
    *,
    iou_threshold: float = COMPETITION_IOU_THRESHOLD,
) -> MapResult:
    """Score a submission with the competition metric (see the module docstring).

    Parameters
    ----------
    truth : sequence of SubmissionRow
        True cells: one triple per (cell, label), confidences ignored.
    submission : sequence of SubmissionRow
        Predictions; rows for images absent from ``truth`` are ignored.
    iou_threshold : float
        Mask IoU at or above which a prediction matches a true cell; in (0, 1].

    Returns
    -------
    MapResult

    Raises
    ------
    InputError
        An image listed twice, a mask that does not decode or does not fit its
        image, a submission row whose size differs from the truth's, a bad
        threshold, or a truth without any cell.

    Examples
    --------
    >>> from hpaseg.submission import Prediction, encode_label_image
    >>> masks = encode_label_image(np.array([[1, 1, 0], [2, 2, 0]]))
    >>> truth = [SubmissionRow("a", 3, 2, [Prediction(0, 1.0, masks[1]), Prediction(5, 1.0, masks[2])])]
    >>> sub = [SubmissionRow("a", 3, 2, [Prediction(0, 0.9, masks[1]), Prediction(5, 0.8, masks[1])])]
    >>> result = competition_map(truth, sub)
    >>> result.ap[0], result.ap[5], result.mAP
    (1.0, 0.0, 0.5)
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise InputError(f"iou_threshold {iou_threshold}; expected a number in (0, 1]")
    truth_rows = _index_rows(truth, "truth")
    sub_rows = _index_rows(submission, "submission")
    n_true = dict.fromkeys(range(NUM_CLASSES), 0)
    # per class: (confidence, image position, predicted mask index) in submission order
    candidates: dict[int, list[tuple[float, int, int]]] = {c: [] for c in range(NUM_CLASSES)}
    images: list[_ImageEval] = []
    for t_row in truth_rows.values():
        true_rles, true_index = _distinct_rles(t_row, "truth")
        labels = np.array([p.label for p in t_row.predictions], dtype=np.int64)
        true_index_arr = np.asarray(true_index, dtype=np.int64)
        true_by_class = {int(c): true_index_arr[labels == c] for c in np.unique(labels)}
        for c, members in true_by_class.items():
            if not 0 <= c < NUM_CLASSES:
                raise InputError(f"truth image {t_row.image_id!r}: label {c} is outside 0-{NUM_CLASSES - 1}")
            n_true[c] += len(members)
        s_row = sub_rows.get(t_row.image_id)
        if s_row is not None and (s_row.width, s_row.height) != (t_row.width, t_row.height):
            raise InputError(
                f"submission image {s_row.image_id!r}: size {s_row.width}x{s_row.height} (ImageWidth x ImageHeight); "
                f"the truth says {t_row.width}x{t_row.height}"
            )
        iou = np.zeros((0, len(true_rles)))
        if s_row is not None and s_row.predictions:
            pred_rles, pred_index = _distinct_rles(s_row, "submission")
            iou = np.zeros((len(pred_rles), len(true_rles)))
            if true_rles:
                iou = np.asarray(coco_mask.iou(pred_rles, true_rles, [0] * len(true_rles)), dtype=np.float64)
            position = len(images)
            for p, m in zip(s_row.predictions, pred_index):
                if not 0 <= p.label < NUM_CLASSES:
                    raise InputError(f"submission image {s_row.image_id!r}: label {p.label} is outside 0-{NUM_CLASSES - 1}")
                candidates[p.label].append((float(p.confidence), position, m))
        images.append(_ImageEval(iou, true_by_class))
    if not any(n_true.values()):
        raise InputError("truth has no cells; nothing to score (expected at least one 'label confidence mask' triple)")
    n_ignored = sum(len(r.predictions) for i, r in sub_rows.items() if i not in truth_rows)

    ap: dict[int, float] = {}
    n_pred: dict[int, int] = {}
    n_tp: dict[int, int] = {}
    for c in range(NUM_CLASSES):
        preds = candidates[c]
        n_pred[c] = len(preds)
        confidences = np.array([p[0] for p in preds], dtype=np.float64)
        order = np.argsort(-confidences, kind="stable")
        matched: dict[int, np.ndarray] = {}
        is_tp = np.zeros(len(preds), dtype=bool)
        for rank, k in enumerate(order):
            _, position, m = preds[k]
            members = images[position].true_by_class.get(c)
            if members is None or not len(members):
                continue
            taken = matched.setdefault(position, np.zeros(len(members), dtype=bool))
            ious = np.where(taken, -1.0, images[position].iou[m, members])
            best = int(np.argmax(ious))
            if ious[best] >= iou_threshold:
                taken[best] = True
                is_tp[rank] = True
        n_tp[c] = int(is_tp.sum())
        ap[c] = interpolated_average_precision(is_tp, n_true[c]) if n_true[c] else math.nan
    score = float(np.mean([ap[c] for c in range(NUM_CLASSES) if n_true[c]]))
    return MapResult(ap, n_true, n_pred, n_tp, score, float(iou_threshold), n_ignored)


# --------------------------------------------------------------------------- classification
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
    from sklearn.metrics import f1_score

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
    from sklearn.metrics import f1_score

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
    from sklearn.metrics import average_precision_score

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
    from sklearn.metrics import multilabel_confusion_matrix

    y_true, y_pred = _check_multilabel(y_true, y_pred, "y_pred")
    if not np.isin(y_pred, (0, 1)).all():
        raise InputError("y_pred has values other than 0 and 1; expected a {0, 1} indicator matrix (threshold scores first)")
    return multilabel_confusion_matrix(y_true, y_pred.astype(np.int64)).astype(np.int64)
