"""The samples of a classifier run: both splits' images or cells with their (propagated)
labels, their inputs decoded once and cached (:mod:`hpaseg.classification.data`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import io
from ..classes import CHANNEL_NAMES, NUM_CLASSES, negative_known
from ..errors import InputError
from ..labels import build_cache, cache_folder, cache_paths, load_coco_split
from .config import ClassifyConfig, check_config
from .data import Sample, build_crop_cache, crop_cache_dir, crop_cache_paths

__all__ = ["PreparedData", "prepare_data", "targets"]


@dataclass
class PreparedData:
    """The samples of both splits, with their inputs cached."""

    train: list[Sample]
    val: list[Sample]
    absent: list[int]  # classes without a positive training sample
    skipped_images: int = 0  # image level: images without cells (no labels known)


def _records(cfg: ClassifyConfig, split: str):
    records = load_coco_split(Path(cfg.dataset) / f"{split}.json")
    kept = [r for r in records if r.cells]
    if not kept:
        what = "image with labelled cells" if cfg.level == "image" else "labelled cell"
        hint = (
            "; rerun 'hpaseg propagate' with a validation fraction > 0 (the validation split scores the run and tunes its thresholds)"
            if split == "val"
            else ""
        )
        raise InputError(
            f"dataset {cfg.dataset}: {split}.json has no {what} ({len(records)} images); the {split} split is empty{hint}",
            param="dataset",
        )
    return kept, len(records) - len(kept)


def prepare_data(cfg: ClassifyConfig, *, progress: bool = True) -> PreparedData:
    """Read both splits, cache their inputs (decoded once) and list the samples."""
    check_config(cfg)
    train, skipped_train = _records(cfg, "train")
    val, skipped_val = _records(cfg, "val")
    if cfg.level == "image":
        cache_dir = cache_folder(cfg.dataset, cfg.image_size)
        todo = [r for r in train + val if not all(p.is_file() for p in cache_paths(cache_dir, r.image_id))]
        for rec in todo:  # fail before any decoding
            for channel in CHANNEL_NAMES:
                io.find_channel_file(cfg.data, rec.image_id, channel)
        build_cache(todo, cfg.data, cache_dir, cfg.image_size, progress=progress)

        def samples(records) -> list[Sample]:
            return [
                Sample(
                    r.image_id,
                    0,
                    str(cache_paths(cache_dir, r.image_id)[0]),
                    -1,
                    tuple(sorted(set().union(*r.cells.values()))),
                )
                for r in records
            ]

    else:
        cache_dir = crop_cache_dir(cfg.dataset, cfg.masks, cfg.crop_size)
        build_crop_cache(train + val, cfg.data, cfg.masks, cache_dir, cfg.crop_size, progress=progress)

        def samples(records) -> list[Sample]:
            out = []
            for r in records:
                crops_path, ids_path = crop_cache_paths(cache_dir, r.image_id)
                row_of = {int(c): i for i, c in enumerate(np.load(ids_path))}
                missing = sorted(set(r.cells) - set(row_of))
                if missing:
                    raise InputError(
                        f"{ids_path}: cached crops lack cell {missing[0]} of image {r.image_id!r}; delete {cache_dir} and rerun"
                    )
                known = negative_known(r.cells.values())
                out.extend(
                    Sample(r.image_id, c, str(crops_path), row_of[c], labels, known)
                    for c, labels in sorted(r.cells.items())
                )
            return out

    train_samples, val_samples = samples(train), samples(val)
    counts = np.zeros(NUM_CLASSES, np.int64)
    for s in train_samples:
        counts[list(s.labels)] += 1
    return PreparedData(
        train_samples,
        val_samples,
        [k for k in range(NUM_CLASSES) if counts[k] == 0],
        skipped_train + skipped_val if cfg.level == "image" else 0,
    )


def targets(samples: Sequence[Sample]) -> np.ndarray:
    y = np.zeros((len(samples), NUM_CLASSES), np.int64)
    for i, s in enumerate(samples):
        y[i, list(s.labels)] = 1
    return y
