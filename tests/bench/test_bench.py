"""Tests of hpaseg.evaluation: the competition mAP, classification metrics, label-image matching."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def learn_run(tmp_path_factory) -> tuple[Path, str]:
    """``bench learn --smoke`` over 3 seeds (8 train, 3 test images of 128 px each; Mask R-CNN
    on the first seed only) with two supervisions and the CNN cell route, and what it printed."""
    import contextlib
    import io as text_io

    from hpaseg.bench import learn as bench_learn

    out = tmp_path_factory.mktemp("bench") / "learn"
    printed = text_io.StringIO()
    with contextlib.redirect_stdout(printed):
        argv = [
            "--out",
            str(out),
            "--smoke",
            "--seeds",
            "3",
            "--supervisions",
            "propagated",
            "refined",
            "--cnn",
            "--quiet",
        ]
        assert bench_learn.main(argv) == 0
    return out, printed.getvalue()


MASKRCNN = "Mask R-CNN (its own cells and labels)"
HYBRID = "hybrid (Mask R-CNN cells, cell classifier labels)"
REFINED = "cell classifier (descriptors, refined)"
CNN = "cell classifier (resnet18, refined)"


def test_bench_learn_scores_every_route_and_score_rule_on_every_seed(learn_run):
    from hpaseg.pipeline.routes import PRIOR, RANDOM, WEAK, WEAK_MASKRCNN

    out, printed = learn_run
    assert re.search(r"^seconds=\d+$", printed.strip().splitlines()[-1])
    result = json.loads((out / "learn.json").read_text())
    assert result["seeds"] == [0, 1, 2]
    every_seed = {PRIOR, RANDOM, WEAK, "cell classifier (descriptors, propagated)", REFINED, CNN}
    for seed in (0, 1, 2):
        routes = {r["route"] for r in result["routes"] if r["seed"] == seed}
        # Mask R-CNN and the hybrid on the first seed only (--maskrcnn-seeds 1)
        assert routes == (every_seed | {MASKRCNN, HYBRID, WEAK_MASKRCNN} if seed == 0 else every_seed)
        # each seed is its own synthetic set
        assert json.loads((out / f"seed{seed}" / "params.json").read_text())["seed"] == seed
    truths = {(out / f"seed{s}" / "data" / "truth.csv").read_text() for s in (0, 1, 2)}
    assert len(truths) == 3
    summary = {r["route"]: r for r in result["summary"]}
    assert summary[REFINED]["n"] == 3 and summary[MASKRCNN]["n"] == 1
    assert summary[MASKRCNN]["verdict"] == "one repeat: no spread" and summary[WEAK]["verdict"] == "baseline"
    assert all(r["train_seconds"] > 0 for r in result["routes"] if r["route"] in (REFINED, CNN))
    cnn_eval = json.loads((out / "seed0" / "routes" / "cell_cnn" / "eval.json").read_text())
    assert cnn_eval["backbone"] == "resnet18" and cnn_eval["input_size"] == 32 and cnn_eval["rounds"] == 3
    rules = [r["rule"] for r in result["score_rules"] if r["seed"] == 0]
    assert len(rules) == 27 and "fusion product, Negative max" in rules and "fusion mean w 0.2, Negative max" in rules
    assert {r["n"] for r in result["score_rule_summary"]} == {3}
    # rules are compared with the default rule, fold by fold
    baseline = [r["rule"] for r in result["score_rule_summary"] if r["verdict"] == "baseline"]
    assert baseline == ["fusion mean w 0.2, Negative max"]
    text = (out / "learn.md").read_text()
    assert "| route | seeds | mAP |" in text and "above the weak-label baseline" in text


def test_bench_learn_orderings_that_must_hold(learn_run):
    """The oracle-image diagnostic only removes false positives: never below its route; the
    weak-label rows on a route's cells are the weak-label baselines; a trained route beats random."""
    import numpy as np

    from hpaseg.pipeline.routes import RANDOM, WEAK, WEAK_MASKRCNN

    result = json.loads((learn_run[0] / "learn.json").read_text())
    for seed in (0, 1, 2):
        rows = {r["route"]: r for r in result["routes"] if r["seed"] == seed}
        for name, r in rows.items():
            assert 0 <= r["mAP"] <= r["oracle_image"] + 1e-9 <= 1 + 1e-9, (seed, name)
        segmented = [n for n in rows if n not in (MASKRCNN, HYBRID, WEAK_MASKRCNN)]
        for name in segmented:  # the built-in segmentation's cells
            assert rows[name]["weak_on_cells"] == pytest.approx(rows[WEAK]["mAP"]), (seed, name)
        if seed == 0:
            for name in (MASKRCNN, HYBRID):
                assert rows[name]["weak_on_cells"] == pytest.approx(rows[WEAK_MASKRCNN]["mAP"]), name
        assert rows[REFINED]["mAP"] > rows[RANDOM]["mAP"] + 0.1
    # the summary's verdicts follow from the paired differences
    by_route = {}
    for r in result["routes"]:
        by_route.setdefault(r["route"], {})[r["seed"]] = r["mAP"]
    for s in result["summary"]:
        d = np.array([by_route[s["route"]][k] - by_route[WEAK][k] for k in sorted(by_route[s["route"]])])
        assert s["diff"] == pytest.approx(d.mean())
        if len(d) > 1 and s["route"] != WEAK:
            sd = d.std(ddof=1)
            assert s["diff_sd"] == pytest.approx(sd)
            expected = "above" if d.mean() > 2 * sd else "below" if d.mean() < -2 * sd else "within noise"
            assert s["verdict"].startswith(expected)
    summary = {s["route"]: s for s in result["summary"]}
    assert summary[RANDOM]["verdict"].startswith("below")


def test_bench_learn_refuses_bad_counts(tmp_path, capsys):
    from hpaseg.bench import learn as bench_learn

    assert bench_learn.main(["--out", str(tmp_path / "l"), "--seeds", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--seeds" in err and len(err.splitlines()) == 1 and not (tmp_path / "l").exists()


def test_bench_cv_scores_every_rule_on_held_out_training_images(learn_run, tmp_path, capsys):
    from hpaseg.bench import cv as bench_cv
    from hpaseg.pipeline.crossval import TRUE_IMAGE, WEAK
    from hpaseg.pipeline.routes import score_rule_variants

    learn = tmp_path / "learn"  # without its test images: cross-validation must not need them
    shutil.copytree(learn_run[0], learn, ignore=shutil.ignore_patterns("routes", "test", "truth.csv", "seed1", "seed2"))
    out = tmp_path / "cv"
    assert bench_cv.main(["--learn", str(learn), "--out", str(out), "--folds", "2", "--quiet"]) == 0
    assert re.search(r"^seconds=\d+$", capsys.readouterr().out.strip().splitlines()[-1])
    result = json.loads((out / "cv.json").read_text())
    names = [name for name, _, _ in score_rule_variants()] + [WEAK, TRUE_IMAGE]
    assert sorted(r["rule"] for r in result["summary"]) == sorted(names)
    fold0 = {r["rule"]: r["mAP"] for r in result["folds"] if r["fold"] == 0}
    # the diagnostic replaces the learned image estimate by the true labels: another score
    assert fold0[TRUE_IMAGE] != fold0["image pooling lse, image model weight 0.5"]
    assert len(result["folds"]) == 2 * len(names) and {r["fold"] for r in result["folds"]} == {0, 1}
    assert all(0 <= r["mAP"] <= 1 for r in result["folds"])
    maps = [r["mAP"] for r in result["summary"]]
    assert maps == sorted(maps, reverse=True) and "| rule |" in (out / "cv.md").read_text()
    summary = {r["rule"]: r for r in result["summary"]}
    assert summary[WEAK]["verdict"] == "baseline" and summary[WEAK]["diff"] == 0
    diffs = [fold0[TRUE_IMAGE] - fold0[WEAK]] + [
        r["mAP"] - next(w["mAP"] for w in result["folds"] if w["rule"] == WEAK and w["fold"] == 1)
        for r in result["folds"]
        if r["rule"] == TRUE_IMAGE and r["fold"] == 1
    ]
    assert summary[TRUE_IMAGE]["diff"] == pytest.approx(sum(diffs) / 2)


def test_bench_cv_needs_a_bench_learn_folder(tmp_path, capsys):
    from hpaseg.bench import cv as bench_cv

    assert bench_cv.main(["--learn", str(tmp_path), "--out", str(tmp_path / "cv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--learn" in err and "bench learn" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "cv").exists()


def test_truth_rows_hold_every_true_cell_of_a_synthetic_image(tiny_dataset):
    from hpaseg import io
    from hpaseg.evaluation import competition_map
    from hpaseg.pipeline.crossval import truth_rows

    ids = io.list_image_ids(tiny_dataset["train"])
    rows = truth_rows(tiny_dataset["data"], ids)
    cells = io.read_cell_labels_csv(tiny_dataset["data"] / "cell_labels.csv")
    for row in rows:
        assert len(row.predictions) == sum(len(labels) for labels in cells[row.image_id].values())
    assert competition_map(rows, rows).mAP == pytest.approx(1.0)
