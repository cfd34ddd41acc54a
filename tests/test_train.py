"""Tests of hpaseg.train (torchvision engine) and hpaseg.training: a real tiny run, resume, bad input."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from hpaseg import train
from hpaseg.errors import InputError
from hpaseg.train import TrainConfig
from hpaseg.training import Checkpointer, apply_opts, lr_factor


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


def test_resume_continues_from_last_checkpoint(trained_run, tiny_dataset, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "last_checkpoint").write_text("model_0000001.pth")
    before = torch.load(run / "model_0000001.pth", map_location="cpu", weights_only=False)
    argv = ["--dataset", str(tiny_dataset["dataset"]), "--data", str(tiny_dataset["train"]), "--out", str(run), "--device", "cpu", "--image-size", "128",
            "--max-iter", "3", "--batch-size", "1", "--checkpoint-period", "1", "--eval-period", "0", "--workers", "0", "--quiet", "--resume", "--opts", "log_period", "1"]
    assert train.main(argv) == 0
    assert "model_0000001.pth at iteration 1" in capsys.readouterr().out
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if "loss" in r][-2:] == [2, 3]  # iterations 2 and 3 run after the resume
    final = torch.load(run / "model_final.pth", map_location="cpu", weights_only=False)
    assert final["iteration"] == 3
    assert before["scheduler"]["last_epoch"] == 1 and final["scheduler"]["last_epoch"] == 3


def test_lr_schedule_and_checkpointer(tmp_path):
    assert lr_factor(0, max_iter=10, warmup_iters=0, warmup_factor=0.1, schedule="cosine") == 1.0
    with pytest.raises(InputError):
        lr_factor(0, max_iter=10, warmup_iters=0, warmup_factor=0.1, schedule="poly")
    ck = Checkpointer(tmp_path)
    assert ck.last() is None
    ck.save("model_0000005", {"a": 1})
    assert ck.last() == tmp_path / "model_0000005.pth" and ck.load(ck.last()) == {"a": 1}
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read checkpoint"):
        ck.load(tmp_path / "bad.pth")


def test_apply_opts():
    cfg = apply_opts(TrainConfig(), ["warmup_iters", "7", "schedule", "step", "amp", "false", "steps", "0.5,0.8"])
    assert (cfg.warmup_iters, cfg.schedule, cfg.amp, cfg.steps) == (7, "step", False, (0.5, 0.8))
    with pytest.raises(InputError, match="unknown key"):
        apply_opts(TrainConfig(), ["no_such_key", "1"])
    with pytest.raises(InputError, match="expected a int"):
        apply_opts(TrainConfig(), ["max_iter", "many"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--backbone", "vgg16"], "--backbone 'vgg16': unknown backbone"),
        (["--engine", "mxnet"], "--engine 'mxnet'"),
        (["--opts", "bogus_key", "1"], "--opts bogus_key: unknown key"),
        (["--config", "x.yaml"], "--config is for --engine detectron2"),
        (["--max-iter", "0"], "--max-iter 0"),
    ],
)
def test_bad_options(tiny_dataset, tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    argv = ["--dataset", str(tiny_dataset["dataset"]), "--data", str(tiny_dataset["train"]), "--out", str(out), "--device", "cpu", "--quiet", *extra]
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (out / "model_final.pth").exists()


def test_empty_dataset(tiny_dataset, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    coco = {"images": [], "annotations": [], "categories": []}
    (empty / "train.json").write_text(json.dumps(coco))
    out = tmp_path / "run"
    assert train.main(["--dataset", str(empty), "--data", str(tiny_dataset["train"]), "--out", str(out), "--device", "cpu", "--quiet"]) == 2
    assert "train.json has no image with cells" in capsys.readouterr().err
    assert not (out / "model_final.pth").exists()


def test_missing_folder(tmp_path, capsys):
    assert train.main(["--dataset", str(tmp_path / "nope"), "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "--dataset" in capsys.readouterr().err
