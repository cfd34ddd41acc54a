"""detectron2 data: ``hpa_train``/``hpa_val`` registered from the COCO files of
``hpaseg propagate`` (explicitly, no import side effect), and a mapper reading the
four-channel image cache of :mod:`hpaseg.labels.cache`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...classes import CLASS_NAMES
from ...errors import InputError
from ...labels import build_cache, cache_folder, cache_paths, load_coco_split
from ...transforms import working_shape
from ..data import load_teacher, target_from_cells

__all__ = ["register_hpa_datasets", "HPADatasetMapper"]


def _records_to_dicts(records, cache_dir: Path, image_size: int, teacher=None) -> list[dict]:
    out = []
    for rec in records:
        h, w = working_shape(rec.height, rec.width, image_size)
        # height/width = working size: evaluation compares at that resolution.
        out.append(
            {
                "file_name": rec.image_id,
                "image_id": rec.image_id,
                "height": h,
                "width": w,
                "cells": rec.cells,
                "cache_dir": str(cache_dir),
                **({} if teacher is None else {"label_probs": dict(teacher.get(rec.image_id, {}))}),
            }
        )
    return out


def register_hpa_datasets(cfg, *, fill_cache: bool = True, progress: bool = True) -> dict[str, int]:
    """Register ``hpa_train`` and ``hpa_val`` (replacing earlier registrations) and fill the image cache.

    Returns the number of images of each.
    """
    from detectron2.data import DatasetCatalog, MetadataCatalog

    dataset_dir = Path(cfg.HPA.DATASET_DIR)
    train = [r for r in load_coco_split(dataset_dir / "train.json") if r.cells]
    val = (
        [r for r in load_coco_split(dataset_dir / "val.json") if r.cells]
        if (dataset_dir / "val.json").is_file()
        else []
    )
    if not train:
        raise InputError(
            f"dataset {dataset_dir}: train.json has no image with cells; nothing to train on", param="dataset"
        )
    cache_dir = cache_folder(dataset_dir, cfg.HPA.IMAGE_SIZE)
    if fill_cache:
        build_cache(train + val, cfg.HPA.DATA_DIR, cache_dir, cfg.HPA.IMAGE_SIZE, progress=progress)
    teacher = load_teacher(cfg.HPA.TEACHER, train) if cfg.HPA.TEACHER else None
    for name, records in (("hpa_train", train), ("hpa_val", val)):
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        dicts = _records_to_dicts(records, cache_dir, cfg.HPA.IMAGE_SIZE, teacher if name == "hpa_train" else None)
        DatasetCatalog.register(name, lambda dicts=dicts: dicts)
        MetadataCatalog.get(name).set(thing_classes=list(CLASS_NAMES), evaluator_type="hpa")
    return {"hpa_train": len(train), "hpa_val": len(val)}


class HPADatasetMapper:
    """Reads a cached RGBY image and its cell label image, applies flips when training,
    and returns detectron2's model input: ``image`` (4, H, W) float in 0-255 and, when
    training, ``instances`` with one instance per cell: ``gt_boxes``, ``gt_masks``,
    ``gt_classes`` (all 0: the one class "cell") and ``gt_multilabels`` (cells, 19) float,
    the cell's labels as a multi-hot row (:func:`hpaseg.detection.data.target_from_cells`),
    and with a teacher (``HPA.TEACHER``) ``gt_label_probs`` (cells, 19), NaN rows for
    cells it did not score."""

    def __init__(self, cfg, is_train: bool = True) -> None:
        self.is_train = is_train
        self.augment = is_train and cfg.HPA.AUGMENT

    def __call__(self, record: dict) -> dict:
        from detectron2.data import transforms as T
        from detectron2.structures import BitMasks, Boxes, Instances

        image_path, cells_path = cache_paths(record["cache_dir"], record["image_id"])
        image, cells = np.load(image_path), np.load(cells_path)
        if self.augment:
            aug = T.AugmentationList(
                [T.RandomFlip(horizontal=True, vertical=False), T.RandomFlip(horizontal=False, vertical=True)]
            )
            data = T.AugInput(image, sem_seg=cells)
            aug(data)
            image, cells = data.image, data.sem_seg
        out = {
            "image": torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))).float(),
            "image_id": record["image_id"],
            "height": record["height"],
            "width": record["width"],
        }
        if self.is_train:
            target = target_from_cells(np.ascontiguousarray(cells), record["cells"], record.get("label_probs"))
            instances = Instances(cells.shape)
            instances.gt_masks = BitMasks(target["masks"].bool())
            instances.gt_boxes = Boxes(target["boxes"])
            instances.gt_classes = torch.zeros(len(target["boxes"]), dtype=torch.int64)
            instances.gt_multilabels = target["multilabels"]
            if "label_probs" in target:
                instances.gt_label_probs = target["label_probs"]
            out["instances"] = instances
        return out
