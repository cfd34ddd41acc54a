"""The measurements of ``python -m hpaseg.bench cost`` (:mod:`hpaseg.bench.cost`): each
stage of the pipeline timed through the library calls its CLI makes, on synthetic fields
in a folder, and the bytes each writes; no extrapolation here."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .. import io
from ..classification import (
    CELL_PRESETS,
    DESCRIPTORS,
    CellClassifierPredictor,
    ClassifyConfig,
    LoadedClassifier,
    build_classifier,
    cache_inputs,
    fit_round,
    load_bags,
    normalization,
)
from ..classification.models import DescriptorNet
from ..descriptors import descriptor_names
from ..detection import PostprocessConfig, build_maskrcnn
from ..labels import cache_dataset, load_coco_split, propagate_dataset
from ..pipeline.predict import predict_folder, write_predictions
from ..segmentation import make_segmenter, segment_images
from ..submission import merge_submissions
from ..synth import generate_dataset
from ..transforms import resize_image, resize_labels
from ..weak import ImageHead
from .common import StepTimer
from .predict import FORWARD_STEPS, run_chain, truth_detections

__all__ = ["folder_bytes", "measure"]

#: The GPU preset's backbone, timed on this CPU.
CNN_BACKBONE = "efficientnet_b0"
#: Mask R-CNN backbone of the cost model (the default).
MASKRCNN_BACKBONE = "densenet121"


def folder_bytes(folder: str | Path, pattern: str = "*") -> int:
    """Bytes of the files matching ``pattern`` in ``folder`` (not recursive; 0 if absent)."""
    folder = Path(folder)
    return sum(p.stat().st_size for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else 0


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def measure(sizes, root: Path, *, progress: bool = False) -> dict[str, dict]:
    """Every stage of the cost model on ``sizes.n_train`` + ``sizes.n_test`` synthetic fields
    written under ``root``: ``{stage: {"seconds_per_image": ..., "bytes_per_image": ...}}``
    (training stages: ``seconds_per_image_epoch``), plus ``input`` (the fields' PNGs)."""
    data = root / "synth"
    generate_dataset(data, sizes.n_train, sizes.n_test, sizes.size, sizes.seed, progress=False, overwrite=True)
    train, test = data / "train", data / "test"
    out = {"input": {"bytes_per_image": folder_bytes(train, "*.png") / sizes.n_train}}
    out.update(_segment(data, root, sizes))
    dataset = root / "dataset"
    _, seconds = _timed(
        lambda: propagate_dataset(
            data / "train.csv", root / "masks_train", dataset, data_dir=train, val_fraction=1 / 3, progress=False
        )
    )
    out["propagate"] = {"seconds_per_image": seconds / sizes.n_train, "bytes_per_image": _dataset_bytes(dataset)}
    out.update(_caches(sizes, dataset, train, root / "masks_train", progress))
    out.update(_training(sizes, dataset, out["descriptors"]["cache_dir"], out["crops"]["cache_dir"]))
    out.update(_predict(sizes, root, test, root / "masks_test", dataset, out["descriptors"]["cache_dir"]))
    out["predict-maskrcnn"] = _maskrcnn(sizes, data)
    _, seconds = _timed(lambda: merge_submissions([root / "predict-descriptors.csv"], root / "merged.csv", test))
    out["merge"] = {"seconds_per_image": seconds / sizes.n_test, "bytes_per_image": None}
    for key in ("descriptors", "crops"):  # temporary folders: not a result
        del out[key]["cache_dir"]
    return out


def _segment(data: Path, root: Path, sizes) -> dict[str, dict]:
    segmenter = make_segmenter("watershed")
    seconds = 0.0
    for split in ("train", "test"):
        summary, s = _timed(
            lambda split=split: segment_images(
                data / split, root / f"masks_{split}", None, segmenter, read_threads=1, progress=False
            )
        )
        seconds += s
    n = sizes.n_train + sizes.n_test
    written = folder_bytes(root / "masks_train") + folder_bytes(root / "masks_test")
    return {"segment": {"seconds_per_image": seconds / n, "bytes_per_image": written / n}}


def _dataset_bytes(dataset: Path) -> float:
    """COCO files and cells.csv per training image."""
    records = sum(len(load_coco_split(dataset / f"{s}.json")) for s in ("train", "val"))
    return folder_bytes(dataset) / records


def _classify_config(dataset: Path, data: Path, masks: Path, **settings) -> ClassifyConfig:
    return ClassifyConfig(
        level="cell", dataset=str(dataset), data=str(data), masks=str(masks), out="", workers=1, **settings
    )


def _caches(sizes, dataset: Path, data: Path, masks: Path, progress: bool) -> dict[str, dict]:
    """The three input caches, each for every training image."""
    out = {}
    for key, settings in (
        ("descriptors", {"backbone": DESCRIPTORS}),
        ("crops", {"backbone": CNN_BACKBONE, "crop_size": sizes.crop_size}),
    ):
        summary = cache_inputs(_classify_config(dataset, data, masks, **settings), progress=progress)
        out[key] = {
            "seconds_per_image": summary.seconds / summary.n_images,
            "bytes_per_image": folder_bytes(summary.cache_dir) / summary.n_images,
            "cache_dir": str(summary.cache_dir),
        }
    (cache_dir, n_images, _), seconds = _timed(
        lambda: cache_dataset(dataset, data, sizes.maskrcnn_size, workers=1, progress=progress)
    )
    out["images"] = {"seconds_per_image": seconds / n_images, "bytes_per_image": folder_bytes(cache_dir) / n_images}
    return out


def _records(dataset: Path) -> list:
    return load_coco_split(dataset / "train.json") + load_coco_split(dataset / "val.json")


def _training(sizes, dataset: Path, descriptor_cache: str, crop_cache: str) -> dict[str, dict]:
    """An epoch of the descriptor network (CPU preset) and steps of the GPU preset's CNN."""
    bags = load_bags(_records(dataset), descriptor_cache)
    preset = CELL_PRESETS["cpu"]
    cfg = dataclasses.replace(
        ClassifyConfig(level="cell", backbone=DESCRIPTORS),
        epochs=sizes.descriptor_epochs,
        batch_size=preset["batch_size"],
        lr=preset["lr"],
        weight_decay=preset["weight_decay"],
    )
    _, seconds = _timed(lambda: fit_round(cfg, bags))
    cells = [len(b.cells) for b in bags]
    out = {
        "train-descriptors": {
            "seconds_per_image_epoch": seconds / (sizes.descriptor_epochs * len(bags)),
            "cells_per_image": float(np.mean(cells)),
        }
    }
    crops = np.concatenate([np.load(p) for p in sorted(Path(crop_cache).glob("*.crops.npy"))])
    per_crop = _cnn_step_seconds(crops, sizes) / sizes.cnn_batch
    out["train-cnn"] = {
        "seconds_per_image_epoch": per_crop * float(np.mean(cells)),
        "seconds_per_step": per_crop * sizes.cnn_batch,
        "batch": sizes.cnn_batch,
        "crop_size": sizes.crop_size,
    }
    return out


def _cnn_step_seconds(crops: np.ndarray, sizes) -> float:
    """Seconds of one training step (forward, BCE, backward, Adam) of the GPU preset's CNN on
    a batch of ``sizes.cnn_batch`` crops, after a warm-up step."""
    torch.manual_seed(sizes.seed)
    model = build_classifier(CNN_BACKBONE, in_chans=4).train()
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in normalization(CNN_BACKBONE, 4))
    batch = crops[np.arange(sizes.cnn_batch) % len(crops)]
    x = (torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255 - mean) / std
    y = torch.zeros(len(x), model.head[-1].out_features)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(CELL_PRESETS["gpu"]["lr"]))

    def step() -> None:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    _, seconds = _timed(lambda: [step() for _ in range(sizes.cnn_steps)])
    return seconds / sizes.cnn_steps


def _loaded(backbone: str, sizes, bags_x: np.ndarray) -> LoadedClassifier:
    """A randomly initialised cell classifier ready for the predict route (the cost of a
    prediction does not depend on the weights)."""
    torch.manual_seed(sizes.seed)
    if backbone == DESCRIPTORS:
        net = DescriptorNet(len(descriptor_names()))
        net.set_normalization(bags_x.mean(0), bags_x.std(0))
        head = ImageHead(len(descriptor_names()))
        head.set_normalization(bags_x.mean(0), bags_x.std(0))
        cpu = torch.device("cpu")
        return LoadedClassifier(
            net.eval(), DESCRIPTORS, "cell", "rgby", 0, (), (), None, cpu, Path("random"), head.eval()
        )
    mean, std = normalization(backbone, 4)
    model = build_classifier(backbone, in_chans=4).eval()
    return LoadedClassifier(
        model, backbone, "cell", "rgby", sizes.crop_size, mean, std, None, torch.device("cpu"), Path("random")
    )


def _predict(sizes, root: Path, test: Path, masks: Path, dataset: Path, descriptor_cache: str) -> dict[str, dict]:
    """The cell-classifier route over the test fields: read, classify, encode, write."""
    x = np.concatenate([b.x for b in load_bags(_records(dataset), descriptor_cache)])
    out = {}
    for key, backbone in (("predict-descriptors", DESCRIPTORS), ("predict-cnn", CNN_BACKBONE)):
        predictor = CellClassifierPredictor(_loaded(backbone, sizes, x))
        csv = root / f"{key}.csv"
        _, seconds = _timed(
            lambda predictor=predictor, csv=csv: write_predictions(
                predict_folder(predictor, test, masks_dir=masks, workers=1, progress=False), csv
            )
        )
        out[key] = {"seconds_per_image": seconds / sizes.n_test, "bytes_per_image": csv.stat().st_size / sizes.n_test}
    return out


def _maskrcnn(sizes, data: Path) -> dict:
    """One test field through the Mask R-CNN chain at the working size (no warm-up: a first
    1024-px forward pass costs little more than the next)."""
    torch.manual_seed(sizes.seed)
    model = build_maskrcnn(MASKRCNN_BACKBONE, image_size=sizes.maskrcnn_size, score_threshold=0.0).eval()
    model.roi_heads.detections_per_img = sizes.detections
    image_id = io.list_image_ids(data / "test")[0]
    truth = io.read_mask(io.mask_paths(data / "masks", image_id)[0])
    working = resize_image(np.zeros((*truth.shape, 1), np.uint8), sizes.maskrcnn_size).shape[:2]
    given = truth_detections(resize_labels(truth, working), sizes.detections, sizes.seed)
    timer = StepTimer()
    run_chain(
        model,
        data / "test",
        image_id,
        image_size=sizes.maskrcnn_size,
        device=torch.device("cpu"),
        config=PostprocessConfig(),
        timer=timer,
        detections=given,
    )
    forward = sum(timer.seconds[k] for k in FORWARD_STEPS)
    return {
        "seconds_per_image": timer.total,
        "forward_seconds_per_image": forward,
        "non_forward_seconds_per_image": timer.total - forward,
        "steps": dict(timer.seconds),
        "bytes_per_image": None,
    }
