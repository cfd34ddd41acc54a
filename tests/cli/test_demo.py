"""Tests of the ``hpaseg <stage>`` dispatcher."""

from __future__ import annotations

import json
import re

import pytest

from hpaseg.cli import demo


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = [
        "--out",
        str(out),
        "--n-train",
        "4",
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
    assert re.search(r"^mAP=\d\.\d{4}$", printed.strip().splitlines()[-1])
    summary = json.loads((out / "demo_summary.json").read_text())
    assert set(summary["mAP"]) >= {
        "prior baseline (no training)",
        "random labels",
        "weak-label oracle (uses the test images' true labels)",
    }
    assert any(k.startswith("Mask R-CNN") for k in summary["mAP"])
    assert 0 <= summary["segmentation"]["precision"] <= 1 and summary["segmentation"]["n_true"] > 0
    for name in ("submission.csv", "maskrcnn_submission.csv", "dataset/train.json", "evaluation.json"):
        assert (out / name).is_file(), name
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
