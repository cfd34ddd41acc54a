"""Tests of hpaseg.evaluation: the competition mAP, classification metrics, label-image matching."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpaseg.errors import InputError
from hpaseg.evaluation import (
    macro_ap,
    macro_f1,
    multilabel_confusion,
    per_class_ap,
    tune_thresholds,
)
from hpaseg.submission import (
    encode_binary_mask,
)


def _rect(shape, y0, y1, x0, x1) -> str:
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return encode_binary_mask(m)


SHAPE = (20, 30)  # H, W of the synthetic images


C = _rect(SHAPE, 0, 10, 15, 25)


Y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])


S = np.array([[0.9, 0.2, 0.1], [0.4, 0.6, 0.7], [0.3, 0.7, 0.2], [0.1, 0.65, 0.0]])


def test_macro_f1_hand_computed():
    # threshold 0.5: class 0 predicts row 0 only: P 1, R 1/2 -> 2/3; class 1 predicts rows 1-3:
    # P 2/3, R 1 -> 4/5; class 2 has no positives and one false positive -> 0
    assert macro_f1(Y, S) == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)
    # per-class thresholds: class 0 at 0.25 -> rows 0,1,2: P 2/3, R 1 -> 4/5; class 1 at 0.66 -> row 2: P 1, R 1/2 -> 2/3
    assert macro_f1(Y, S, np.array([0.25, 0.66, 0.8])) == pytest.approx((4 / 5 + 2 / 3 + 0) / 3)
    with pytest.raises(InputError, match="thresholds has shape"):
        macro_f1(Y, S, np.array([0.5, 0.5]))
    with pytest.raises(InputError, match="same \\(N, C\\) shape"):
        macro_f1(Y, S[:, :2])
    with pytest.raises(InputError, match="other than 0 and 1"):
        macro_f1(Y * 2, S)


def test_tune_thresholds_maximises_each_class():
    th = tune_thresholds(Y, S, grid=[0.2, 0.5, 0.62, 0.8])
    # class 0: 0.2 -> rows 0,1,2 (F1 4/5) beats 0.5 (2/3); class 1: 0.62 -> rows 2,3 (F1 1/2),
    # 0.5 -> rows 1,2,3 (4/5), 0.2 -> all (2/3 * 2 / (2/3 + 1) = 4/5, tie: 0.5 is closer to 0.5);
    # class 2: no positives, every threshold scores 0 -> 0.5
    assert th.tolist() == [0.2, 0.5, 0.5]
    assert macro_f1(Y, S, th) >= macro_f1(Y, S)
    assert tune_thresholds(Y, S).shape == (3,)


def test_per_class_and_macro_ap_hand_computed():
    ap = per_class_ap(Y, S)
    # class 0 ranking 0.9 (P), 0.4 (N), 0.3 (P), 0.1 (N): (1 + 2/3) / 2
    # class 1 ranking 0.7 (P), 0.65 (N), 0.6 (P), 0.2 (N): (1 + 2/3) / 2
    assert ap[:2] == pytest.approx([5 / 6, 5 / 6])
    assert math.isnan(ap[2])
    assert macro_ap(Y, S) == pytest.approx(5 / 6)
    with pytest.raises(InputError, match="no class has a positive"):
        macro_ap(np.zeros((2, 2), int), np.zeros((2, 2)))


def test_multilabel_confusion_hand_computed():
    y_pred = (S >= 0.5).astype(int)
    cm = multilabel_confusion(Y, y_pred)
    assert cm.shape == (3, 2, 2)
    assert cm[0].tolist() == [[2, 0], [1, 1]]  # TN rows 1,3; FN row 2; TP row 0
    assert cm[1].tolist() == [[1, 1], [0, 2]]
    assert cm[2].tolist() == [[3, 1], [0, 0]]
    with pytest.raises(InputError, match="y_pred has values"):
        multilabel_confusion(Y, S)
