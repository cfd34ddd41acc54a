"""Tests of hpaseg.evaluation: the competition mAP, classification metrics, label-image matching."""

from __future__ import annotations

import numpy as np
import pytest

from hpaseg.evaluation import (
    match_label_images,
)


def test_match_label_images():
    t = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    p = np.array([[5, 5, 5, 0], [5, 5, 0, 0]])
    m = match_label_images(t, p)
    assert (m.n_true, m.n_pred, m.n_matched) == (2, 1, 1)
    assert m.mean_matched_iou == pytest.approx(4 / 5)
