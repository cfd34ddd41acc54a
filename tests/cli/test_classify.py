"""Tests of the ``hpaseg classify`` CLI and of the cell-classifier route of ``hpaseg predict``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from hpaseg import io
from hpaseg.classification import CellClassifierPredictor
from hpaseg.cli import classify as classify_cli
from hpaseg.cli import predict as predict_cli
from hpaseg.evaluation import competition_map
from hpaseg.submission import decode_mask, read_cell_labels, read_submission, validate_submission

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
        (["--lr", "-1"], "--lr -1.0: expected a finite number > 0"),
        (["--lr", "0"], "--lr 0.0: expected a finite number > 0"),
        (["--lr", "inf"], "--lr inf: expected a finite number > 0"),
        (["--epochs", "0"], "--epochs 0: expected a positive integer"),
        (["--batch-size", "-2"], "--batch-size -2: expected a positive integer"),
        (["--workers", "-1"], "--workers -1: expected an integer >= 0"),
        (["--opts", "weight_decay", "-1"], "--opts weight_decay -1.0: expected a finite number >= 0"),
        (["--opts", "log_period", "0"], "--opts log_period 0: expected a positive integer"),
        (["--opts", "warmup_factor", "0"], "--opts warmup_factor 0.0: expected a number in (0, 1]"),
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


def _check_saved_predictions(run, tiny, out, saved) -> list[tuple]:
    """Check a submission and the ``--save-masks`` folder of the cell-classifier route against
    the library: each cell's mask in the submission, decoded, is exactly one cell of the given
    mask (saved as given); its (label, confidence) pairs, best first, are those
    :class:`CellClassifierPredictor` gives that cell, as is ``cells.csv``. Returns every cell's pairs."""
    test = tiny["test"]
    assert validate_submission(out, test).n_images == 2
    predictor = CellClassifierPredictor.from_runs(run)
    table = {(c.image_id, c.cell, c.label): c.confidence for c in read_cell_labels(saved / "cells.csv")}
    rows, found = read_submission(out), []
    for row in rows:
        true_mask = io.read_mask(tiny["masks"] / f"{row.image_id}_cellmask.png")
        assert (row.height, row.width) == true_mask.shape
        np.testing.assert_array_equal(io.read_mask(saved / f"{row.image_id}_cellmask.png"), true_mask)
        [(_, expected)] = predictor([io.read_rgby(test, row.image_id)], [true_mask])
        by_mask = {}
        for p in row.predictions:
            by_mask.setdefault(p.mask, []).append((p.label, p.confidence))
        cells = {}
        for encoded, pairs in by_mask.items():
            decoded = decode_mask(encoded, row.height, row.width)
            [cell] = np.unique(true_mask[decoded])  # the mask covers one cell ...
            np.testing.assert_array_equal(decoded, true_mask == cell)  # ... and all of it
            cells[int(cell)] = pairs
        assert sorted(cells) == sorted(expected) == sorted(set(np.unique(true_mask).tolist()) - {0})  # every cell
        for cell, pairs in cells.items():
            where = (row.image_id, cell)
            assert [k for k, _ in pairs] == [k for k, _ in expected[cell]], where
            assert [c for _, c in pairs] == pytest.approx([c for _, c in expected[cell]], rel=1e-5, abs=1e-6), where
            assert [c for _, c in pairs] == sorted((c for _, c in pairs), reverse=True), where
            assert [table[(row.image_id, cell, k)] for k, _ in pairs] == pytest.approx([c for _, c in pairs]), where
            found.append(tuple(pairs))
    assert len(table) == sum(len(r.predictions) for r in rows)
    return found


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
    _check_saved_predictions(cell_run, tiny_dataset, out, saved)
    rows = {r.image_id: r for r in read_submission(out)}
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


@pytest.fixture(scope="module")
def descriptor_cell_run(tiny_dataset, tmp_path_factory):
    """A cell-level descriptor classifier: unlike the 1-epoch CNN of ``cell_run``, whose scores
    hardly differ between cells, it scores every cell apart."""
    from hpaseg.classification import ClassifyConfig, train_classifier

    out = tmp_path_factory.mktemp("cls") / "descriptors"
    cfg = ClassifyConfig(
        level="cell",
        backbone="descriptors",
        dataset=str(tiny_dataset["dataset"]),
        data=str(tiny_dataset["train"]),
        masks=str(tiny_dataset["masks"]),
        out=str(out),
        device="cpu",
        workers=0,
    )
    train_classifier(cfg, progress=False)
    return out


def test_predict_classifier_route_labels_each_cell_by_its_own_scores(descriptor_cell_run, tiny_dataset, tmp_path):
    """Cells that the model scores apart keep their own scores in the submission and cells.csv, under
    their own masks (a mix-up of cells, or every cell given its image's answer, fails)."""
    out, saved = tmp_path / "cells.csv", tmp_path / "saved"
    argv = ["--classifier", str(descriptor_cell_run), "--masks", str(tiny_dataset["masks"])]
    argv += ["--data", str(tiny_dataset["test"]), "--device", "cpu", "--quiet", "--out", str(out)]
    assert predict_cli.main([*argv, "--save-masks", str(saved)]) == 0
    cells = _check_saved_predictions(descriptor_cell_run, tiny_dataset, out, saved)
    distinct = {tuple((k, round(c, 3)) for k, c in pairs) for pairs in cells}
    assert len(distinct) > len(cells) // 2, f"{len(distinct)} distinct answers for {len(cells)} cells"


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


class _Built(Exception):
    """Raised by a spy once the model is built: the test needs the loaded weights, not training."""


def test_classify_pretrained_file_reaches_the_model(tiny_dataset, tmp_path, monkeypatch):
    """``hpaseg classify --pretrained PATH`` builds the network from a local RGB timm
    checkpoint: every weight arrives exactly, the stem adapted to RGBY (yellow = mean of
    red and green)."""
    import timm

    from hpaseg.classification import models, trainer

    from ..weights import assert_rgb_weights_round_trip

    torch.manual_seed(0)
    rgb = timm.create_model("efficientnet_b0", pretrained=False)
    path = tmp_path / "efficientnet_b0_rgb.pth"
    torch.save({"state_dict": rgb.state_dict()}, path)
    built = {}

    def spy(*args, **kwargs):
        built["pretrained"] = kwargs.get("pretrained")
        built["model"] = models.build_classifier(*args, **kwargs)
        raise _Built

    monkeypatch.setattr(trainer, "build_classifier", spy)
    with pytest.raises(_Built):
        classify_cli.main(_cell_argv(tiny_dataset, tmp_path / "run", "--pretrained", str(path)))
    assert built["pretrained"] == str(path)
    loaded = built["model"].backbone.state_dict()
    assert_rgb_weights_round_trip(rgb.state_dict(), loaded, "conv_stem.weight", ("classifier.",))


def test_classify_cache_only_shards_fill_the_runs_cache(tiny_dataset, tmp_path, capsys):
    """``--cache-only --shard I/N``: the tasks of an array cache disjoint images; together the
    very files a run reads (a run then decodes nothing), and a task run again skips its images."""
    from hpaseg.classification.data import crop_cache_dir, crop_cache_paths
    from hpaseg.labels import load_coco_split

    dataset = tmp_path / "dataset"
    shutil.copytree(tiny_dataset["dataset"], dataset, ignore=shutil.ignore_patterns("cache_*"))
    tiny = {**tiny_dataset, "dataset": dataset}
    lines = []
    for task in range(2):
        argv = _cell_argv(tiny, tmp_path / "unused", "--cache-only", "--shard", f"{task}/2")
        assert classify_cli.main(argv) == 0
        lines.append(capsys.readouterr().out.strip())
    cache = crop_cache_dir(dataset, tiny["masks"], CROP_PX)
    ids = sorted({r.image_id for s in ("train", "val") for r in load_coco_split(dataset / f"{s}.json") if r.cells})
    for image_id in ids:
        assert all(p.is_file() for p in crop_cache_paths(cache, image_id)), image_id
    done = [int(line.split()[3]) for line in lines]  # "cached crops of N images ..."
    assert sum(done) == len(ids) and all(done), lines
    assert not (tmp_path / "unused").exists()
    assert classify_cli.main(_cell_argv(tiny, tmp_path / "unused", "--cache-only", "--shard", "0/2")) == 0
    assert "cached crops of 0 images" in capsys.readouterr().out
    assert classify_cli.main(_cell_argv(tiny, tmp_path / "run", "--shard", "0/2")) == 2
    assert "--shard belongs to --cache-only" in capsys.readouterr().err
