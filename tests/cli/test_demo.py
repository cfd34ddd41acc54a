"""Tests of the ``hpaseg <stage>`` dispatcher."""

from __future__ import annotations

import json
import re

import pytest

from hpaseg.cli import demo
from hpaseg.pipeline.demo import LEARNED, PRIOR, RANDOM, WEAK


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = [
        "--out",
        str(out),
        "--n-train",
        "6",
        "--n-test",
        "2",
        "--size",
        "128",
        "--train-iters",
        "2",
        "--image-size",
        "64",
        "--batch-size",
        "1",
        "--workers",
        "1",
    ]
    assert demo.main(argv) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^mAP=\d\.\d{4} prior=\d\.\d{4} weak_labels=\d\.\d{4}$", printed.strip().splitlines()[-1])
    summary = json.loads((out / "demo_summary.json").read_text())
    assert set(summary["mAP"]) == {
        PRIOR,
        RANDOM,
        WEAK,
        LEARNED,
        "Mask R-CNN (its own cells and labels)",
        "hybrid (Mask R-CNN cells, cell classifier labels)",
    }
    assert all(0 <= v <= 1 for v in summary["mAP"].values()) and set(summary["cell_macro_ap"]) == set(summary["mAP"])
    assert 0 <= summary["segmentation"]["precision"] <= 1 and summary["segmentation"]["n_true"] > 0
    routes = out / "routes"
    for name in (
        "prior_submission.csv",
        "cell_refined_submission.csv",
        "maskrcnn_submission.csv",
        "hybrid_submission.csv",
        "routes.csv",
        "cell_refined/refined_labels.csv",
        "dataset_refined/train.json",
    ):
        assert (routes / name).is_file(), name
    for line in ("mAP", "cell AP", LEARNED, PRIOR):
        assert line in printed
    assert list(out.glob("overlay_*.png"))
    # A rerun reuses everything that is finished.
    assert demo.main(argv) == 0
    assert "reusing" in capsys.readouterr().out
    # A foreign non-empty folder is refused.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("mine")
    assert demo.main(["--out", str(foreign)]) == 2
    assert (foreign / "x.txt").read_text() == "mine"
