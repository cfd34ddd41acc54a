"""Tests of hpaseg.runtime: schedules, checkpoints, config overrides."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from hpaseg.detection import MODEL_KIND, TrainConfig, train_torchvision
from hpaseg.errors import InputError


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
    assert ckpt["kind"] == MODEL_KIND
    assert any(r.get("loss_labels", 0) > 0 for r in losses)  # the multi-label head trains


def test_resume_refuses_a_checkpoint_of_the_earlier_model(trained_run, tiny_dataset, tmp_path):
    import shutil

    run = tmp_path / "old"
    shutil.copytree(trained_run, run)
    old = torch.load(run / "model_0000001.pth", map_location="cpu", weights_only=False)
    del old["kind"]
    torch.save(old, run / "model_0000001.pth")
    (run / "last_checkpoint").write_text("model_0000001.pth")
    cfg = TrainConfig(
        dataset=str(tiny_dataset["dataset"]),
        data=str(tiny_dataset["train"]),
        out=str(run),
        device="cpu",
        image_size=128,
        max_iter=3,
        batch_size=1,
        workers=0,
    )
    with pytest.raises(InputError, match="earlier per-\\(cell, label\\) softmax Mask R-CNN.*retrain") as info:
        train_torchvision(cfg, resume=True, progress=False)
    assert info.value.params == ("resume",) and "\n" not in str(info.value)
