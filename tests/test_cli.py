"""The ``hpaseg <stage>`` dispatcher, the benchmarks' output format and the demo, end to end."""
from __future__ import annotations

import json
import re

import pytest

from hpaseg import cli, demo
from hpaseg.bench import main as bench_main


def test_usage_lists_every_stage(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for stage in cli.STAGES:
        assert f"  {stage}" in out


def test_unknown_stage(capsys):
    assert cli.main(["segmnt"]) == 2
    assert "unknown stage 'segmnt'" in capsys.readouterr().err


@pytest.mark.parametrize("stage", sorted(set(cli.STAGES) - {"bench"}))
def test_every_stage_has_help(stage, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([stage, "--help"])
    assert info.value.code == 0
    assert f"hpaseg {stage}" in capsys.readouterr().out


def test_bench_encode_last_line(shared_data, capsys):
    assert bench_main(["encode", "--repeats", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"bytes_equal=True speedup=\d+\.\dx", last), last


def test_bench_segment_last_line(capsys):
    assert bench_main(["segment", "--size", "512", "--repeats", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"images_per_s=\d+\.\d\d", last), last


def test_bench_train_last_line(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench_main(["train", "--image-size", "128", "--batch-size", "1", "--iters", "1", "--backbones", "densenet121", "--engines", "torchvision", "--out-json", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"r101_fpn_tv_over_d2=nan x101_fpn_tv_over_d2=nan", last), last
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["backbone"] == "densenet121" and rows[0]["train_images_per_s"] > 0


def test_bench_unknown(capsys):
    assert bench_main(["nope"]) == 2
    assert bench_main(["train", "--backbones", "vgg"]) == 2


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["--out", str(out), "--n-train", "4", "--n-test", "2", "--size", "128", "--train-iters", "2", "--image-size", "64", "--batch-size", "1", "--workers", "1"]
    assert demo.main(argv) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^mAP=\d\.\d{4}$", printed.strip().splitlines()[-1])
    summary = json.loads((out / "demo_summary.json").read_text())
    assert set(summary["mAP"]) >= {"prior baseline (no training)", "random labels", "weak-label oracle (uses the test images' true labels)"}
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
