"""Tests of hpaseg.detection.trainer: the run folder, resuming, and that training lowers the losses."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml

from hpaseg.detection import MODEL_KIND, CellDataset, TrainConfig, collate, train_torchvision
from hpaseg.detection.trainer import _setup, _step
from hpaseg.errors import InputError
from hpaseg.labels import build_cache, cache_folder, load_coco_split
from hpaseg.runtime.dist import DistInfo
from hpaseg.runtime.seed import seed_everything

#: The losses the torchvision Mask R-CNN returns in training: torchvision's RPN, box and mask
#: heads, and hpaseg's multi-label head.
LOSS_TERMS = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask", "loss_labels")


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
    for r in losses:  # every head's loss logged, the multi-label head's included; "loss" is their sum
        assert set(LOSS_TERMS) <= r.keys()
        assert r["loss"] == pytest.approx(sum(r[k] for k in LOSS_TERMS))
    # the pixel head was fitted on the training cells first (BatchNorm statistics of their
    # crops, not the initial zeros), then stayed as it was while the detector trained
    first = torch.load(trained_run / "model_0000001.pth", map_location="cpu", weights_only=False)["model"]
    pixel = [k for k in ckpt["model"] if k.startswith("roi_heads.pixel_head.")]
    assert pixel and all(torch.equal(first[k], ckpt["model"][k]) for k in pixel)
    assert ckpt["model"]["roi_heads.pixel_head.features.0.1.running_mean"].abs().sum() > 0
    assert not all(torch.equal(first[k], ckpt["model"][k]) for k in ckpt["model"] if ".label_head." in k)


#: Iterations of the fixed-batch run and the learning rate (per image) it trains with.
OVERFIT_ITERS, OVERFIT_BASE_LR = 15, 0.08


def test_training_on_one_fixed_batch_lowers_the_total_and_label_losses(tiny_dataset, tmp_path):
    """The trainer's own set-up (model, SGD, schedule) and step, repeated on one batch built by
    the library's dataset code, must overfit it: the total loss and the multi-label head's
    ``loss_labels`` fall well below where they start. A label head whose loss does not reach
    its weights (detached logits) stays near ln 2 and fails this, as does a zeroed loss."""
    records = [r for r in load_coco_split(tiny_dataset["dataset"] / "train.json") if r.cells]
    cache = cache_folder(tiny_dataset["dataset"], 128)
    build_cache(records, tiny_dataset["train"], cache, 128, workers=0, progress=False)
    images, targets = collate([CellDataset(records, cache)[0]])  # no augmentation: the same batch every step
    assert len(targets[0]["boxes"]) >= 5 and targets[0]["multilabels"].sum() > 0
    cfg = TrainConfig(
        out=str(tmp_path),
        device="cpu",
        image_size=128,
        batch_size=1,
        max_iter=OVERFIT_ITERS,
        base_lr=OVERFIT_BASE_LR,
        warmup_iters=0,
        schedule="step",
        steps=(1.0,),  # no decay within the run: a constant rate
        roi_batch_size=64,
    )
    seed_everything(cfg.seed)
    # the pixel head is left unfitted and frozen: the feature head's loss must reach its weights
    training = _setup(cfg, DistInfo(), torch.device("cpu"), CellDataset(records, cache), fit_pixels=False)
    training.model.train()
    history = []
    for iteration in range(OVERFIT_ITERS):
        losses, _ = _step(training, images, targets, iteration, cfg.clip_grad_norm)
        assert set(losses) == set(LOSS_TERMS)
        history.append({k: float(v.detach()) for k, v in losses.items()})
    total = [sum(h.values()) for h in history]
    labels = [h["loss_labels"] for h in history]
    assert sum(labels[-3:]) / 3 < 0.7 * labels[0], labels
    assert sum(total[-3:]) / 3 < 0.7 * total[0], total


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


def test_narrow_fpn_run_is_recorded_predicted_and_resumed_only_at_its_width(tiny_dataset, tmp_path):
    """``fpn_channels``: the CPU preset's narrower FPN levels and heads (the demo's 64)."""
    from hpaseg.detection import MaskRCNNPredictor

    run = tmp_path / "narrow"
    cfg = TrainConfig(
        dataset=str(tiny_dataset["dataset"]),
        data=str(tiny_dataset["train"]),
        out=str(run),
        device="cpu",
        backbone="resnet18_fpn",
        image_size=128,
        max_iter=1,
        batch_size=1,
        eval_period=0,
        workers=0,
        warmup_iters=1,
        fpn_channels=32,
    )
    train_torchvision(cfg, progress=False)
    ckpt = torch.load(run / "model_final.pth", map_location="cpu", weights_only=False)
    assert ckpt["fpn_channels"] == 32
    assert ckpt["model"]["backbone.fpn.layer_blocks.0.0.weight"].shape[0] == 32
    assert ckpt["model"]["roi_heads.mask_head.0.0.weight"].shape[:2] == (32, 32)  # the mask head as wide as the levels
    predictor = MaskRCNNPredictor.from_checkpoint(run / "model_final.pth")  # rebuilt at its width, weights fit
    assert predictor.model.backbone.out_channels == 32
    with pytest.raises(InputError, match="32 FPN channels, not .* 256 FPN channels") as info:
        train_torchvision(dataclasses.replace(cfg, fpn_channels=256, max_iter=2), resume=True, progress=False)
    assert info.value.params == ("resume",)
    with pytest.raises(InputError, match="densenet121_c5 has no FPN") as info:
        train_torchvision(dataclasses.replace(cfg, backbone="densenet121_c5", out=str(tmp_path / "c5")), progress=False)
    assert info.value.params == ("fpn_channels",)
