"""Tests of hpaseg.evaluation: the competition mAP, classification metrics, label-image matching."""

from __future__ import annotations

import json
import re

from hpaseg.bench import encode as bench_encode
from hpaseg.bench import main as bench_main


def test_encode_benchmark(shared_data, capsys, tmp_path):
    assert (
        bench_encode.main(["--mask", str(shared_data / "hpa_1000_A12_2" / "1000_A12_2_cellmask.png"), "--repeats", "1"])
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("bytes_equal=True speedup=") and lines[-1].endswith("x")
    assert float(lines[-1].split("speedup=")[1][:-1]) > 1
    assert "21 cells" in lines[0]
    assert bench_encode.main(["--mask", str(tmp_path / "none.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.png: no such mask file" in err[0]


def test_benchmark_prints_images_per_second(capsys):
    from hpaseg.bench import segment as bench

    assert bench.main(["--size", "256", "--repeats", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("images_per_s=") and float(last.split()[0].split("=")[1]) > 0


def test_bench_encode_last_line(shared_data, capsys):
    assert bench_main(["encode", "--repeats", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"bytes_equal=True speedup=\d+\.\dx", last), last


def test_bench_segment_last_line(capsys):
    assert bench_main(["segment", "--size", "512", "--repeats", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"images_per_s=\d+\.\d\d per_core=\d+\.\d\d cores=1 peak_rss_mb=\d+", last), last


def test_bench_train_last_line(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert (
        bench_main(
            [
                "train",
                "--image-size",
                "128",
                "--batch-size",
                "1",
                "--iters",
                "1",
                "--backbones",
                "densenet121",
                "--engines",
                "torchvision",
                "--out-json",
                str(out),
            ]
        )
        == 0
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"r101_fpn_tv_over_d2=nan x101_fpn_tv_over_d2=nan", last), last
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["backbone"] == "densenet121" and rows[0]["train_images_per_s"] > 0


def test_bench_unknown(capsys):
    assert bench_main(["nope"]) == 2
    assert bench_main(["train", "--backbones", "vgg"]) == 2


def test_bench_learn_scores_every_route_and_score_rule(tmp_path, capsys):
    from hpaseg.bench import learn as bench_learn
    from hpaseg.pipeline.routes import PRIOR, RANDOM, WEAK

    out = tmp_path / "learn"
    argv = ["--out", str(out), "--n-train", "6", "--n-test", "2", "--size", "128", "--maskrcnn-iters", "0"]
    assert bench_learn.main([*argv, "--supervisions", "propagated", "refined"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^seconds=\d+$", printed.strip().splitlines()[-1])
    result = json.loads((out / "learn.json").read_text())
    routes = {r["route"]: r for r in result["routes"]}
    assert set(routes) == {
        PRIOR,
        RANDOM,
        WEAK,
        "cell classifier (descriptors, propagated)",
        "cell classifier (descriptors, refined)",
    }
    for r in routes.values():
        assert 0 <= r["mAP"] <= 1 and 0 <= r["cell_macro_ap"] <= 1
    assert routes["cell classifier (descriptors, refined)"]["train_seconds"] > 0
    rules = [r["rule"] for r in result["score_rules"]]
    assert len(rules) == 15 and "fusion product, Negative max" in rules and "fusion mean w 0.2, Negative max" in rules
    assert "| route |" in (out / "learn.md").read_text()
