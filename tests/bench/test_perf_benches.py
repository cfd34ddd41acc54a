"""Smoke tests of the performance benchmarks (issue 11) at toy sizes: output structure, JSON
and the steps each one times; no timed assertions."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from hpaseg.bench import main as bench_main
from hpaseg.bench.common import StepTimer, peak_rss_mb, pinned_cores
from hpaseg.bench.predict import FORWARD_STEPS, truth_detections
from hpaseg.bench.train import EQUAL_SETTINGS, _runs
from hpaseg.detection import PostprocessConfig, build_maskrcnn, mask_iou_matrix, select_cells
from hpaseg.detection.detectron2 import load_config
from hpaseg.detection.models import RPN_POST_NMS_TOP_N, RPN_PRE_NMS_TOP_N

CHAIN = ("read", "resize", *FORWARD_STEPS, "paste_working", "cells", "paste_full", "scores", "encode")


def test_bench_predict_times_every_step(tmp_path, capsys):
    out = tmp_path / "predict.json"
    args = ["predict", "--size", "256", "--image-size", "128", "--detections", "12", "--images", "1"]
    assert bench_main([*args, "--out-json", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(
        r"forward_share=\d\.\d{3} other_share=\d\.\d{3} other_le_20pct=(True|False) peak_rss_mb=\d+", last
    )
    r = json.loads(out.read_text())
    assert tuple(r["seconds_per_image"]) == CHAIN
    assert all(v >= 0 for v in r["seconds_per_image"].values())
    assert abs(sum(r["shares"].values()) - 1) < 1e-9
    assert r["counts"][0]["detections"] == 12 and 0 < r["counts"][0]["cells"] <= 12
    assert r["counts"][0]["predictions"] >= r["counts"][0]["cells"]


def test_bench_predict_bad_option(capsys):
    assert bench_main(["predict", "--backbone", "vgg"]) == 2
    assert bench_main(["predict", "--images", "0", "--size", "256", "--image-size", "128"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--images" in err[1]


def test_truth_detections_cover_every_cell():
    cells = np.zeros((64, 64), np.int32)
    cells[4:24, 4:24], cells[30:60, 30:60] = 1, 2  # a shift of <= 3 px keeps IoU > 0.5
    d = truth_detections(cells, 5)
    assert d["masks"].shape == (5, 1, 64, 64) and d["label_probs"].shape == (5, 19)
    kept = select_cells(d["scores"], d["masks"], d["label_probs"], PostprocessConfig())
    assert len(kept) == 2  # duplicates suppressed by the mask NMS


def test_mask_iou_matrix_matches_pycocotools_on_non_square_masks():
    from pycocotools import mask as coco_mask

    rng = np.random.default_rng(0)
    masks = torch.from_numpy(rng.random((6, 13, 21)) > 0.6)
    rles = coco_mask.encode(np.asfortranarray(masks.permute(1, 2, 0).numpy().astype(np.uint8)))
    expected = np.asarray(coco_mask.iou(rles, rles, [0] * 6))
    np.testing.assert_allclose(mask_iou_matrix(masks), expected)
    np.testing.assert_allclose(mask_iou_matrix(masks[:, ::2]), mask_iou_matrix(masks[:, ::2].contiguous()))


def test_rpn_proposals_match_detectron2_config():
    pytest.importorskip("detectron2")
    cfg = load_config("mask_rcnn_R_101_FPN_hpa.yaml", ["MODEL.DEVICE", "cpu"])
    assert RPN_PRE_NMS_TOP_N == (cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN, cfg.MODEL.RPN.PRE_NMS_TOPK_TEST)
    assert RPN_POST_NMS_TOP_N == (cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN, cfg.MODEL.RPN.POST_NMS_TOPK_TEST)
    assert cfg.MODEL.RESNETS.NORM == "FrozenBN" and cfg.MODEL.BACKBONE.FREEZE_AT == 2


def test_frozen_backbone_freezes_stem_and_batchnorm():
    from torchvision.ops.misc import FrozenBatchNorm2d

    model = build_maskrcnn("resnet101_fpn", image_size=128, frozen_backbone=True)
    body = model.backbone.body
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in body.modules())
    assert not body.conv1.weight.requires_grad and not any(p.requires_grad for p in body.layer1.parameters())
    assert all(p.requires_grad for p in body.layer2.parameters())
    assert model.rpn._post_nms_top_n == {"training": RPN_POST_NMS_TOP_N[0], "testing": RPN_POST_NMS_TOP_N[1]}
    trainable = build_maskrcnn("resnet101_fpn", image_size=128)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in trainable.backbone.body.modules())


def test_bench_train_states_settings(tmp_path, capsys):
    out = tmp_path / "train.json"
    args = ["train", "--image-size", "128", "--batch-size", "1", "--iters", "1", "--engines", "torchvision"]
    assert bench_main([*args, "--backbones", "resnet101_fpn", "--out-json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "settings (read from the models): image 128 px, batch 1, backbone mode frozen" in text
    row = json.loads(out.read_text())["rows"][0]
    assert set(EQUAL_SETTINGS) <= set(row["settings"])
    assert row["settings"]["trainable_bn_layers"] == 0 and row["settings"]["frozen_bn_layers"] > 0
    assert row["settings"]["rpn_post_nms_topk_train"] == RPN_POST_NMS_TOP_N[0]


def test_bench_train_pairs_engines():
    runs = _runs(["densenet121", "resnet101_fpn", "resnext101_fpn"], ["torchvision", "detectron2"], 1)
    assert runs == [
        ("torchvision", "densenet121"),
        ("torchvision", "resnet101_fpn"),
        ("detectron2", "resnet101_fpn"),
        ("torchvision", "resnext101_fpn"),
        ("detectron2", "resnext101_fpn"),
    ]


def test_bench_segment_reports_cores_and_memory(tmp_path, capsys):
    out = tmp_path / "segment.json"
    assert bench_main(["segment", "--size", "256", "--repeats", "1", "--out-json", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"images_per_s=\d+\.\d\d per_core=\d+\.\d\d cores=1 peak_rss_mb=\d+", last), last
    r = json.loads(out.read_text())
    assert r["cores"] == 1 and r["peak_rss_mb"] > 0 and r["cells"]["found"] > 0


def test_pinned_cores_restores_threads():
    before = torch.get_num_threads()
    with pinned_cores(1) as used:
        assert len(used) == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_bench_loader_rows(tmp_path, capsys):
    out = tmp_path / "loader.json"
    args = ["loader", "--size", "128", "--image-size", "64", "--images", "2", "--workers", "0", "1"]
    assert bench_main([*args, "--samples", "2", "--batch-size", "1", "--no-model", "--out-json", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(
        r"loader_images_per_s_per_worker=\d+\.\d\d model_train_images_per_s=nan workers_needed=None", last
    )
    r = json.loads(out.read_text())
    assert [row["workers"] for row in r["rows"]] == [0, 1]
    assert all(row["images_per_s"] > 0 for row in r["rows"]) and r["cache_build_images_per_s"] > 0


def test_bench_gpu_refuses_without_cuda(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the refusal is for machines without one")
    assert bench_main(["gpu", "--out-json", str(tmp_path / "g.json")]) == 2
    assert bench_main(["gpu", "--out-json", str(tmp_path / "g.json"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no CUDA device" in err[0] and "--smoke" in err[1]
    assert not (tmp_path / "g.json").exists()


@pytest.mark.slow
def test_bench_gpu_smoke_on_cpu(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert bench_main(["gpu", "--out-json", str(out), "--device", "cpu", "--smoke"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("sections=4/4 ") and f"out={out}" in last
    r = json.loads(out.read_text())
    assert set(r["sections"]) == {"train", "predict", "loader", "learn"} and not r["skipped"]
    assert r["sections"]["train"]["rows"][0]["peak_gpu_mb"] is None
    learn = r["sections"]["learn"]
    assert len(learn["losses"]) == learn["iterations"] and all(np.isfinite(learn["losses"]))


def test_step_timer_and_peak_memory():
    timer = StepTimer()
    with timer("a"):
        pass
    with timer("a"):
        pass
    assert list(timer.shares()) == ["a"] and timer.total >= 0 and peak_rss_mb() > 0
