"""Tests of hpaseg.detection.postprocess: detections -> cells, on hand-made tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpaseg.detection import (
    CellPrediction,
    PostprocessConfig,
    compose_label_image,
    group_detections,
)
from hpaseg.labels import cell_labels


def _det(boxes, labels, scores, masks):
    return (
        torch.tensor(boxes, dtype=torch.float32),
        torch.tensor(labels),
        torch.tensor(scores),
        torch.stack(masks)[:, None],
    )


def _square(y0, y1, x0, x1, size=20, value=0.9):
    m = torch.zeros(size, size)
    m[y0:y1, x0:x1] = value
    return m


def test_group_detections_merges_classes_of_one_cell():
    a, a2, b = _square(2, 10, 2, 10), _square(2, 10, 3, 10), _square(12, 18, 12, 18)
    boxes, labels, scores, masks = _det(
        [[2, 2, 10, 10], [3, 2, 10, 10], [12, 12, 18, 18]], [1, 17, 14], [0.9, 0.6, 0.8], [a, a2, b]
    )
    cells = group_detections(boxes, labels, scores, masks)
    assert [c.scores for c in cells] == [{0: pytest.approx(0.9), 16: pytest.approx(0.6)}, {13: pytest.approx(0.8)}]
    # Detections below min_score are dropped.
    assert len(group_detections(boxes, labels, torch.tensor([0.9, 0.6, 0.01]), masks)) == 1


def test_compose_label_image_each_pixel_one_cell_and_upsampling():
    big = CellPrediction(_square(2, 12, 2, 12), (2, 2, 12, 12), {0: 0.9})
    overlapping = CellPrediction(_square(8, 16, 8, 16), (8, 8, 16, 16), {5: 0.5})
    labels, kept = compose_label_image([big, overlapping], (20, 20), (40, 40))
    assert labels.shape == (40, 40) and kept == [0, 1]
    assert set(np.unique(labels)) == {0, 1, 2}
    assert labels[20, 20] == 1  # overlap goes to the higher score
    assert labels[28, 28] == 2
    assert (labels == 1).sum() == pytest.approx(20 * 20, rel=0.1)  # 10x10 at working size -> ~20x20
    # A cell that loses most of its pixels is dropped.
    swallowed = CellPrediction(_square(3, 11, 3, 11), (3, 3, 11, 11), {1: 0.2})
    labels, kept = compose_label_image([big, swallowed], (20, 20), (20, 20))
    assert kept == [0] and set(np.unique(labels)) == {0, 1}


def test_cell_labels_negative_rule():
    config = PostprocessConfig(min_score=0.05, negative_threshold=0.3)
    assert cell_labels({0: 0.9, 16: 0.4}, config) == [(0, 0.9), (16, 0.4)]
    assert cell_labels({16: 0.1}, config) == [(18, 0.9), (16, 0.1)]
    assert cell_labels({18: 0.95, 3: 0.1}, config) == [(18, 0.95), (3, 0.1)]
