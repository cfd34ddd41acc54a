"""Tests of hpaseg.viz: colours, drawn cells, evaluation figures, feature maps, the classifier study's figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpaseg import evaluation
from hpaseg.classes import NUM_CLASSES
from hpaseg.evaluation import multilabel_confusion
from hpaseg.submission import (
    Prediction,
    SubmissionRow,
    encode_label_image,
)


def _hand_truth_and_submission():
    labels = np.zeros((4, 6), np.int32)
    labels[:2, :3], labels[:2, 3:], labels[2:, :] = 1, 2, 3
    enc = encode_label_image(labels)
    truth = [
        SubmissionRow("good", 6, 4, [Prediction(0, 1.0, enc[1]), Prediction(16, 1.0, enc[2])]),
        SubmissionRow("bad", 6, 4, [Prediction(0, 1.0, enc[1]), Prediction(5, 1.0, enc[3])]),
        SubmissionRow("empty", 6, 4, []),
    ]
    sub = [
        SubmissionRow("good", 6, 4, [Prediction(0, 0.9, enc[1]), Prediction(16, 0.8, enc[2])]),
        SubmissionRow("bad", 6, 4, [Prediction(16, 0.9, enc[1]), Prediction(0, 0.2, enc[2])]),
    ]
    return truth, sub


def test_worst_images_ranks_per_image_map():
    truth, sub = _hand_truth_and_submission()
    scores = evaluation.per_image_map(truth, sub)
    assert scores == {"good": 1.0, "bad": 0.0}  # "empty" has no true cell: not scored
    assert evaluation.worst_images(scores, 1) == [("bad", 0.0)]
    assert evaluation.worst_images({"a": 0.2, "b": 0.2, "c": 0.1}, 5) == [("c", 0.1), ("a", 0.2), ("b", 0.2)]
    assert evaluation.worst_images({"a": math.nan}, 3) == []


def test_cell_targets_match_cells_and_count_misses_and_false_detections():
    truth, sub = _hand_truth_and_submission()
    y_true, y_score = evaluation.cell_targets(truth, sub)
    # good: 2 true cells matched; bad: cell 1 matched (wrong class), cell 3 missed, predicted cell 2 unmatched
    assert y_true.shape == y_score.shape == (5, NUM_CLASSES)
    assert y_true.sum(axis=0)[[0, 5, 16]].tolist() == [2, 1, 1]
    assert y_score[:, 16].tolist() == [0.0, 0.8, 0.9, 0.0, 0.0]
    assert y_true[-1].sum() == 0 and y_score[-1, 0] == pytest.approx(0.2)  # the false detection
    confusion = multilabel_confusion(y_true, (y_score >= 0.5).astype(int))
    assert confusion[0].tolist() == [[3, 0], [1, 1]]
