"""The samples of a classifier run: both splits' images or cells with their (propagated)
labels, their inputs decoded once and cached (:mod:`hpaseg.classification.data`); and the
caching alone, for a shard of the images (:func:`cache_inputs`: a per-image stage of its
own, for job arrays)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import io
from ..classes import CHANNEL_NAMES, NUM_CLASSES, negative_known
from ..errors import InputError
from ..labels import build_cache, cache_folder, cache_paths, load_coco_split
from ..runtime.dist import select_shard
from .bags import build_descriptor_cache, descriptor_cache_dir, descriptor_cache_paths
from .config import ClassifyConfig, check_config
from .data import Sample, build_crop_cache, crop_cache_dir, crop_cache_paths
from .models import DESCRIPTORS

__all__ = ["PreparedData", "prepare_data", "targets", "CacheSummary", "cache_inputs"]


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


def _cache_images(records: Sequence, cfg: ClassifyConfig, progress: bool) -> Path:
    """Cache the images of ``records`` not cached yet at ``cfg.image_size``; every channel
    file checked before any decoding. Returns the cache folder."""
    cache_dir = cache_folder(cfg.dataset, cfg.image_size)
    todo = [r for r in records if not all(p.is_file() for p in cache_paths(cache_dir, r.image_id))]
    for rec in todo:
        for channel in CHANNEL_NAMES:
            io.find_channel_file(cfg.data, rec.image_id, channel)
    build_cache(todo, cfg.data, cache_dir, cfg.image_size, progress=progress)
    return cache_dir


def prepare_data(cfg: ClassifyConfig, *, progress: bool = True) -> PreparedData:
    """Read both splits, cache their inputs (decoded once) and list the samples."""
    check_config(cfg)
    train, skipped_train = _records(cfg, "train")
    val, skipped_val = _records(cfg, "val")
    if cfg.level == "image":
        cache_dir = _cache_images(train + val, cfg, progress)

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


@dataclass(frozen=True)
class CacheSummary:
    """What :func:`cache_inputs` did."""

    cache_dir: Path
    kind: str  # "descriptors", "crops" or "images"
    n_images: int  # images of the shard
    n_cached_before: int  # of them, cached by an earlier run
    seconds: float

    def line(self) -> str:
        """One-line summary.

        >>> CacheSummary(Path("d/cache"), "crops", 4, 1, 6.0).line()
        'cached crops of 3 images (1 of 4 cached before), 2.00 s/image -> d/cache'
        """
        done = self.n_images - self.n_cached_before
        per_image = self.seconds / done if done else 0.0
        return (
            f"cached {self.kind} of {done} images ({self.n_cached_before} of {self.n_images} cached before), "
            f"{per_image:.2f} s/image -> {self.cache_dir}"
        )


def cache_inputs(cfg: ClassifyConfig, *, shard: tuple[int, int] | None = None, progress: bool = True) -> CacheSummary:
    """Decode and cache what a run of ``cfg`` trains on, for the images of ``shard`` only:
    the first step of training as a resumable per-image stage of its own, so the tasks of a
    job array can fill one cache folder together before one training job reads it.

    The cache is the run's own (the same folder and files :func:`prepare_data` or the
    descriptor trainer would write): per-cell descriptors
    (:func:`~hpaseg.classification.bags.build_descriptor_cache`) for the descriptors
    backbone, cell crops (:func:`~hpaseg.classification.data.build_crop_cache`) for a CNN at
    the cell level, images at the working size (:func:`hpaseg.labels.build_cache`) at the image level.
    Images already cached are skipped; files are written atomically.

    Parameters
    ----------
    cfg : ClassifyConfig
        The settings of the training run (``dataset``, ``data``, ``masks``, ``level``,
        ``backbone``, ``crop_size`` or ``image_size``, ``workers``).
    shard : (int, int), optional
        ``(I, N)``: only the images of task I of N (:func:`hpaseg.runtime.dist.select_shard`
        over the IDs of both splits).
    progress : bool

    Returns
    -------
    CacheSummary
    """
    check_config(cfg)
    splits = [load_coco_split(Path(cfg.dataset) / f"{split}.json") for split in ("train", "val")]
    if cfg.backbone == DESCRIPTORS:  # as the descriptor trainer: every image of both splits
        records = splits[0] + splits[1]
    else:  # as prepare_data: the images with labelled cells
        records = _records(cfg, "train")[0] + _records(cfg, "val")[0]
    if shard is not None:
        wanted = set(select_shard([r.image_id for r in records], *shard))
        records = [r for r in records if r.image_id in wanted]
    if cfg.backbone == DESCRIPTORS:
        kind, cache_dir, paths = "descriptors", descriptor_cache_dir(cfg.dataset, cfg.masks), descriptor_cache_paths
    elif cfg.level == "cell":
        kind, cache_dir, paths = "crops", crop_cache_dir(cfg.dataset, cfg.masks, cfg.crop_size), crop_cache_paths
    else:
        kind, cache_dir, paths = "images", cache_folder(cfg.dataset, cfg.image_size), cache_paths
    before = sum(all(p.is_file() for p in paths(cache_dir, r.image_id)) for r in records)
    start = time.perf_counter()
    if kind == "descriptors":
        build_descriptor_cache(records, cfg.data, cfg.masks, cache_dir, workers=cfg.workers, progress=progress)
    elif kind == "crops":
        build_crop_cache(records, cfg.data, cfg.masks, cache_dir, cfg.crop_size, progress=progress)
    else:
        _cache_images(records, cfg, progress)
    return CacheSummary(cache_dir, kind, len(records), before, time.perf_counter() - start)
