"""Tests of hpaseg.labels.rules: which (class, confidence) pairs a cell reports."""

from __future__ import annotations

import pytest

from hpaseg.errors import InputError
from hpaseg.labels import LabelRule, cell_labels


def test_every_class_is_ranked_by_default():
    assert LabelRule().min_score == 0.0
    scores = {k: 0.01 * (k + 1) for k in range(19)}
    assert sorted(k for k, _ in cell_labels(scores)) == list(range(19))


def test_floor_and_negative_rule():
    rule = LabelRule(min_score=0.05, negative_threshold=0.3)
    assert cell_labels({0: 0.9, 16: 0.4, 3: 0.01}, rule) == [(0, 0.9), (16, 0.4)]
    assert cell_labels({16: 0.1}, rule) == [(18, 0.9), (16, 0.1)]
    assert cell_labels({18: 0.95, 3: 0.1}, rule) == [(18, 0.95), (3, 0.1)]
    assert cell_labels({16: 0.1}, LabelRule(negative_threshold=0.0)) == [(16, 0.1)]
    with pytest.raises(InputError, match="min_score 2"):
        LabelRule(min_score=2)
