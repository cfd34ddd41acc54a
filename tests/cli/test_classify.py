"""Tests of the ``hpaseg classify`` CLI and of the cell-classifier route of ``hpaseg predict``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from hpaseg import io
from hpaseg.cli import classify as classify_cli
from hpaseg.cli import predict as predict_cli
from hpaseg.evaluation import competition_map
from hpaseg.submission import read_submission, validate_submission

IMAGE_PX, CROP_PX = 64, 32


def _image_argv(tiny, out, *extra):
    return [
        "--level",
        "image",
        "--backbone",
        "efficientnet_b0",
        "--dataset",
        str(tiny["dataset"]),
        "--data",
        str(tiny["train"]),
        "--out",
        str(out),
        "--image-size",
        str(IMAGE_PX),
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--quiet",
        *extra,
    ]


def _cell_argv(tiny, out, *extra):
    return [
        "--level",
        "cell",
        "--backbone",
        "efficientnet_b0",
        "--dataset",
        str(tiny["dataset"]),
        "--data",
        str(tiny["train"]),
        "--masks",
        str(tiny["masks"]),
        "--out",
        str(out),
        "--crop-size",
        str(CROP_PX),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--quiet",
        *extra,
    ]


def test_classify_resume_continues_exactly_and_warns_about_absent_classes(tiny_dataset, tmp_path, capsys):
    """2 epochs in one go == 1 epoch, then --resume to 2 (same weights, same iteration count)."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    capsys.readouterr()
    assert classify_cli.main(_image_argv(tiny_dataset, straight, "--augment", "cutmix") + ["--epochs", "2"]) == 0
    warning = capsys.readouterr().err
    assert "no positive sample in the training split" in warning and "18 Negative" in warning, warning
    assert "11 Mitotic spindle" in warning, warning
    assert classify_cli.main(_image_argv(tiny_dataset, resumed, "--augment", "cutmix")) == 0
    capsys.readouterr()
    assert (
        classify_cli.main(_image_argv(tiny_dataset, resumed, "--augment", "cutmix", "--resume") + ["--epochs", "2"])
        == 0
    )
    assert "resuming from" in capsys.readouterr().out
    a = torch.load(straight / "model_final.pth", map_location="cpu", weights_only=False)
    b = torch.load(resumed / "model_final.pth", map_location="cpu", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2 and a["iteration"] == b["iteration"] == 2
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], msg=key)
    # Resuming with other settings is refused.
    assert (
        classify_cli.main(_image_argv(tiny_dataset, resumed, "--augment", "cutmix", "--resume", "--loss", "focal")) == 2
    )
    assert "was trained with loss 'bce' (now 'focal')" in capsys.readouterr().err


def _dataset_copy(tiny, tmp_path, *, empty_val=False):
    out = tmp_path / "dataset"
    out.mkdir()
    for name in ("train.json", "val.json"):
        shutil.copy(tiny["dataset"] / name, out / name)
    if empty_val:
        coco = json.loads((out / "val.json").read_text())
        coco["images"], coco["annotations"] = [], []
        (out / "val.json").write_text(json.dumps(coco))
    return out


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--backbone", "vgg16"],
            "--backbone 'vgg16': unknown backbone; expected descriptors or one of nfnet_l0, nfnet_f1, resnet50, inception_v3, efficientnet_b0",
        ),
        (["--loss", "hinge"], "--loss 'hinge': expected one of bce, focal"),
        (["--augment", "mixup"], "--augment 'mixup': expected one of standard, cutmix"),
        (["--level", "tile"], "--level 'tile': expected one of image, cell"),
        (["--channels", "rgb"], "--channels 'rgb': expected one of green, rgby"),
        (["--level", "cell"], "--level cell needs --masks"),
        (["--backbone", "inception_v3"], "--image-size 64: backbone 'inception_v3' needs inputs of at least 75 px"),
        (["--opts", "colour", "red"], "--opts colour: unknown key"),
    ],
)
def test_classify_bad_options(tiny_dataset, tmp_path, capsys, extra, message):
    run = tmp_path / "run"
    assert classify_cli.main(_image_argv(tiny_dataset, run, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert err.startswith("hpaseg classify: error:")
    assert not run.exists()


def test_classify_bad_data(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    # Empty validation split.
    dataset = _dataset_copy(tiny_dataset, tmp_path, empty_val=True)
    argv = _image_argv(tiny_dataset, run)
    argv[argv.index("--dataset") + 1] = str(dataset)
    assert classify_cli.main(argv) == 2
    assert "val.json has no image with labelled cells (0 images); the val split is empty" in capsys.readouterr().err
    # A missing channel file (fresh dataset folder: nothing cached yet).
    shutil.rmtree(dataset)
    dataset = _dataset_copy(tiny_dataset, tmp_path)
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset["train"], data)
    image_id = json.loads((dataset / "train.json").read_text())["images"][0]["hpa_id"]
    (data / f"{image_id}_yellow.png").unlink()
    argv = _image_argv(tiny_dataset, run)
    argv[argv.index("--dataset") + 1], argv[argv.index("--data") + 1] = str(dataset), str(data)
    assert classify_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{image_id}_yellow" in err and len(err.strip().splitlines()) == 1
    # A mask of another size than its image (cell level).
    masks = tmp_path / "masks"
    shutil.copytree(tiny_dataset["masks"], masks)
    mask = io.read_mask(masks / f"{image_id}_cellmask.png")
    io.write_mask_png(masks / f"{image_id}_cellmask.png", mask[:, :100])
    argv = _cell_argv(tiny_dataset, run)
    argv[argv.index("--dataset") + 1], argv[argv.index("--masks") + 1] = str(dataset), str(masks)
    assert classify_cli.main(argv) == 2
    assert "masks must be at the image's original resolution" in capsys.readouterr().err
    assert not run.exists()


def test_classify_image_head_and_refit_options_reach_the_config(tiny_dataset):
    argv = ["--level", "cell", "--dataset", "d", "--data", "x", "--masks", "m", "--out", "o", "--device", "cpu"]
    default = classify_cli.config_from_args(classify_cli.build_parser().parse_args(argv))
    assert default.backbone == "descriptors" and default.image_epochs == 200 and default.refit
    given = classify_cli.config_from_args(
        classify_cli.build_parser().parse_args([*argv, "--image-epochs", "0", "--no-refit"])
    )
    assert given.image_epochs == 0 and not given.refit


def _truth(tiny):
    return read_submission(tiny["data"] / "truth.csv")


def test_predict_classifier_route(cell_run, image_run, tiny_dataset, tmp_path, capsys):
    test = tiny_dataset["test"]
    base = [
        "--classifier",
        str(cell_run),
        "--masks",
        str(tiny_dataset["masks"]),
        "--data",
        str(test),
        "--device",
        "cpu",
        "--quiet",
    ]
    out, saved = tmp_path / "cells.csv", tmp_path / "saved"
    assert (
        predict_cli.main(["--backbone", "efficientnet_b0", *base, "--out", str(out), "--save-masks", str(saved)]) == 0
    )
    report = validate_submission(out, test)
    assert report.n_images == 2
    rows = {r.image_id: r for r in read_submission(out)}
    for image_id, row in rows.items():
        true_mask = io.read_mask(tiny_dataset["masks"] / f"{image_id}_cellmask.png")
        assert (row.height, row.width) == true_mask.shape
        np.testing.assert_array_equal(io.read_mask(saved / f"{image_id}_cellmask.png"), true_mask)
        assert len({p.mask for p in row.predictions}) == len(np.unique(true_mask)) - 1  # every cell labelled
    assert (saved / "cells.csv").is_file()
    score = competition_map(_truth(tiny_dataset), list(rows.values())).mAP
    assert 0.0 <= score <= 1.0
    # With an image-level classifier the scores change; a weighted mean with weight 1 is the cells' own.
    fused, mean1, alone = tmp_path / "fused.csv", tmp_path / "mean1.csv", tmp_path / "alone.csv"
    assert predict_cli.main([*base, "--image-classifier", str(image_run), "--out", str(fused)]) == 0
    image = ["--image-classifier", str(image_run)]
    assert predict_cli.main([*base, *image, "--fusion", "mean", "--fusion-weight", "1", "--out", str(mean1)]) == 0
    assert predict_cli.main([*base, "--fusion", "cell", "--out", str(alone)]) == 0
    validate_submission(fused, test)
    assert 0.0 <= competition_map(_truth(tiny_dataset), read_submission(fused)).mAP <= 1.0
    assert mean1.read_text() == alone.read_text()
    assert fused.read_text() != out.read_text() != alone.read_text()


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--backbone", "resnet50"],
            "trained with backbone 'efficientnet_b0', not --backbone 'resnet50'; pass --backbone efficientnet_b0",
        ),
        (["--backbone", "alexnet"], "--backbone 'alexnet': unknown backbone"),
        (
            ["--fusion", "product", "--fusion-weight", "0.3"],
            "--fusion-weight belongs to --fusion mean, not --fusion product",
        ),
        (["--fusion", "sum"], "--fusion 'sum': expected one of product, mean, cell, image"),
        (["--weights", "x.pth"], "exclude each other"),
        (["--image-classifier", "CELL"], "trained at the cell level, not the image level"),
        (["--image-model-weight", "1.5"], "--image-model-weight 1.5: expected a number in [0, 1]"),
    ],
)
def test_predict_classifier_route_bad_options(cell_run, tiny_dataset, tmp_path, capsys, extra, message):
    out = tmp_path / "sub.csv"
    extra = [str(cell_run) if e == "CELL" else e for e in extra]
    argv = [
        "--classifier",
        str(cell_run),
        "--masks",
        str(tiny_dataset["masks"]),
        "--data",
        str(tiny_dataset["test"]),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]
    assert predict_cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_predict_classifier_route_bad_inputs(cell_run, image_run, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    common = ["--data", str(tiny_dataset["test"]), "--out", str(out), "--device", "cpu", "--quiet"]
    assert predict_cli.main(["--classifier", str(cell_run), *common]) == 2
    assert "--classifier needs --masks" in capsys.readouterr().err
    assert predict_cli.main(["--classifier", str(image_run), "--masks", str(tiny_dataset["masks"]), *common]) == 2
    assert "trained at the image level, not the cell level" in capsys.readouterr().err
    masks = tmp_path / "masks"
    masks.mkdir()
    assert predict_cli.main(["--classifier", str(cell_run), "--masks", str(masks), *common]) == 2
    assert "_cellmask.png for image" in capsys.readouterr().err
    image_id = io.list_image_ids(tiny_dataset["test"])[0]
    for other in io.list_image_ids(tiny_dataset["test"]):
        shutil.copy(tiny_dataset["masks"] / f"{other}_cellmask.png", masks)
    io.write_mask_png(masks / f"{image_id}_cellmask.png", io.read_mask(masks / f"{image_id}_cellmask.png")[:64])
    assert predict_cli.main(["--classifier", str(cell_run), "--masks", str(masks), *common]) == 2
    assert "masks must be at the image's original resolution" in capsys.readouterr().err
    assert predict_cli.main(common) == 2
    assert "required: --weights (Mask R-CNN route), or --classifier RUN --masks MASKS" in capsys.readouterr().err
    assert not out.exists()
