"""Tests of hpaseg.evaluation.spread and the route diagnostics of hpaseg.evaluation.baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hpaseg.errors import InputError
from hpaseg.evaluation import competition_map, paired_summary, verdict
from hpaseg.evaluation.baselines import restrict_to_image_labels, weak_labels_on_cells
from hpaseg.evaluation.spread import ABOVE, BASELINE, BELOW, NOISE, ONE_REPEAT
from hpaseg.submission import Prediction, SubmissionRow, encode_label_image


def test_verdict_needs_twice_the_spread():
    # mean 0.03, sd 0.01: 3 sd -> above; mean 0.015, sd 0.01: 1.5 sd -> noise
    assert verdict(np.array([0.02, 0.03, 0.04])) == ABOVE
    assert verdict(np.array([0.005, 0.015, 0.025])) == NOISE
    assert verdict(np.array([-0.005, -0.015, -0.025])) == NOISE
    assert verdict(np.array([-0.02, -0.03, -0.04])) == BELOW
    assert verdict(np.array([0.5])) == ONE_REPEAT and verdict(np.array([])) == ONE_REPEAT


def test_paired_summary_pairs_by_unit():
    # route m is 0.1 above w on each seed although the seeds spread by 0.3: a paired gain
    records = pd.DataFrame(
        {
            "route": ["w", "w", "w", "m", "m", "m", "x"],
            "seed": [0, 1, 2, 0, 1, 2, 0],
            "mAP": [0.3, 0.6, 0.9, 0.41, 0.69, 1.0, 0.2],
        }
    )
    t = paired_summary(records, key="route", unit="seed", values=["mAP"], baseline="w").set_index("route")
    assert t.loc["m", "mAP_sd"] > 0.25 and t.loc["m", "diff"] == pytest.approx(0.1)
    assert t.loc["m", "diff_sd"] == pytest.approx(np.std([0.11, 0.09, 0.1], ddof=1))
    assert t.loc["m", "verdict"] == ABOVE and t.loc["w", "verdict"] == BASELINE
    assert t.loc["x", "n"] == 1 and t.loc["x", "verdict"] == ONE_REPEAT and np.isnan(t.loc["x", "mAP_sd"])
    with pytest.raises(InputError, match="baseline 'z'"):
        paired_summary(records, key="route", unit="seed", values=["mAP"], baseline="z")
    with pytest.raises(InputError, match="no column 'fold'"):
        paired_summary(records, key="route", unit="fold", values=["mAP"], baseline="w")


def _two_images():
    m = encode_label_image(np.array([[1, 1, 0, 2]]))
    truth = [
        SubmissionRow("a", 4, 1, [Prediction(0, 1.0, m[1]), Prediction(16, 1.0, m[2])]),
        SubmissionRow("b", 4, 1, [Prediction(5, 1.0, m[1]), Prediction(5, 1.0, m[2])]),
    ]
    return m, truth, {"a": {0, 16}, "b": {5}}


def test_oracle_image_removes_absent_classes_and_never_scores_below_the_route():
    m, truth, labels = _two_images()
    # the route ranks class 0 high in image b (absent there) and the right cell of a low
    route = [
        SubmissionRow("a", 4, 1, [Prediction(0, 0.3, m[1]), Prediction(0, 0.4, m[2]), Prediction(16, 0.5, m[2])]),
        SubmissionRow("b", 4, 1, [Prediction(0, 0.9, m[1]), Prediction(5, 0.6, m[1]), Prediction(5, 0.6, m[2])]),
    ]
    restricted = restrict_to_image_labels(route, labels)
    assert {(r.image_id, p.label) for r in restricted for p in r.predictions} == {("a", 0), ("a", 16), ("b", 5)}
    assert competition_map(truth, restricted).mAP >= competition_map(truth, route).mAP
    assert competition_map(truth, restricted).mAP > competition_map(truth, route).mAP  # b's class 0 was a FP


def test_weak_labels_on_cells_gives_every_cell_of_the_route_its_image_labels():
    m, truth, labels = _two_images()
    route = [SubmissionRow("a", 4, 1, [Prediction(3, 0.2, m[1])]), SubmissionRow("b", 4, 1, [])]
    weak = weak_labels_on_cells(route, labels)
    assert [(p.label, p.confidence, p.mask) for p in weak[0].predictions] == [(0, 1.0, m[1]), (16, 1.0, m[1])]
    assert weak[1].predictions == []  # no cells, nothing to label
