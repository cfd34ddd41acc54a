"""Tests of the ``hpaseg ablation`` CLI: a tiny grid end to end, its files, skipping and resuming."""

from __future__ import annotations

import csv
import json

import pytest

from hpaseg.classes import CLASS_NAMES, NUM_CLASSES
from hpaseg.cli import ablation as ablation_cli


def _argv(tiny, out, *extra):
    return [
        "--level",
        "image",
        "--backbones",
        "efficientnet_b0",
        "--losses",
        "bce",
        "focal",
        "--augments",
        "cutmix",
        "--dataset",
        str(tiny["dataset"]),
        "--data",
        str(tiny["train"]),
        "--out",
        str(out),
        "--image-size",
        "64",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--quiet",
        "--opts",
        "eval_period",
        "0",
    ]


def _csv(path):
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        return next(reader), list(reader)


def test_ablation_grid_files_skip_and_resume(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "results"
    assert ablation_cli.main(_argv(tiny_dataset, out)) == 0
    names = ["image-efficientnet_b0-bce-cutmix", "image-efficientnet_b0-focal-cutmix"]
    for name in names:
        assert (out / name / "eval.json").is_file() and (out / name / "model_final.pth").is_file()

    header, rows = _csv(out / "results.csv")
    assert (
        header
        == "config,level,backbone,loss,augment,channels,image_size,epochs,macro_f1,macro_f1_tuned,macro_ap,train_seconds".split(
            ","
        )
    )
    assert [r[0] for r in rows] == names
    for r in rows:
        assert r[1:8] == ["image", "efficientnet_b0", r[0].split("-")[2], "cutmix", "green", "64", "1"]
        assert all(0.0 <= float(v) <= 1.0 for v in r[8:11]) and float(r[11]) > 0
    header, ap_rows = _csv(out / "per_class_ap.csv")
    assert header == ["config", "class_id", "class_name", "ap"]
    assert len(ap_rows) == 2 * NUM_CLASSES
    assert [r[2] for r in ap_rows[:NUM_CLASSES]] == list(CLASS_NAMES)
    scored = json.loads((out / names[0] / "eval.json").read_text())["classes_scored"]
    assert [int(r[1]) for r in ap_rows[:NUM_CLASSES] if r[3] != ""] == scored  # empty AP for classes without positives
    header, confusion = _csv(out / "confusion.csv")
    assert header == ["config", "class_id", "class_name", "tn", "fp", "fn", "tp"]
    assert len(confusion) == 2 * NUM_CLASSES and all(
        sum(map(int, r[3:])) == 1 for r in confusion
    )  # one validation image
    md = (out / "results.md").read_text()
    assert "| config |" in md and all(n in md for n in names)
    for plot in ("metrics.png", "per_class_ap.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()

    # Finished configurations are skipped.
    stamp = (out / names[0] / "eval.json").stat().st_mtime_ns
    assert ablation_cli.main(_argv(tiny_dataset, out)) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished, skipped") == 2
    assert (out / names[0] / "eval.json").stat().st_mtime_ns == stamp
    # A configuration interrupted after its last checkpoint resumes from it (no retraining).
    (out / names[1] / "eval.json").unlink()
    assert ablation_cli.main(_argv(tiny_dataset, out)) == 0
    printed = capsys.readouterr().out
    assert (
        printed.count("finished, skipped") == 1
        and "resuming from" in printed
        and (out / names[1] / "eval.json").is_file()
    )
    _, again = _csv(out / "results.csv")
    assert [r[:11] for r in again] == [r[:11] for r in rows]


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--backbones", "efficientnet_b0", "vgg16"],
            "--backbone 'vgg16': unknown backbone; expected descriptors or one of",
        ),
        (["--losses", "l1"], "--loss 'l1': expected one of bce, focal"),
        (["--augments", "mixup"], "--augment 'mixup'"),
        (["--level", "cell"], "--level cell needs --masks"),
        (
            ["--backbones", "resnet50", "efficientnet_b0", "--pretrained", "x.pth"],
            "one checkpoint file cannot serve 2 backbones",
        ),
        (["--lr", "-1"], "--lr -1.0: expected a finite number > 0"),
        (["--lr", "nan"], "--lr nan: expected a finite number > 0"),
        (["--batch-size", "0"], "--batch-size 0: expected a positive integer"),
    ],
)
def test_ablation_bad_options_write_nothing(tiny_dataset, tmp_path, capsys, extra, message):
    out = tmp_path / "results"
    argv = (
        _argv(tiny_dataset, out)[:-3] + extra + ["--opts", "eval_period", "0"]
    )  # options before --opts, which takes the rest
    assert ablation_cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("hpaseg ablation: error:"), err
    assert not out.exists()
