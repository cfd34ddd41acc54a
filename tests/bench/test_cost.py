"""The cost model (``python -m hpaseg.bench cost``): its arithmetic on given figures, the GPU
figures read from a ``bench gpu`` JSON (never guessed), and a smoke run of every stage on
tiny fields whose table must be its measurements extrapolated (no timed assertions)."""

from __future__ import annotations

import json
import math
import re

import pytest

from hpaseg.bench import main as bench_main
from hpaseg.bench.cost import (
    KAGGLE_TEST_IMAGES,
    KAGGLE_TRAIN_IMAGES,
    NODE_CORES,
    STAGES,
    TRAINING_PASSES,
    cost_table,
    gpu_figures,
    predict_plan,
)


def _fake_measured() -> dict[str, dict]:
    """Round figures for every stage: seconds k + 1 and bytes 1000 (k + 1) per image."""
    out = {}
    for k, stage in enumerate(STAGES):
        if stage.key in TRAINING_PASSES:
            out[stage.key] = {"seconds_per_image_epoch": 0.01 * (k + 1)}
        else:
            out[stage.key] = {"seconds_per_image": float(k + 1), "bytes_per_image": 1000.0 * (k + 1)}
    out["predict-maskrcnn"]["non_forward_seconds_per_image"] = 2.0
    return out


def _check_arithmetic(table: list[dict], measured: dict, *, n_train: int, n_test: int, workers: int) -> None:
    """Every row: extrapolation = seconds per image x images / workers; disk = bytes x images."""
    assert [r["stage"] for r in table] == [s.key for s in STAGES]
    for row, stage in zip(table, STAGES):
        images = {"train": n_train, "test": n_test, "both": n_train + n_test}[stage.split]
        assert row["images"] == images, stage.key
        m = measured[stage.key]
        if stage.key in TRAINING_PASSES:
            assert row["seconds_per_image"] == pytest.approx(
                m["seconds_per_image_epoch"] * math.prod(TRAINING_PASSES[stage.key])
            )
        else:
            assert row["seconds_per_image"] == m["seconds_per_image"]
        s = row["seconds_per_image"]
        assert row["hours_1_core"] == pytest.approx(s * images / 3600)
        if stage.sharded:
            assert row["hours_16_cores"] == pytest.approx(s * images / NODE_CORES / 3600)
            assert row["hours_array"] == pytest.approx(s * images / workers / 3600)
        else:
            assert row["hours_16_cores"] is None and row["hours_array"] is None
        if m.get("bytes_per_image") is None:
            assert row["gb_total"] is None
        else:
            assert row["gb_total"] == pytest.approx(m["bytes_per_image"] * images / 1e9)


def test_cost_table_is_per_image_cost_times_images_over_workers():
    measured = _fake_measured()
    table = cost_table(measured, tasks=10, cores_per_task=4)
    _check_arithmetic(table, measured, n_train=KAGGLE_TRAIN_IMAGES, n_test=KAGGLE_TEST_IMAGES, workers=40)
    by_stage = {r["stage"]: r for r in table}
    assert by_stage["segment"]["hours_1_core"] == pytest.approx(1.0 * (21_806 + 559) / 3600)
    assert by_stage["merge"]["images"] == 559
    small = cost_table(measured, n_train=100, n_test=10, tasks=3)
    _check_arithmetic(small, measured, n_train=100, n_test=10, workers=3)


def test_predict_plan_from_measured_costs_and_gpu_figures():
    measured = {
        "segment": {"seconds_per_image": 0.5},
        "predict-cnn": {"seconds_per_image": 1.5},
        "predict-maskrcnn": {"non_forward_seconds_per_image": 3.0},
    }
    plan = predict_plan(measured, gpu_figures(None))
    assert plan["budget_seconds_per_image"] == pytest.approx(3600 / 559)
    assert plan["cell_classifier_hours_1_core"] == pytest.approx(2.0 * 559 / 3600)
    assert plan["cell_classifier_target_met"] is True
    assert plan["maskrcnn_forward_budget_seconds_per_image"] == pytest.approx(3600 / 559 - 3.0)
    assert plan["maskrcnn_gpu_hours"] is None and plan["maskrcnn_target_met"] is None  # unknown, not guessed
    measured["predict-cnn"]["seconds_per_image"] = 7.0
    assert predict_plan(measured, gpu_figures(None))["cell_classifier_target_met"] is False


def test_gpu_figures_come_from_a_bench_gpu_json_only(tmp_path):
    assert gpu_figures(None)["source"].startswith("not measured")
    path = tmp_path / "gpu.json"
    gpu = {
        "device": "NVIDIA H100",
        "sections": {
            "train": {
                "image_size": 1024,
                "rows": [
                    {"engine": "torchvision", "backbone": "resnet101_fpn", "train_images_per_s": 9.0},
                    {"engine": "torchvision", "backbone": "densenet121", "train_images_per_s": 12.5},
                ],
            },
            "predict": {"total_seconds_per_image": 0.8, "forward_share": 0.4},
        },
    }
    path.write_text(json.dumps(gpu))
    figures = gpu_figures(path)
    assert figures["train_images_per_s"] == 12.5 and figures["predict_seconds_per_image"] == 0.8
    assert figures["device"] == "NVIDIA H100"
    plan = predict_plan(
        {
            "segment": {"seconds_per_image": 0.5},
            "predict-cnn": {"seconds_per_image": 1.0},
            "predict-maskrcnn": {"non_forward_seconds_per_image": 0.5},
        },
        figures,
    )
    assert plan["maskrcnn_gpu_hours"] == pytest.approx(0.8 * 559 / 3600) and plan["maskrcnn_target_met"] is True


def test_bench_cost_smoke_writes_a_consistent_table(tmp_path, capsys):
    out_json, out_md = tmp_path / "cost.json", tmp_path / "COST.md"
    args = ["cost", "--smoke", "--tasks", "8", "--cores-per-task", "2", "--quiet"]
    assert bench_main([*args, "--out-json", str(out_json), "--out-md", str(out_md)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"predict_h_1core=\d+\.\d{3} predict_target_met=(True|False) measure_s=\d+ out=\S+", last)
    r = json.loads(out_json.read_text())
    assert r["arguments"]["size"] == 256 and r["arguments"]["tasks"] == 8
    for stage in STAGES:
        m = r["measured"][stage.key]
        figure = m["seconds_per_image_epoch"] if stage.key in TRAINING_PASSES else m["seconds_per_image"]
        assert figure > 0, stage.key
    for key in ("segment", "descriptors", "crops", "images", "predict-descriptors"):
        assert r["measured"][key]["bytes_per_image"] > 0, key
    _check_arithmetic(r["table"], r["measured"], n_train=KAGGLE_TRAIN_IMAGES, n_test=KAGGLE_TEST_IMAGES, workers=16)
    assert r["gpu"]["source"].startswith("not measured")
    text = out_md.read_text()
    for stage in STAGES:
        assert stage.label in text
    assert "GPU forward not measured here" in text


def test_bench_cost_bad_options(tmp_path, capsys):
    assert bench_main(["cost", "--tasks", "0"]) == 2
    assert "--tasks 0: expected a positive integer" in capsys.readouterr().err
    assert bench_main(["cost", "--gpu-json", str(tmp_path / "none.json")]) == 2
    assert "no such file" in capsys.readouterr().err
