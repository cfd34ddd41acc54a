"""The competition metric: mAP over the 19 classes at mask IoU >= 0.6, and per-image and
per-cell views of it.

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
  submission are misses (:func:`check_image_ids` refuses the first and lists the
  second, for ``hpaseg evaluate``);
* Open Images' image-level "verified labels" (which make predictions of unverified
  classes be ignored) are not modelled: every prediction is scored.

IoUs are computed by ``pycocotools.mask.iou`` on the compressed RLEs; no mask is
decoded to pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as coco_mask

from ..classes import CLASS_NAMES, NUM_CLASSES
from ..errors import InputError
from ..submission import SubmissionRow
from ..submission.rle import decode_rle
from .matching import greedy_match

__all__ = [
    "COMPETITION_IOU_THRESHOLD",
    "MapResult",
    "interpolated_average_precision",
    "competition_map",
    "check_image_ids",
    "few_ids",
    "per_image_map",
    "worst_images",
    "cell_targets",
]

#: Mask IoU at which a prediction matches a true cell in the Kaggle metric.
COMPETITION_IOU_THRESHOLD: float = 0.6

#: Image IDs a message names before "and N more".
IDS_NAMED = 3


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
        image = _image_eval(t_row, sub_rows.get(t_row.image_id), len(images), candidates)
        for c, members in image.true_by_class.items():
            n_true[c] += len(members)
        images.append(image)
    if not any(n_true.values()):
        raise InputError("truth has no cells; nothing to score (expected at least one 'label confidence mask' triple)")
    n_ignored = sum(len(r.predictions) for i, r in sub_rows.items() if i not in truth_rows)
    ap: dict[int, float] = {}
    n_pred: dict[int, int] = {}
    n_tp: dict[int, int] = {}
    for c in range(NUM_CLASSES):
        is_tp = _true_positives(c, candidates[c], images, iou_threshold)
        n_pred[c], n_tp[c] = len(is_tp), int(is_tp.sum())
        ap[c] = interpolated_average_precision(is_tp, n_true[c]) if n_true[c] else math.nan
    score = float(np.mean([ap[c] for c in range(NUM_CLASSES) if n_true[c]]))
    return MapResult(ap, n_true, n_pred, n_tp, score, float(iou_threshold), n_ignored)


def few_ids(ids: Sequence[str], limit: int = IDS_NAMED) -> str:
    """The first ``limit`` of ``ids``, quoted, then ``and N more``.

    >>> few_ids(["a", "b"]), few_ids(["a", "b", "c", "d", "e"])
    ("'a', 'b'", "'a', 'b', 'c' and 2 more")
    """
    named = ", ".join(repr(str(i)) for i in ids[:limit])
    return named if len(ids) <= limit else f"{named} and {len(ids) - limit} more"


def check_image_ids(
    truth: Sequence[SubmissionRow],
    submission: Sequence[SubmissionRow],
    *,
    truth_source: str | None = None,
    submission_source: str | None = None,
) -> list[str]:
    """Refuse a submission with images the truth does not have; return the truth images
    the submission does not have.

    :func:`competition_map` ignores predictions on images absent from the truth, so a
    submission for other images (another split, IDs written differently) would score 0
    as if it were wrong; this says so instead. Truth images absent from the submission
    are legitimate (their cells are misses) but worth reporting.

    Parameters
    ----------
    truth, submission : sequence of SubmissionRow
    truth_source, submission_source : str, optional
        Where each was read from (a file), named in the message.

    Returns
    -------
    list of str
        The IDs of truth images absent from the submission, in truth order.

    Raises
    ------
    InputError
        ``param="submission"``: images of the submission absent from the truth, the first
        :data:`IDS_NAMED` named.

    Examples
    --------
    >>> rows = lambda *ids: [SubmissionRow(i, 2, 2, []) for i in ids]
    >>> check_image_ids(rows("a", "b", "c"), rows("b"))
    ['a', 'c']
    >>> check_image_ids(rows("a"), rows("a", "x", "y"), submission_source="sub.csv")
    Traceback (most recent call last):
    ...
    hpaseg.errors.InputError: submission sub.csv: 2 images are not in the truth: 'x', 'y'; score a submission against the truth of the same images
    """
    truth_ids = {row.image_id for row in truth}
    extra = list(dict.fromkeys(row.image_id for row in submission if row.image_id not in truth_ids))
    if extra:
        where = f"submission {submission_source}" if submission_source else "submission"
        of_truth = f"the truth ({truth_source})" if truth_source else "the truth"
        count = "1 image is" if len(extra) == 1 else f"{len(extra)} images are"
        raise InputError(
            f"{where}: {count} not in {of_truth}: {few_ids(extra)}; score a submission against the truth of the same images",
            param="submission",
        )
    submitted = {row.image_id for row in submission}
    return [row.image_id for row in truth if row.image_id not in submitted]


def _image_eval(
    t_row: SubmissionRow,
    s_row: SubmissionRow | None,
    position: int,
    candidates: dict[int, list[tuple[float, int, int]]],
) -> _ImageEval:
    """One truth image: its true cells by class, the IoUs of its predicted masks with them;
    its predictions are appended to ``candidates`` (per class) as (confidence, position, mask)."""
    true_rles, true_index = _distinct_rles(t_row, "truth")
    labels = np.array([p.label for p in t_row.predictions], dtype=np.int64)
    true_index_arr = np.asarray(true_index, dtype=np.int64)
    true_by_class = {int(c): true_index_arr[labels == c] for c in np.unique(labels)}
    for c in true_by_class:
        if not 0 <= c < NUM_CLASSES:
            raise InputError(f"truth image {t_row.image_id!r}: label {c} is outside 0-{NUM_CLASSES - 1}")
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
        for p, m in zip(s_row.predictions, pred_index):
            if not 0 <= p.label < NUM_CLASSES:
                raise InputError(f"submission image {s_row.image_id!r}: label {p.label} is outside 0-{NUM_CLASSES - 1}")
            candidates[p.label].append((float(p.confidence), position, m))
    return _ImageEval(iou, true_by_class)


def _true_positives(
    c: int, preds: list[tuple[float, int, int]], images: list[_ImageEval], iou_threshold: float
) -> np.ndarray:
    """Whether each prediction of class ``c``, in decreasing order of confidence (ties in
    submission order), matches a still-unmatched true cell of ``c`` in its image."""
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
    return is_tp


def per_image_map(
    truth: Sequence[SubmissionRow], submission: Sequence[SubmissionRow], *, iou_threshold: float | None = None
) -> dict[str, float]:
    """The competition mAP of each truth image on its own (the metric on one-image subsets).

    Returns
    -------
    dict
        ``{ID: mAP}`` for every truth image with at least one true cell; an image
        missing from the submission scores 0.
    """
    threshold = COMPETITION_IOU_THRESHOLD if iou_threshold is None else float(iou_threshold)
    by_id = {r.image_id: r for r in submission}
    out = {}
    for t_row in truth:
        if not t_row.predictions:
            continue
        s_row = by_id.get(t_row.image_id)
        out[t_row.image_id] = competition_map(
            [t_row], [s_row] if s_row is not None else [], iou_threshold=threshold
        ).mAP
    return out


def worst_images(scores: Mapping[str, float], n: int = 5) -> list[tuple[str, float]]:
    """The ``n`` lowest-scoring images, worst first (ties by ID; NaN scores left out).

    >>> worst_images({"b": 0.5, "a": 0.5, "c": 0.1, "d": float("nan"), "e": 0.9}, n=3)
    [('c', 0.1), ('a', 0.5), ('b', 0.5)]
    """
    if n < 0:
        raise ValueError(f"n is {n}; expected a non-negative number of images")
    ranked = sorted(((float(v), str(k)) for k, v in scores.items() if not math.isnan(float(v))))
    return [(k, v) for v, k in ranked[:n]]


def cell_targets(
    truth: Sequence[SubmissionRow], submission: Sequence[SubmissionRow], *, iou_threshold: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell class indicators and scores, for cell-level confusion matrices.

    True and predicted cells (distinct mask strings) of each truth image are matched
    one-to-one, greedily by mask IoU, at ``IoU >= iou_threshold`` (the competition's
    0.6 by default). Every true cell gives one row: its classes, and the confidences
    of the predicted cell matched to it (zeros if none was: a missed cell). Every
    predicted cell left unmatched gives one row with no true class (a false
    detection). Submission rows of images absent from the truth are ignored.

    Returns
    -------
    y_true : ndarray, shape (N, 19), int64
    y_score : ndarray, shape (N, 19), float64
        Threshold ``y_score`` and pass both to :func:`hpaseg.evaluation.classification.multilabel_confusion`.

    Examples
    --------
    >>> from hpaseg.submission import Prediction, SubmissionRow, encode_label_image
    >>> m = encode_label_image(np.array([[1, 1, 0, 2]]))
    >>> truth = [SubmissionRow("a", 4, 1, [Prediction(0, 1.0, m[1]), Prediction(16, 1.0, m[2])])]
    >>> sub = [SubmissionRow("a", 4, 1, [Prediction(0, 0.8, m[1]), Prediction(5, 0.3, m[1])])]
    >>> y_true, y_score = cell_targets(truth, sub)
    >>> y_true[:, [0, 5, 16]].tolist(), y_score[:, [0, 5, 16]].tolist()
    ([[1, 0, 0], [0, 0, 1]], [[0.8, 0.3, 0.0], [0.0, 0.0, 0.0]])
    """
    threshold = COMPETITION_IOU_THRESHOLD if iou_threshold is None else float(iou_threshold)
    by_id = {r.image_id: r for r in submission}
    y_true: list[np.ndarray] = []
    y_score: list[np.ndarray] = []

    def distinct(row: SubmissionRow, kind: str) -> tuple[list[dict], np.ndarray]:
        """Distinct masks of a row and, per mask, the best confidence of every class."""
        rles, per_prediction = _distinct_rles(row, kind)
        vectors = np.zeros((len(rles), NUM_CLASSES))
        for p, m in zip(row.predictions, per_prediction):
            vectors[m, p.label] = max(vectors[m, p.label], float(p.confidence))
        return rles, vectors

    for t_row in truth:
        true_rles, true_vecs = distinct(t_row, "truth")
        s_row = by_id.get(t_row.image_id)
        pred_rles, pred_vecs = distinct(s_row, "submission") if s_row is not None else ([], np.zeros((0, NUM_CLASSES)))
        if s_row is not None and (s_row.width, s_row.height) != (t_row.width, t_row.height):
            raise InputError(
                f"submission image {s_row.image_id!r}: size {s_row.width}x{s_row.height}; the truth says {t_row.width}x{t_row.height}"
            )
        match_of_true: dict[int, int] = {}
        if true_rles and pred_rles:
            iou = np.asarray(coco_mask.iou(pred_rles, true_rles, [0] * len(true_rles)), dtype=np.float64)
            match_of_true = {t: p for p, t in greedy_match(iou, threshold)}
        for t, vec in enumerate(true_vecs):
            y_true.append((vec > 0).astype(np.int64))
            y_score.append(pred_vecs[match_of_true[t]] if t in match_of_true else np.zeros(NUM_CLASSES))
        matched = set(match_of_true.values())
        for p, vec in enumerate(pred_vecs):
            if p not in matched:
                y_true.append(np.zeros(NUM_CLASSES, np.int64))
                y_score.append(vec)
    if not y_true:
        raise InputError("truth has no cells; expected at least one 'label confidence mask' triple")
    return np.stack(y_true), np.stack(y_score)
