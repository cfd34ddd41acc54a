"""Tests of hpaseg.detection.postprocess: class-agnostic detections -> cells, on hand-made tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpaseg.detection import (
    CellPrediction,
    PostprocessConfig,
    cell_scores,
    compose_label_image,
    mask_iou_matrix,
    select_cells,
)
from hpaseg.errors import InputError
from hpaseg.weak import ScoreRule, fuse_scores


def _square(y0, y1, x0, x1, size=20, value=0.9):
    m = torch.zeros(size, size)
    m[y0:y1, x0:x1] = value
    return m


def _probs(*hot):
    p = torch.full((len(hot), 19), 0.01)
    for row, k in enumerate(hot):
        p[row, k] = 0.9
    return p


def test_mask_iou_matrix_matches_pairwise_counts():
    rng = np.random.default_rng(0)
    masks = torch.from_numpy(rng.random((5, 12, 9)) < 0.4)
    iou = mask_iou_matrix(masks)
    for i in range(5):
        for j in range(5):
            inter = int((masks[i] & masks[j]).sum())
            union = int((masks[i] | masks[j]).sum())
            assert iou[i, j] == pytest.approx(inter / union)
    assert mask_iou_matrix(torch.zeros((0, 4, 4), dtype=torch.bool)).shape == (0, 0)


def test_select_cells_suppresses_duplicate_detections_of_one_cell():
    a, a_dup, b = _square(2, 10, 2, 10), _square(2, 10, 3, 10), _square(12, 18, 12, 18)
    scores = torch.tensor([0.6, 0.9, 0.8])
    cells = select_cells(scores, torch.stack([a_dup, a, b])[:, None], _probs(16, 0, 13))
    assert [c.score for c in cells] == [pytest.approx(0.9), pytest.approx(0.8)]  # the duplicate (IoU 0.875) is gone
    assert [int(np.argmax(c.label_probs)) for c in cells] == [0, 13]  # each keeps its own detection's labels
    assert cells[0].box == (1, 1, 11, 11)  # the binary mask's box, one pixel of margin
    # Detections below the score floor are dropped; a looser NMS keeps the duplicate.
    assert len(select_cells(torch.tensor([0.6, 0.9, 0.01]), torch.stack([a_dup, a, b]), _probs(16, 0, 13))) == 1
    loose = select_cells(scores, torch.stack([a_dup, a, b]), _probs(16, 0, 13), PostprocessConfig(nms_iou=0.9))
    assert len(loose) == 3
    # A detection with an empty mask is no cell.
    assert len(select_cells(torch.tensor([0.9]), torch.zeros(1, 20, 20), _probs(0))) == 0


def test_compose_label_image_each_pixel_one_cell_and_upsampling():
    p = np.zeros(19)
    big = CellPrediction(_square(2, 12, 2, 12), (2, 2, 12, 12), 0.9, p)
    overlapping = CellPrediction(_square(8, 16, 8, 16), (8, 8, 16, 16), 0.5, p)
    labels, kept = compose_label_image([big, overlapping], (20, 20), (40, 40))
    assert labels.shape == (40, 40) and kept == [0, 1]
    assert set(np.unique(labels)) == {0, 1, 2}
    assert labels[20, 20] == 1  # overlap goes to the higher score
    assert labels[28, 28] == 2
    assert (labels == 1).sum() == pytest.approx(20 * 20, rel=0.1)  # 10x10 at working size -> ~20x20
    # A cell that loses most of its pixels is dropped.
    swallowed = CellPrediction(_square(3, 11, 3, 11), (3, 3, 11, 11), 0.2, p)
    labels, kept = compose_label_image([big, swallowed], (20, 20), (20, 20))
    assert kept == [0] and set(np.unique(labels)) == {0, 1}


def test_cell_scores_fuse_every_class_and_optionally_weight_by_detection():
    probs = np.full((2, 19), 0.02)
    probs[0, 3], probs[1, 3], probs[1, 7] = 0.9, 0.1, 0.8
    scores = cell_scores(probs, np.array([0.9, 0.5]), PostprocessConfig(weight_by_detection=False))
    fused = fuse_scores(probs, None, ScoreRule())
    assert sorted(scores) == [1, 2]
    for k in (1, 2):
        assert len(scores[k]) == 19  # every class ranked (min_score 0)
        assert [s for _, s in scores[k]] == sorted((s for _, s in scores[k]), reverse=True)
        assert dict(scores[k]) == pytest.approx({c: fused[k - 1, c] for c in range(19)})
    weighted = cell_scores(probs, np.array([0.9, 0.5]))  # the default multiplies in the detection score
    assert dict(weighted[2]) == pytest.approx({c: 0.5 * fused[1, c] for c in range(19)})
    floor = cell_scores(probs, np.array([0.9, 0.5]), PostprocessConfig(min_score=0.05, weight_by_detection=False))
    assert all(s >= 0.05 for _, s in floor[1])
    assert cell_scores(np.zeros((0, 19)), np.zeros(0)) == {}


def test_postprocess_config_checks_its_numbers():
    with pytest.raises(InputError, match="nms_iou 1.5"):
        PostprocessConfig(nms_iou=1.5)
    with pytest.raises(InputError, match="min_score -1"):
        PostprocessConfig(min_score=-1)
