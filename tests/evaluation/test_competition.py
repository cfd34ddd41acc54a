"""Tests of hpaseg.evaluation: the competition mAP, classification metrics, label-image matching."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpaseg import io
from hpaseg.errors import InputError
from hpaseg.evaluation import (
    competition_map,
    interpolated_average_precision,
    label_iou_matrix,
)
from hpaseg.submission import (
    Prediction,
    SubmissionRow,
    encode_binary_mask,
    encode_label_image,
)

REAL_ID = "1000_A12_2"


def _rect(shape, y0, y1, x0, x1) -> str:
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return encode_binary_mask(m)


def _tf_average_precision(precision, recall):
    """Literal transcription of ``compute_average_precision`` of the TF Object Detection
    API (``object_detection/utils/metrics.py``), as the reference."""
    recall = np.concatenate([[0], recall, [1]])
    precision = np.concatenate([[0], precision, [0]])
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = np.maximum(precision[i], precision[i + 1])
    indices = np.where(recall[1:] != recall[:-1])[0] + 1
    return np.sum((recall[indices] - recall[indices - 1]) * precision[indices])


SHAPE = (20, 30)  # H, W of the synthetic images


A = _rect(SHAPE, 0, 10, 0, 10)  # 100 px


B = _rect(SHAPE, 10, 20, 0, 10)


C = _rect(SHAPE, 0, 10, 15, 25)


A_SHIFT2 = _rect(SHAPE, 0, 10, 2, 12)  # IoU with A: 80 / 120 = 0.667 -> match


A_SHIFT3 = _rect(SHAPE, 0, 10, 3, 13)  # IoU with A: 70 / 130 = 0.538 -> no match


def _row(image_id, *preds, shape=SHAPE):
    return SubmissionRow(image_id, shape[1], shape[0], [Prediction(lab, conf, m) for lab, conf, m in preds])


def test_interpolated_ap_hand_computed():
    # TP FP TP FP, 3 true: recall steps 1/3 at precision 1, 1/3 at precision 2/3
    assert interpolated_average_precision([1, 0, 1, 0], 3) == pytest.approx(1 / 3 + 2 / 9)
    # TP FP FP TP TP, 3 true: raw precision at the 2nd hit is 2/4, interpolated 3/5
    assert interpolated_average_precision([1, 0, 0, 1, 1], 3) == pytest.approx(1 / 3 + 1 / 3 * 3 / 5 + 1 / 3 * 3 / 5)
    assert interpolated_average_precision([0, 1], 1) == pytest.approx(0.5)
    assert interpolated_average_precision([1, 1], 2) == 1.0
    assert interpolated_average_precision([], 4) == 0.0
    assert interpolated_average_precision([0, 0], 4) == 0.0
    with pytest.raises(ValueError):
        interpolated_average_precision([1], 0)
    with pytest.raises(ValueError):
        interpolated_average_precision([1, 1], 1)


def test_interpolated_ap_matches_tf_reference():
    rng = np.random.default_rng(1)
    for _ in range(50):
        tp = rng.random(rng.integers(1, 40)) < 0.4
        n_true = int(tp.sum()) + int(rng.integers(0, 5)) or 1
        hits = np.cumsum(tp)
        precision = hits / np.arange(1, tp.size + 1)
        recall = hits / n_true
        assert interpolated_average_precision(tp, n_true) == pytest.approx(
            _tf_average_precision(precision, recall), abs=1e-12
        )


def test_submission_equal_to_truth_scores_one():
    truth = [
        _row("i1", (0, 1, A), (16, 1, A), (0, 1, B), (5, 1, C)),
        _row("i2", (16, 1, B), (18, 1, C)),
    ]
    result = competition_map(truth, truth)
    assert result.mAP == 1.0
    assert {c for c, ap in result.ap.items() if not math.isnan(ap)} == {0, 5, 16, 18}
    assert result.n_true[0] == 2 and result.n_true[16] == 2 and result.n_tp[16] == 2
    assert result.n_ignored_predictions == 0


def test_hand_computed_ap_three_true_four_predictions():
    # class 0 has 3 true cells (A, B in i1; C in i2); ranked predictions: TP, FP, TP, FP
    truth = [_row("i1", (0, 1, A), (0, 1, B)), _row("i2", (0, 1, C))]
    sub = [
        _row("i1", (0, 0.9, A), (0, 0.8, A_SHIFT3), (0, 0.3, _rect(SHAPE, 15, 20, 20, 30))),  # TP, FP, FP
        _row("i2", (0, 0.7, C)),  # TP
    ]
    result = competition_map(truth, sub)
    assert (result.n_true[0], result.n_pred[0], result.n_tp[0]) == (3, 4, 2)
    assert result.ap[0] == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)  # = 5/9
    assert result.mAP == pytest.approx(5 / 9)


def test_shifted_mask_iou_threshold():
    truth = [_row("i", (3, 1, A))]
    assert competition_map(truth, [_row("i", (3, 0.5, A_SHIFT2))]).ap[3] == 1.0  # IoU 0.667
    assert competition_map(truth, [_row("i", (3, 0.5, A_SHIFT3))]).ap[3] == 0.0  # IoU 0.538
    assert competition_map(truth, [_row("i", (3, 0.5, A_SHIFT3))], iou_threshold=0.5).ap[3] == 1.0
    # IoU exactly 0.6 (8 px vs the same 8 px shifted by 2: 6 / 10) counts as a match
    row8 = _row("j", (3, 1, _rect(SHAPE, 0, 1, 0, 8)))
    assert competition_map([row8], [_row("j", (3, 0.5, _rect(SHAPE, 0, 1, 2, 10)))]).ap[3] == 1.0
    assert competition_map([row8], [_row("j", (3, 0.5, _rect(SHAPE, 0, 1, 3, 11)))]).ap[3] == 0.0
    # the same cell shifted into the next image's position: a different image never matches
    assert competition_map(truth + [_row("k")], [_row("k", (3, 0.9, A))]).ap[3] == 0.0


def test_duplicate_prediction_on_one_cell_is_a_false_positive():
    truth = [_row("i", (0, 1, A), (0, 1, B))]
    sub = [_row("i", (0, 0.9, A), (0, 0.8, A), (0, 0.7, B))]  # TP, FP (A already matched), TP
    result = competition_map(truth, sub)
    assert result.n_tp[0] == 2
    assert result.ap[0] == pytest.approx(1 / 2 * 1 + 1 / 2 * 2 / 3)


def test_class_without_truth_is_excluded_and_wrong_label_scores_zero():
    truth = [_row("i", (0, 1, A), (2, 1, B))]
    sub = [_row("i", (0, 0.9, A), (5, 0.9, B), (7, 0.4, C))]  # B predicted as 5 instead of 2
    result = competition_map(truth, sub)
    assert result.ap[0] == 1.0 and result.ap[2] == 0.0
    assert math.isnan(result.ap[5]) and math.isnan(result.ap[7])
    assert result.n_pred[5] == 1 and result.n_pred[7] == 1
    assert result.mAP == 0.5  # classes 0 and 2 only


def test_images_absent_from_truth_are_ignored_and_missing_images_are_misses():
    truth = [_row("i1", (0, 1, A)), _row("i2", (0, 1, A))]
    sub = [_row("i1", (0, 0.9, A)), _row("extra", (0, 1.0, B), (4, 1.0, C))]
    result = competition_map(truth, sub)
    assert result.n_ignored_predictions == 2
    assert (result.n_true[0], result.n_pred[0], result.n_tp[0]) == (2, 1, 1)
    assert result.ap[0] == 0.5 and math.isnan(result.ap[4])


def test_ties_keep_submission_order():
    truth = [_row("i", (0, 1, A))]
    assert competition_map(truth, [_row("i", (0, 0.5, C), (0, 0.5, A))]).ap[0] == 0.5  # FP then TP
    assert competition_map(truth, [_row("i", (0, 0.5, A), (0, 0.5, C))]).ap[0] == 1.0


def test_prediction_goes_to_best_still_unmatched_cell():
    # overlapping true cells (not an HPA partition): A and A moved right by 1 px (IoU 90/110)
    a1 = _rect(SHAPE, 0, 10, 1, 11)
    truth = [_row("i", (0, 1, A), (0, 1, a1))]
    result = competition_map(truth, [_row("i", (0, 0.9, A), (0, 0.8, A))])
    assert result.n_tp[0] == 2 and result.ap[0] == 1.0


def test_competition_map_rejects_bad_input():
    truth = [_row("i", (0, 1, A))]
    with pytest.raises(InputError, match="size 31x20 .* the truth says 30x20"):
        competition_map(truth, [SubmissionRow("i", 31, 20, [])])
    with pytest.raises(
        InputError, match="submission image 'i', prediction 1 \\(label 0\\): RLE run lengths sum to 300"
    ):
        competition_map(truth, [SubmissionRow("i", 30, 20, [Prediction(0, 1, _rect((10, 30), 0, 1, 0, 1))])])
    with pytest.raises(InputError, match="appears twice"):
        competition_map(truth + truth, truth)
    with pytest.raises(InputError, match="truth has no cells"):
        competition_map([_row("i")], truth)
    with pytest.raises(InputError, match="iou_threshold"):
        competition_map(truth, truth, iou_threshold=0)


def _brute_force_map(truth, sub, shape, iou_threshold=0.6):
    """The metric written the obvious way: full-size pixel masks, per-pair IoU, the TF AP."""
    from hpaseg.submission import decode_mask

    ap = {}
    for c in range(19):
        true_cells = [(r.image_id, decode_mask(p.mask, *shape)) for r in truth for p in r.predictions if p.label == c]
        if not true_cells:
            continue
        preds = [
            (p.confidence, r.image_id, decode_mask(p.mask, *shape)) for r in sub for p in r.predictions if p.label == c
        ]
        preds = sorted(preds, key=lambda x: -x[0])  # Python's sort is stable
        matched = [False] * len(true_cells)
        tp = []
        for _, image_id, m in preds:
            best, best_iou = None, -1.0
            for j, (tid, t) in enumerate(true_cells):
                if tid == image_id and not matched[j]:
                    iou = (m & t).sum() / (m | t).sum()
                    if iou > best_iou:
                        best, best_iou = j, iou
            hit = best is not None and best_iou >= iou_threshold
            if hit:
                matched[best] = True
            tp.append(hit)
        hits = np.cumsum(tp)
        precision = hits / np.arange(1, len(tp) + 1) if tp else np.array([])
        recall = hits / len(true_cells) if tp else np.array([])
        ap[c] = _tf_average_precision(precision, recall)
    return ap


def test_competition_map_matches_brute_force_on_random_cells():
    rng = np.random.default_rng(7)
    shape = (16, 21)
    truth, sub = [], []
    for i in range(5):
        lab = np.zeros(shape, dtype=np.int32)
        for k in range(1, 7):
            y, x = rng.integers(0, shape[0] - 3), rng.integers(0, shape[1] - 3)
            lab[y : y + rng.integers(3, 8), x : x + rng.integers(3, 9)] = k
        moved = np.roll(lab, (int(rng.integers(-1, 2)), int(rng.integers(-2, 3))), axis=(0, 1))
        t_masks, s_masks = encode_label_image(lab), encode_label_image(moved)
        truth.append(
            SubmissionRow(
                f"i{i}",
                shape[1],
                shape[0],
                [
                    Prediction(int(c), 1.0, m)
                    for k, m in t_masks.items()
                    for c in rng.choice(4, rng.integers(1, 3), replace=False)
                ],
            )
        )
        sub.append(
            SubmissionRow(
                f"i{i}",
                shape[1],
                shape[0],
                [
                    Prediction(int(c), float(np.round(rng.random(), 1)), m)
                    for k, m in s_masks.items()
                    for c in rng.choice(5, rng.integers(1, 4), replace=False)
                ],
            )
        )
    result = competition_map(truth, sub)
    expected = _brute_force_map(truth, sub, shape)
    assert 0 < result.mAP < 1
    assert {c for c in range(19) if not math.isnan(result.ap[c])} == set(expected)
    for c, ap in expected.items():
        assert result.ap[c] == pytest.approx(ap, abs=1e-12), c
    assert result.mAP == pytest.approx(np.mean(list(expected.values())), abs=1e-12)


def test_rle_iou_agrees_with_pixel_iou_on_real_mask(shared_data):
    """Truth = the real 21-cell mask; submission = the same mask shifted: a cell is a true
    positive exactly when its pixel IoU with the shifted cell is >= 0.6."""
    path = shared_data / "hpa_1000_A12_2" / f"{REAL_ID}_cellmask.png"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    mask = io.read_mask(path)
    shifted = np.zeros_like(mask)
    shifted[:, 25:] = mask[:, :-25]
    cells = list(range(1, 22))
    truth_masks = encode_label_image(mask, cells)
    sub_masks = encode_label_image(shifted)
    truth = [SubmissionRow(REAL_ID, 2048, 2048, [Prediction(0, 1.0, truth_masks[k]) for k in cells])]
    sub = [SubmissionRow(REAL_ID, 2048, 2048, [Prediction(0, k / 100, m) for k, m in sub_masks.items()])]
    result = competition_map(truth, sub)
    iou, _, _ = label_iou_matrix(mask, shifted)
    expected_tp = int((iou >= 0.6).sum())  # cells of a partition: at most one such pair per cell
    assert 0 < expected_tp < 21
    assert result.n_tp[0] == expected_tp
    assert competition_map(truth, truth).mAP == 1.0
