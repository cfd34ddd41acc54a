"""Tests of hpaseg.runtime: schedules, checkpoints, config overrides."""

from __future__ import annotations

import json

import torch
import yaml


def test_run_folder_contents(trained_run):
    for name in ("config.yaml", "model_0000001.pth", "model_final.pth", "metrics.jsonl", "last_checkpoint"):
        assert (trained_run / name).is_file(), name
    assert any((trained_run / "tb").iterdir())  # TensorBoard events
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in records if "loss" in r]
    assert [r["iteration"] for r in losses] == [1, 2]
    assert all(r["loss"] > 0 and r["images_per_s"] > 0 for r in losses)
    assert any("val_mAP" in r for r in records)  # final validation on the val split
    cfg = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert cfg["backbone"] == "densenet121" and cfg["image_size"] == 128 and cfg["log_period"] == 1
    ckpt = torch.load(trained_run / "model_final.pth", map_location="cpu", weights_only=False)
    assert ckpt["backbone"] == "densenet121" and ckpt["iteration"] == 2 and ckpt["engine"] == "torchvision"
