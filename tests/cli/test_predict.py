"""Tests of the ``hpaseg predict`` CLI (Mask R-CNN route) on a real tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpaseg import io
from hpaseg.cli import predict as predict_cli
from hpaseg.submission import decode_mask, read_submission, validate_submission


def test_predict_cli_writes_valid_submission_and_masks(trained_run, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    masks = tmp_path / "pred_masks"
    argv = [
        "--backbone",
        "densenet121",
        "--weights",
        str(trained_run / "model_final.pth"),
        "--data",
        str(tiny_dataset["test"]),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--save-masks",
        str(masks),
        "--quiet",
    ]
    assert predict_cli.main(argv) == 0
    assert "-> " in capsys.readouterr().out
    report = validate_submission(out, tiny_dataset["test"])
    assert report.n_images == 2
    rows = {r.image_id: r for r in read_submission(out)}
    for image_id, row in rows.items():
        assert (row.height, row.width) == io.read_image_size(tiny_dataset["test"], image_id)  # original resolution
        label_image = io.read_mask(masks / f"{image_id}_cellmask.png")
        for p in row.predictions[:5]:
            m = decode_mask(p.mask, row.height, row.width)
            cell = np.unique(label_image[m])
            assert len(cell) == 1 and cell[0] > 0  # every mask is exactly one saved cell
    assert (masks / "cells.csv").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--backbone", "resnet101_fpn"], "trained with backbone 'densenet121', not --backbone 'resnet101_fpn'"),
        (["--backbone", "alexnet"], "--backbone 'alexnet': unknown backbone"),
        (["--engine", "caffe"], "--engine 'caffe'"),
    ],
)
def test_predict_bad_model_options(trained_run, tiny_dataset, tmp_path, capsys, extra, message):
    out = tmp_path / "sub.csv"
    assert (
        predict_cli.main(
            [
                "--weights",
                str(trained_run / "model_final.pth"),
                "--data",
                str(tiny_dataset["test"]),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--quiet",
                *extra,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_predict_missing_weights_and_wrong_weights(trained_run, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    assert (
        predict_cli.main(
            ["--weights", str(tmp_path / "none.pth"), "--data", str(tiny_dataset["test"]), "--out", str(out), "--quiet"]
        )
        == 2
    )
    assert "none.pth: no such file" in capsys.readouterr().err
    other = torch.load(trained_run / "model_final.pth", map_location="cpu", weights_only=False)
    other["model"] = {k: v for k, v in list(other["model"].items())[:-3]}
    torch.save(other, tmp_path / "broken.pth")
    assert (
        predict_cli.main(
            [
                "--weights",
                str(tmp_path / "broken.pth"),
                "--data",
                str(tiny_dataset["test"]),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 2
    )
    assert "weights do not fit backbone 'densenet121'" in capsys.readouterr().err
    assert not out.exists()


def test_predict_channels_of_different_sizes(trained_run, tiny_dataset, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset["test"], data)
    image_id = io.list_image_ids(data)[0]
    from PIL import Image

    Image.fromarray(np.zeros((100, 128), np.uint8)).save(data / f"{image_id}_yellow.png")
    out = tmp_path / "sub.csv"
    assert (
        predict_cli.main(
            [
                "--weights",
                str(trained_run / "model_final.pth"),
                "--data",
                str(data),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 2
    )
    assert "all four channels of an image must have the same size" in capsys.readouterr().err
    assert not out.exists()
