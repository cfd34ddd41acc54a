"""Tests of the ``hpaseg train`` CLI (torchvision engine): a real tiny run, resume, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from hpaseg.cli import train as train_cli


def test_resume_continues_from_last_checkpoint(trained_run, tiny_dataset, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "last_checkpoint").write_text("model_0000001.pth")
    before = torch.load(run / "model_0000001.pth", map_location="cpu", weights_only=False)
    argv = [
        "--dataset",
        str(tiny_dataset["dataset"]),
        "--data",
        str(tiny_dataset["train"]),
        "--out",
        str(run),
        "--device",
        "cpu",
        "--image-size",
        "128",
        "--max-iter",
        "3",
        "--batch-size",
        "1",
        "--checkpoint-period",
        "1",
        "--eval-period",
        "0",
        "--workers",
        "0",
        "--quiet",
        "--resume",
        "--opts",
        "log_period",
        "1",
    ]
    assert train_cli.main(argv) == 0
    assert "model_0000001.pth at iteration 1" in capsys.readouterr().out
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if "loss" in r][-2:] == [2, 3]  # iterations 2 and 3 run after the resume
    final = torch.load(run / "model_final.pth", map_location="cpu", weights_only=False)
    assert final["iteration"] == 3
    assert before["scheduler"]["last_epoch"] == 1 and final["scheduler"]["last_epoch"] == 3


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
    argv = [
        "--dataset",
        str(tiny_dataset["dataset"]),
        "--data",
        str(tiny_dataset["train"]),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (out / "model_final.pth").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--lr", "-1"], "--lr -1.0: expected a finite number > 0"),
        (["--lr", "0"], "--lr 0.0: expected a finite number > 0"),
        (["--lr", "nan"], "--lr nan: expected a finite number > 0"),
        (["--max-iter", "-5"], "--max-iter -5: expected a positive integer"),
        (["--batch-size", "0"], "--batch-size 0: expected a positive integer"),
        (["--workers", "-1"], "--workers -1: expected an integer >= 0"),
        (["--checkpoint-period", "-1"], "--checkpoint-period -1: expected an integer >= 0"),
        (["--opts", "weight_decay", "-1"], "--opts weight_decay -1.0: expected a finite number >= 0"),
        (["--opts", "momentum", "-0.5"], "--opts momentum -0.5: expected a number in [0, 1)"),
        (["--opts", "warmup_factor", "0"], "--opts warmup_factor 0.0: expected a number in (0, 1]"),
        (["--opts", "warmup_iters", "-1"], "--opts warmup_iters -1: expected an integer >= 0"),
        (["--opts", "log_period", "0"], "--opts log_period 0: expected a positive integer"),
        (["--opts", "clip_grad_norm", "-1"], "--opts clip_grad_norm -1.0: expected a number > 0"),
    ],
)
def test_bad_training_numbers_write_nothing(tiny_dataset, tmp_path, capsys, extra, message):
    """A learning rate <= 0 or not finite, and other impossible numbers, are one line naming the
    option, exit 2, before anything is written (torch's ValueError and a config.yaml, before)."""
    out = tmp_path / "run"
    argv = ["--dataset", str(tiny_dataset["dataset"]), "--data", str(tiny_dataset["train"]), "--out", str(out)]
    assert train_cli.main([*argv, "--device", "cpu", "--workers", "0", "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("hpaseg train: error:") and message in err, err
    assert not out.exists()


def test_empty_dataset(tiny_dataset, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    coco = {"images": [], "annotations": [], "categories": []}
    (empty / "train.json").write_text(json.dumps(coco))
    out = tmp_path / "run"
    assert (
        train_cli.main(
            [
                "--dataset",
                str(empty),
                "--data",
                str(tiny_dataset["train"]),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 2
    )
    assert "train.json has no image with cells" in capsys.readouterr().err
    assert not (out / "model_final.pth").exists()


def test_missing_folder(tmp_path, capsys):
    assert (
        train_cli.main(["--dataset", str(tmp_path / "nope"), "--data", str(tmp_path), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "--dataset" in capsys.readouterr().err
