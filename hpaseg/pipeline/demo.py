"""``hpaseg demo``: the whole pipeline on a small synthetic dataset, on the CPU.

synth -> segment (train and test) -> segmentation quality against the synthetic truth
-> propagate (COCO dataset) -> baselines -> train a small Mask R-CNN -> predict the test
images -> validate -> evaluate (competition mAP) -> an overlay PNG.

Baselines (:mod:`hpaseg.evaluation.baselines`), scored on the segmented test cells: the
class *prior* (no training), *random labels*, and the *weak-label oracle* (each cell
labelled with its image's true labels, which a real model never sees).
Reruns reuse what is finished (data, masks, the trained model).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import io
from ..detection import MaskRCNNPredictor, TrainConfig, train_torchvision
from ..errors import InputError
from ..evaluation import COMPETITION_IOU_THRESHOLD, competition_map, match_label_images
from ..evaluation.baselines import (
    oracle_labels,
    prior_confidences,
    prior_labels,
    random_labels,
)
from ..labels import propagate_dataset
from ..segmentation import make_segmenter, segment_images
from ..submission import (
    CellLabel,
    build_submission,
    read_submission,
    validate_submission,
    write_submission,
)
from ..synth import generate_dataset
from ..viz import composite_rgb, draw_outlines
from .predict import predict_folder, write_predictions

__all__ = ["DemoConfig", "run_demo"]

log = logging.getLogger(__name__)

_TRUE_OUTLINE = (255, 255, 255)
_PRED_OUTLINE = (255, 200, 0)
_MASKRCNN_OUTLINE = (0, 230, 255)
PRIOR = "prior baseline (no training)"
RANDOM = "random labels"
ORACLE = "weak-label oracle (uses the test images' true labels)"


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo (``hpaseg demo --help``)."""

    out: str = "demo_out"
    n_train: int = 24
    n_test: int = 8
    size: int = 512
    seed: int = 0
    workers: int = 2
    backbone: str = "densenet121"
    train_iters: int = 60
    image_size: int = 256
    batch_size: int = 2
    lr: float = 0.08


def _step(title: str) -> float:
    log.info("\n== %s", title)
    return time.perf_counter()


def _done(started: float) -> None:
    log.info("   %.1f s", time.perf_counter() - started)


def _prepare_folder(cfg: DemoConfig) -> None:
    out = Path(cfg.out)
    params = {k: getattr(cfg, k) for k in ("n_train", "n_test", "size", "seed")}
    params_path = out / "demo_params.json"
    if out.exists() and (not params_path.is_file() or io.read_json(params_path) != params):
        if params_path.is_file():
            shutil.rmtree(out)  # a demo folder made with other settings: start again
        elif any(out.iterdir()):
            raise InputError(
                f"out {out}: folder exists and was not made by 'hpaseg demo'; choose another folder", param="out"
            )


def _cells_of(mask_dir: Path, image_ids: list[str]) -> dict[str, list[int]]:
    return {i: [int(v) for v in np.unique(io.read_mask(io.mask_paths(mask_dir, i)[0])) if v != 0] for i in image_ids}


def _submit(masks: Path, data: Path, cells: list[CellLabel], out_csv: Path) -> None:
    ids = io.list_image_ids(data)
    write_submission(out_csv, build_submission(((i, io.read_mask(io.mask_paths(masks, i)[0])) for i in ids), cells))
    validate_submission(out_csv, data)


def _segmentation_quality(data: Path, masks: Path, test_ids: list[str]) -> dict:
    matches = [
        match_label_images(
            io.read_mask_pair(data / "masks", i)[0],
            io.read_mask(io.mask_paths(masks / "test", i)[0]),
            iou_threshold=COMPETITION_IOU_THRESHOLD,
        )
        for i in test_ids
    ]
    n_true, n_pred, n_hit = (sum(getattr(m, f) for m in matches) for f in ("n_true", "n_pred", "n_matched"))
    return {
        "precision": n_hit / max(n_pred, 1),
        "recall": n_hit / max(n_true, 1),
        "n_true": n_true,
        "n_pred": n_pred,
        "n_matched": n_hit,
    }


def _baselines(
    cfg: DemoConfig, out: Path, data: Path, masks: Path, dataset: Path, test_ids: list[str]
) -> dict[str, float]:
    cells_table = io.read_table(dataset / "cells.csv", ["ID", "split", "Label"])
    prior = prior_confidences(cells_table.loc[cells_table["split"] == "train", "Label"].tolist())
    test_cells = _cells_of(masks / "test", test_ids)
    truth_table = io.read_table(data / "cell_labels.csv", ["ID", "cell", "Label"])
    image_labels: dict[str, set[int]] = {}
    for image_id, text in zip(truth_table["ID"], truth_table["Label"]):
        image_labels.setdefault(image_id, set()).update(io.parse_labels(text))
    tables = {
        PRIOR: ("submission.csv", prior_labels(test_cells, prior)),
        RANDOM: ("random_submission.csv", random_labels(test_cells, np.random.default_rng(cfg.seed))),
        ORACLE: ("weak_oracle_submission.csv", oracle_labels(test_cells, image_labels)),
    }
    truth = read_submission(data / "truth.csv")
    scores = {}
    for name, (csv_name, cells) in tables.items():
        _submit(masks / "test", data / "test", cells, out / csv_name)
        result = competition_map(truth, read_submission(out / csv_name))
        if name == PRIOR:
            io.write_json(
                out / "evaluation.json",
                {"truth": str(data / "truth.csv"), "submission": str(out / csv_name), **result.to_dict()},
                indent=2,
            )
        scores[name] = float(result.mAP)
        log.info("   mAP %.4f  %s", result.mAP, name)
    return scores


def _train_and_predict(cfg: DemoConfig, out: Path, data: Path, dataset: Path) -> tuple[float, dict]:
    run = out / f"run_{cfg.backbone}_{cfg.image_size}px_{cfg.train_iters}it_lr{cfg.lr:g}"
    if not (run / "model_final.pth").is_file():
        train_cfg = TrainConfig(
            backbone=cfg.backbone,
            dataset=str(dataset),
            data=str(data / "train"),
            out=str(run),
            device="cpu",
            image_size=cfg.image_size,
            batch_size=cfg.batch_size,
            max_iter=cfg.train_iters,
            base_lr=cfg.lr,
            checkpoint_period=max(1, cfg.train_iters // 3),
            eval_period=0,
            workers=0,
            log_period=5,
            warmup_iters=min(TrainConfig.warmup_iters, max(1, cfg.train_iters // 5)),
        )
        train_torchvision(train_cfg, resume=True, progress=False)
    else:
        log.info("reusing %s", run / "model_final.pth")
    predictor = MaskRCNNPredictor.from_checkpoint(run / "model_final.pth", device="cpu")
    write_predictions(
        predict_folder(predictor, data / "test", progress=False),
        out / "maskrcnn_submission.csv",
        save_masks=out / "maskrcnn_masks",
    )
    validate_submission(out / "maskrcnn_submission.csv", data / "test")
    losses = [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    log.info("   training loss %.3f (first log) -> %.3f (last)", losses[0], losses[-1])
    score = float(
        competition_map(read_submission(data / "truth.csv"), read_submission(out / "maskrcnn_submission.csv")).mAP
    )
    return score, {"first": losses[0], "last": losses[-1]}


def _overlay(cfg: DemoConfig, out: Path, data: Path, masks: Path, test_ids: list[str]) -> None:
    first = test_ids[0]
    rgb = composite_rgb(io.read_rgby(data / "test", first))
    gap = np.full((rgb.shape[0], 8, 3), 255, np.uint8)
    panels = [
        draw_outlines(rgb, io.read_mask_pair(data / "masks", first)[0], _TRUE_OUTLINE),
        gap,
        draw_outlines(rgb, io.read_mask(io.mask_paths(masks / "test", first)[0]), _PRED_OUTLINE),
    ]
    caption = "left: true cells (white); middle: watershed segmentation (orange)"
    maskrcnn_mask = out / "maskrcnn_masks" / f"{first}_cellmask.png"
    if cfg.train_iters > 0 and maskrcnn_mask.is_file():
        panels += [gap, draw_outlines(rgb, io.read_mask(maskrcnn_mask), _MASKRCNN_OUTLINE)]
        caption += "; right: Mask R-CNN cells (cyan)"
    overlay = out / f"overlay_{first}.png"
    io.write_rgb_png(overlay, np.concatenate(panels, axis=1))
    log.info("   %s: %s", overlay, caption)


def run_demo(cfg: DemoConfig) -> dict:
    """Run the demo; returns (and writes as ``OUT/demo_summary.json``) its figures."""
    start = time.perf_counter()
    _prepare_folder(cfg)
    out = Path(cfg.out)
    data, masks, dataset = out / "data", out / "masks", out / "dataset"

    t = _step(f"1/7 synthetic data: {cfg.n_train} train + {cfg.n_test} test images, {cfg.size} px, seed {cfg.seed}")
    if not (data / "truth.csv").is_file():
        summary = generate_dataset(data, cfg.n_train, cfg.n_test, cfg.size, cfg.seed, progress=False)
        io.write_json(out / "demo_params.json", {k: getattr(cfg, k) for k in ("n_train", "n_test", "size", "seed")})
        log.info("wrote %d train + %d test images, %d cells", summary.n_train, summary.n_test, summary.n_cells)
    else:
        log.info("reusing %s", data)
    _done(t)

    t = _step("2/7 segmentation (built-in watershed, no weights)")
    for split in ("train", "test"):
        log.info(
            segment_images(
                data / split, masks / split, None, make_segmenter("watershed"), workers=cfg.workers, progress=False
            ).line()
        )
    test_ids = io.list_image_ids(data / "test")
    seg = _segmentation_quality(data, masks, test_ids)
    log.info(
        "   test images: %d of %d true cells matched at IoU >= 0.6 by %d segmented cells: precision %.3f, recall %.3f",
        seg["n_matched"],
        seg["n_true"],
        seg["n_pred"],
        seg["precision"],
        seg["recall"],
    )
    _done(t)

    t = _step("3/7 weak labels: every training cell gets its image's labels")
    propagate_dataset(
        data / "train.csv", masks / "train", dataset, data_dir=data / "train", val_fraction=0.2, progress=False
    )
    _done(t)

    t = _step(
        "4/7 baselines (NO TRAINING): class priors, random labels, weak-label oracle; competition mAP (mask IoU >= 0.6)"
    )
    scores = _baselines(cfg, out, data, masks, dataset, test_ids)
    _done(t)

    loss = None
    if cfg.train_iters > 0:
        t = _step(
            f"5/7 Mask R-CNN: train {cfg.backbone} for {cfg.train_iters} iterations at {cfg.image_size} px on the CPU, then predict the test images"
        )
        scores[f"Mask R-CNN {cfg.backbone}, {cfg.train_iters} CPU iterations"], loss = _train_and_predict(
            cfg, out, data, dataset
        )
        _done(t)

    t = _step("6/7 overlay")
    _overlay(cfg, out, data, masks, test_ids)

    _step("7/7 summary")
    log.info("segmentation (test): precision %.3f, recall %.3f at IoU >= 0.6", seg["precision"], seg["recall"])
    for name, value in scores.items():
        log.info("mAP %.4f  %s", value, name)
    summary = {
        "params": asdict(cfg),
        "segmentation": seg,
        "mAP": scores,
        "training_loss": loss,
        "seconds": time.perf_counter() - start,
    }
    io.write_json(out / "demo_summary.json", summary, indent=2)
    log.info("outputs in %s/ ; total %.0f s", out, summary["seconds"])
    return summary
