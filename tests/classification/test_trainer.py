"""Tests of hpaseg.classification.trainer: what a run writes, at image and cell level."""

from __future__ import annotations

import json

import numpy as np
import torch

from hpaseg import io
from hpaseg.classes import NUM_CLASSES
from hpaseg.classification import load_classifier

from ..conftest import CROP_PX, IMAGE_PX


def test_classify_image_level_outputs(image_run, tiny_dataset):
    for name in ("config.yaml", "metrics.jsonl", "model_final.pth", "eval.json", "last_checkpoint"):
        assert (image_run / name).is_file(), name
    assert list((image_run / "tb").iterdir())
    assert not list(image_run.glob("model_epoch*.pth"))  # only the newest checkpoint is kept
    ev = json.loads((image_run / "eval.json").read_text())
    assert (ev["level"], ev["channels"], ev["input_size"], ev["loss"], ev["augment"], ev["epochs"]) == (
        "image",
        "green",
        IMAGE_PX,
        "bce",
        "standard",
        1,
    )
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
    assert (state["backbone"], state["level"], state["channels"], state["input_size"]) == (
        "efficientnet_b0",
        "image",
        "green",
        IMAGE_PX,
    )
    assert (
        state["thresholds"] == ev["thresholds"] and state["finished"] is True
    )  # no refit: tuned on val for this model
    records = [json.loads(line) for line in (image_run / "metrics.jsonl").read_text().splitlines()]
    assert "loss" in records[0] and "val_macro_ap" in records[-1]
    assert "loss: bce" in (image_run / "config.yaml").read_text()


def _val_id(tiny):
    return json.loads((tiny["dataset"] / "val.json").read_text())["images"][0]["hpa_id"]


def test_classify_cell_level(cell_run):
    ev = json.loads((cell_run / "eval.json").read_text())
    assert (ev["level"], ev["channels"], ev["input_size"], ev["loss"], ev["augment"]) == (
        "cell",
        "rgby",
        CROP_PX,
        "focal",
        "cutmix",
    )
    assert ev["n_train"] > 20 and ev["n_val"] > 5  # one sample per cell
    loaded = load_classifier(cell_run, level="cell")
    assert loaded.backbone == "efficientnet_b0"
    assert loaded.channels == "rgby" and loaded.input_size == CROP_PX
    p = loaded.probabilities(np.zeros((3, CROP_PX, CROP_PX, 4), np.uint8))
    assert p.shape == (3, NUM_CLASSES) and ((p >= 0) & (p <= 1)).all()
