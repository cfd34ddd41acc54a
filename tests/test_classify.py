"""Tests of hpaseg.classify, hpaseg.models.classifier and the cell-classifier route of
hpaseg.predict, with real (tiny) models on the synthetic ``tiny_dataset``."""
from __future__ import annotations

import json
import logging
import math
import shutil

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision

from hpaseg import classify, io, predict
from hpaseg.classes import NUM_CLASSES
from hpaseg.errors import InputError
from hpaseg.metrics import competition_map
from hpaseg.models.channels import rgb_to_rgby_weight
from hpaseg.models.classifier import BACKBONES, build_classifier, normalization
from hpaseg.submission import read_submission, validate_submission

IMAGE_PX, CROP_PX = 64, 32


def _image_argv(tiny, out, *extra):
    return ["--level", "image", "--backbone", "efficientnet_b0", "--dataset", str(tiny["dataset"]), "--data", str(tiny["train"]), "--out", str(out),
            "--image-size", str(IMAGE_PX), "--epochs", "1", "--batch-size", "2", "--device", "cpu", "--workers", "0", "--quiet", *extra]


def _cell_argv(tiny, out, *extra):
    return ["--level", "cell", "--backbone", "efficientnet_b0", "--dataset", str(tiny["dataset"]), "--data", str(tiny["train"]), "--masks", str(tiny["masks"]),
            "--out", str(out), "--crop-size", str(CROP_PX), "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--workers", "0", "--quiet", *extra]


@pytest.fixture(scope="module")
def image_run(tiny_dataset, tmp_path_factory):
    """Image level, green channel, BCE, standard augmentation, 1 epoch."""
    run = tmp_path_factory.mktemp("cls") / "image"
    assert classify.main(_image_argv(tiny_dataset, run)) == 0
    return run


@pytest.fixture(scope="module")
def cell_run(tiny_dataset, tmp_path_factory):
    """Cell level, RGBY crops, focal loss, CutMix, 1 epoch."""
    run = tmp_path_factory.mktemp("cls") / "cell"
    assert classify.main(_cell_argv(tiny_dataset, run, "--loss", "focal", "--augment", "cutmix")) == 0
    return run


# --------------------------------------------------------------------------- pieces
def test_focal_loss_is_torchvisions_on_a_hand_case():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 0.25]])
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = 0.25 * targets + 0.75 * (1 - targets)
    by_hand = (alpha_t * (1 - p_t) ** 2 * ce).mean()
    # First element alone: x = 0, y = 1 -> 0.25 * 0.5^2 * ln 2.
    assert float(classify.make_loss("focal")(logits[:1, :1], targets[:1, :1])) == pytest.approx(0.25 * 0.25 * math.log(2))
    torch.testing.assert_close(classify.make_loss("focal")(logits, targets), by_hand)
    torch.testing.assert_close(classify.make_loss("focal")(logits, targets), torchvision.ops.sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2, reduction="mean"))
    torch.testing.assert_close(classify.make_loss("bce")(logits, targets), ce.mean())
    with pytest.raises(InputError, match="--loss 'l2': expected one of bce, focal"):
        classify.make_loss("l2")


def test_stem_adapted_from_a_random_rgb_checkpoint_file(tmp_path):
    """A randomly initialised timm checkpoint on disk stands in for ImageNet weights."""
    rgb = timm.create_model("efficientnet_b0", pretrained=False)  # with its 1000-class classifier
    path = tmp_path / "efficientnet_b0_rgb.pth"
    torch.save({"state_dict": rgb.state_dict()}, path)
    model = build_classifier("efficientnet_b0", in_chans=4, pretrained=path)
    stem = model.backbone.conv_stem.weight
    assert stem.shape[1] == 4
    torch.testing.assert_close(stem, rgb_to_rgby_weight(rgb.conv_stem.weight))
    torch.testing.assert_close(stem[:, 3], (rgb.conv_stem.weight[:, 0] + rgb.conv_stem.weight[:, 1]) / 2)  # yellow = mean(red, green)
    torch.testing.assert_close(model.backbone.blocks[3][1].conv_pw.weight, rgb.blocks[3][1].conv_pw.weight)
    torch.testing.assert_close(model.backbone.bn2.running_var, rgb.bn2.running_var)
    assert [m.out_features for m in model.head if isinstance(m, torch.nn.Linear)] == [512, NUM_CLASSES]
    green = build_classifier("efficientnet_b0", in_chans=3, pretrained=path)
    torch.testing.assert_close(green.backbone.conv_stem.weight, rgb.conv_stem.weight)
    assert model(torch.rand(2, 4, 32, 32)).shape == (2, NUM_CLASSES)
    # NFNet stems are weight-standardised convolutions: adapted through the state dict as well.
    nf = timm.create_model("nfnet_l0", pretrained=False)
    torch.save(nf.state_dict(), tmp_path / "nfnet_l0.pth")
    nf4 = build_classifier("nfnet_l0", in_chans=4, pretrained=tmp_path / "nfnet_l0.pth")
    torch.testing.assert_close(nf4.backbone.stem.conv1.weight, rgb_to_rgby_weight(nf.stem.conv1.weight))
    assert type(nf4.backbone.stem.conv1).__name__ == "ScaledStdConv2d"


def test_backbone_names_and_bad_checkpoints(tmp_path):
    assert set(BACKBONES) == {"nfnet_l0", "nfnet_f1", "resnet50", "inception_v3", "efficientnet_b0", "efficientnet_b3", "efficientnet_b5"}
    with pytest.raises(InputError, match="--backbone 'vgg16': unknown backbone; expected one of nfnet_l0, nfnet_f1, resnet50"):
        build_classifier("vgg16")
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(InputError, match="another architecture"):
        build_classifier("resnet50", pretrained=tmp_path / "resnet18.pth")
    with pytest.raises(InputError, match="no 'conv_stem.weight'"):
        build_classifier("efficientnet_b0", pretrained=tmp_path / "resnet18.pth")
    with pytest.raises(InputError, match="no such file"):
        build_classifier("resnet50", pretrained=tmp_path / "missing.pth")
    assert normalization("resnet50", 4)[1] == (0.229, 0.224, 0.225, 0.2265)


# --------------------------------------------------------------------------- the CLI
def test_classify_image_level_outputs(image_run, tiny_dataset):
    for name in ("config.yaml", "metrics.jsonl", "model_final.pth", "eval.json", "last_checkpoint"):
        assert (image_run / name).is_file(), name
    assert list((image_run / "tb").iterdir())
    assert not list(image_run.glob("model_epoch*.pth"))  # only the newest checkpoint is kept
    ev = json.loads((image_run / "eval.json").read_text())
    assert (ev["level"], ev["channels"], ev["input_size"], ev["loss"], ev["augment"], ev["epochs"]) == ("image", "green", IMAGE_PX, "bce", "standard", 1)
    assert ev["n_train"] == 3 and ev["n_val"] == 1
    for key in ("macro_f1", "macro_f1_tuned", "macro_ap"):
        assert 0.0 <= ev[key] <= 1.0
    assert ev["macro_f1_tuned"] >= ev["macro_f1"]
    assert len(ev["thresholds"]) == NUM_CLASSES and len(ev["per_class"]) == NUM_CLASSES
    val_labels = set(io.read_labels_csv(tiny_dataset["data"] / "train.csv")[_val_id(tiny_dataset)])
    assert set(ev["classes_scored"]) == val_labels
    for c in ev["per_class"]:
        assert c["tn"] + c["fp"] + c["fn"] + c["tp"] == ev["n_val"]
        assert (c["ap"] is None) == (c["n_positive"] == 0)
    assert {a["id"] for a in ev["absent_from_train"]} >= {18}
    state = torch.load(image_run / "model_final.pth", map_location="cpu", weights_only=False)
    assert (state["backbone"], state["level"], state["channels"], state["input_size"]) == ("efficientnet_b0", "image", "green", IMAGE_PX)
    assert state["thresholds"] == ev["thresholds"]
    records = [json.loads(line) for line in (image_run / "metrics.jsonl").read_text().splitlines()]
    assert "loss" in records[0] and "val_macro_ap" in records[-1]
    assert "loss: bce" in (image_run / "config.yaml").read_text()


def _val_id(tiny):
    return json.loads((tiny["dataset"] / "val.json").read_text())["images"][0]["hpa_id"]


def test_classify_resume_continues_exactly_and_warns_about_absent_classes(tiny_dataset, tmp_path, capsys, caplog):
    """2 epochs in one go == 1 epoch, then --resume to 2 (same weights, same iteration count)."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    with caplog.at_level(logging.WARNING, logger="hpaseg.classify"):
        assert classify.main(_image_argv(tiny_dataset, straight, "--augment", "cutmix") + ["--epochs", "2"]) == 0
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no positive sample in the training split" in w and "18 Negative" in w and "11 Mitotic spindle" in w for w in warning), warning
    assert classify.main(_image_argv(tiny_dataset, resumed, "--augment", "cutmix")) == 0
    capsys.readouterr()
    assert classify.main(_image_argv(tiny_dataset, resumed, "--augment", "cutmix", "--resume") + ["--epochs", "2"]) == 0
    assert "resuming from" in capsys.readouterr().out
    a = torch.load(straight / "model_final.pth", map_location="cpu", weights_only=False)
    b = torch.load(resumed / "model_final.pth", map_location="cpu", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2 and a["iteration"] == b["iteration"] == 2
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], msg=key)
    # Resuming with other settings is refused.
    assert classify.main(_image_argv(tiny_dataset, resumed, "--augment", "cutmix", "--resume", "--loss", "focal")) == 2
    assert "was trained with loss 'bce' (now 'focal')" in capsys.readouterr().err


def test_classify_cell_level(cell_run):
    ev = json.loads((cell_run / "eval.json").read_text())
    assert (ev["level"], ev["channels"], ev["input_size"], ev["loss"], ev["augment"]) == ("cell", "rgby", CROP_PX, "focal", "cutmix")
    assert ev["n_train"] > 20 and ev["n_val"] > 5  # one sample per cell
    loaded = classify.load_classifier(cell_run, backbone="efficientnet_b0", level="cell")
    assert loaded.channels == "rgby" and loaded.input_size == CROP_PX
    p = loaded.probabilities(np.zeros((3, CROP_PX, CROP_PX, 4), np.uint8))
    assert p.shape == (3, NUM_CLASSES) and ((p >= 0) & (p <= 1)).all()


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
        (["--backbone", "vgg16"], "--backbone 'vgg16': unknown backbone; expected one of nfnet_l0, nfnet_f1, resnet50, inception_v3, efficientnet_b0"),
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
    assert classify.main(_image_argv(tiny_dataset, run, *extra)) == 2
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
    assert classify.main(argv) == 2
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
    assert classify.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{image_id}_yellow" in err and len(err.strip().splitlines()) == 1
    # A mask of another size than its image (cell level).
    masks = tmp_path / "masks"
    shutil.copytree(tiny_dataset["masks"], masks)
    mask = io.read_mask(masks / f"{image_id}_cellmask.png")
    io.write_mask_png(masks / f"{image_id}_cellmask.png", mask[:, :100])
    argv = _cell_argv(tiny_dataset, run)
    argv[argv.index("--dataset") + 1], argv[argv.index("--masks") + 1] = str(dataset), str(masks)
    assert classify.main(argv) == 2
    assert "masks must be at the image's original resolution" in capsys.readouterr().err
    assert not run.exists()


# --------------------------------------------------------------------------- predict route
def _truth(tiny):
    return read_submission(tiny["data"] / "truth.csv")


def test_predict_classifier_route(cell_run, image_run, tiny_dataset, tmp_path, capsys):
    test = tiny_dataset["test"]
    base = ["--classifier", str(cell_run), "--masks", str(tiny_dataset["masks"]), "--data", str(test), "--device", "cpu", "--quiet"]
    out, saved = tmp_path / "cells.csv", tmp_path / "saved"
    assert predict.main(["--backbone", "efficientnet_b0", *base, "--out", str(out), "--save-masks", str(saved)]) == 0
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
    # With an image-level classifier: scores change; with weight 1 they are the cell classifier's.
    fused, same = tmp_path / "fused.csv", tmp_path / "same.csv"
    assert predict.main([*base, "--image-classifier", str(image_run), "--fusion-weight", "0.3", "--out", str(fused)]) == 0
    assert predict.main([*base, "--image-classifier", str(image_run), "--fusion-weight", "1", "--out", str(same)]) == 0
    validate_submission(fused, test)
    assert 0.0 <= competition_map(_truth(tiny_dataset), read_submission(fused)).mAP <= 1.0
    assert same.read_text() == out.read_text()
    assert fused.read_text() != out.read_text()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--backbone", "resnet50"], "trained with backbone 'efficientnet_b0', not --backbone 'resnet50'; pass --backbone efficientnet_b0"),
        (["--backbone", "alexnet"], "--backbone 'alexnet': unknown backbone"),
        (["--fusion-weight", "0.5"], "--fusion-weight needs --image-classifier"),
        (["--weights", "x.pth"], "exclude each other"),
        (["--image-classifier", "CELL"], "trained at the cell level, not the image level"),
    ],
)
def test_predict_classifier_route_bad_options(cell_run, tiny_dataset, tmp_path, capsys, extra, message):
    out = tmp_path / "sub.csv"
    extra = [str(cell_run) if e == "CELL" else e for e in extra]
    argv = ["--classifier", str(cell_run), "--masks", str(tiny_dataset["masks"]), "--data", str(tiny_dataset["test"]), "--out", str(out), "--device", "cpu", "--quiet", *extra]
    assert predict.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_predict_classifier_route_bad_inputs(cell_run, image_run, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    common = ["--data", str(tiny_dataset["test"]), "--out", str(out), "--device", "cpu", "--quiet"]
    assert predict.main(["--classifier", str(cell_run), *common]) == 2
    assert "--classifier needs --masks" in capsys.readouterr().err
    assert predict.main(["--classifier", str(image_run), "--masks", str(tiny_dataset["masks"]), *common]) == 2
    assert "trained at the image level, not the cell level" in capsys.readouterr().err
    masks = tmp_path / "masks"
    masks.mkdir()
    assert predict.main(["--classifier", str(cell_run), "--masks", str(masks), *common]) == 2
    assert "_cellmask.png for image" in capsys.readouterr().err
    image_id = io.list_image_ids(tiny_dataset["test"])[0]
    for other in io.list_image_ids(tiny_dataset["test"]):
        shutil.copy(tiny_dataset["masks"] / f"{other}_cellmask.png", masks)
    io.write_mask_png(masks / f"{image_id}_cellmask.png", io.read_mask(masks / f"{image_id}_cellmask.png")[:64])
    assert predict.main(["--classifier", str(cell_run), "--masks", str(masks), *common]) == 2
    assert "masks must be at the image's original resolution" in capsys.readouterr().err
    assert predict.main(common) == 2
    assert "required: --weights (Mask R-CNN route), or --classifier RUN --masks MASKS" in capsys.readouterr().err
    assert not out.exists()
