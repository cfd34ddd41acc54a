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
        (["--teacher", "no/such/run"], "--teacher no/such/run: no such run folder or file"),
        (["--distill-weight", "1.5"], "--distill-weight 1.5: expected a number in [0, 1]"),
        (["--opts", "label_inputs", "pixels"], "label_inputs 'pixels': expected one of features, pixels+features"),
        (
            ["--engine", "detectron2", "--config", "mask_rcnn_R_101_FPN_hpa.yaml", "--lr", "0.01"],
            "--lr is for the torchvision engine; with --engine detectron2 the YAML sets it: --opts SOLVER.BASE_LR",
        ),
        (
            ["--engine", "detectron2", "--config", "mask_rcnn_R_101_FPN_hpa.yaml", "--max-iter", "10"],
            "--opts SOLVER.MAX_ITER VALUE",
        ),
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


def test_a_teacher_run_without_probabilities_or_of_another_dataset_is_refused(tiny_dataset, tmp_path, capsys):
    from hpaseg import io

    argv = ["--dataset", str(tiny_dataset["dataset"]), "--data", str(tiny_dataset["train"]), "--device", "cpu"]
    run = tmp_path / "classifier_run"
    run.mkdir()
    assert train_cli.main([*argv, "--out", str(tmp_path / "a"), "--quiet", "--teacher", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no cell_probabilities.csv in it" in err, err
    io.write_cell_probabilities_csv(run / io.CELL_PROBABILITIES_CSV, {"another_image": {1: [0.5] * 19}})
    out = tmp_path / "b"
    assert train_cli.main([*argv, "--out", str(out), "--quiet", "--workers", "0", "--teacher", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cover none of the dataset's" in err, err
    assert not (out / "model_final.pth").exists()


class _Built(Exception):
    """Raised by a spy once the model is built: the test needs the loaded weights, not training."""


def test_train_pretrained_file_reaches_the_model(tiny_dataset, tmp_path, monkeypatch):
    """``hpaseg train --pretrained PATH`` builds Mask R-CNN on a local RGB torchvision
    checkpoint: every backbone weight arrives exactly, the stem adapted to RGBY."""
    import torchvision

    from hpaseg.detection import models, trainer

    from ..weights import assert_rgb_weights_round_trip

    torch.manual_seed(0)
    rgb = torchvision.models.densenet121(weights=None).state_dict()
    path = tmp_path / "densenet121_rgb.pth"
    torch.save(rgb, path)
    built = {}

    def spy(*args, **kwargs):
        built["pretrained"] = kwargs.get("pretrained")
        built["model"] = models.build_maskrcnn(*args, **kwargs)
        raise _Built

    monkeypatch.setattr(trainer, "build_maskrcnn", spy)
    argv = [
        "--dataset",
        str(tiny_dataset["dataset"]),
        "--data",
        str(tiny_dataset["train"]),
        "--out",
        str(tmp_path / "r"),
    ]
    with pytest.raises(_Built):
        train_cli.main([*argv, "--pretrained", str(path), "--device", "cpu", "--image-size", "64", "--workers", "0"])
    assert built["pretrained"] == str(path)
    body = built["model"].backbone.body.state_dict()  # DenseNet's features, as the FPN reads them
    features = {k.removeprefix("features."): v for k, v in rgb.items() if k.startswith("features.")}
    # The FPN takes dense blocks 1-4 and norm5; FrozenBatchNorm keeps no num_batches_tracked.
    kept = {k: v for k, v in features.items() if k in body or not k.endswith("num_batches_tracked")}
    assert_rgb_weights_round_trip(kept, body, "conv0.weight", ())


def test_train_cache_only_shards(tiny_dataset, tmp_path, capsys):
    """``--cache-only --shard I/N``: each task caches its images at --image-size; together, every
    image training reads; no run folder is made."""
    import shutil

    from hpaseg.labels import cache_folder, cache_paths, load_coco_split

    dataset = tmp_path / "dataset"
    shutil.copytree(tiny_dataset["dataset"], dataset, ignore=shutil.ignore_patterns("cache_*"))
    argv = ["--dataset", str(dataset), "--data", str(tiny_dataset["train"]), "--image-size", "64", "--quiet"]
    for task in range(2):
        assert train_cli.main([*argv, "--cache-only", "--shard", f"{task}/2"]) == 0
    out = capsys.readouterr().out
    assert out.count("cached images of") == 2
    records = [r for r in load_coco_split(dataset / "train.json") if r.cells] + load_coco_split(dataset / "val.json")
    for rec in records:
        assert all(p.is_file() for p in cache_paths(cache_folder(dataset, 64), rec.image_id)), rec.image_id
    assert train_cli.main([*argv, "--shard", "0/2", "--out", str(tmp_path / "run")]) == 2
    assert "--shard belongs to --cache-only" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
