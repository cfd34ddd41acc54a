"""Tests of hpaseg.submission: encoding, RLE parsing, building rows, reading and writing, on tiny masks and the real 21-cell mask."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from hpaseg.submission import (
    Prediction,
    SubmissionRow,
    encode_label_image,
    read_submission,
    validate_submission,
    write_submission,
)


def test_write_then_read_submission_round_trip(tmp_path):
    rows = [SubmissionRow("a", 3, 2, [Prediction(4, 0.123456789, "eNozNAYAAJcAZQ==")]), SubmissionRow("b", 1, 1)]
    write_submission(tmp_path / "s.csv", rows)
    back = read_submission(tmp_path / "s.csv")
    assert back[0].predictions[0].confidence == pytest.approx(0.123457)
    assert back[1].predictions == []


def test_long_prediction_strings_are_read(tmp_path):
    """~100 cells x 19 labels make a PredictionString far longer than csv's default
    131072-character field limit."""
    lab = np.zeros((64, 64), dtype=np.int32)
    lab[4:60, 4:60] = np.arange(1, 57)[None, :].repeat(56, axis=0)  # 56 column-strip cells
    masks = encode_label_image(lab)
    preds = [Prediction(c, 0.5, m) for m in masks.values() for c in range(19)] * 8
    path = tmp_path / "long.csv"
    write_submission(path, [SubmissionRow("big", 64, 64, preds)])
    assert len(path.read_text()) > 200_000
    limit = csv.field_size_limit()
    assert len(read_submission(path)[0].predictions) == len(preds)
    assert validate_submission(path).n_predictions == len(preds)
    assert csv.field_size_limit() == limit  # restored
