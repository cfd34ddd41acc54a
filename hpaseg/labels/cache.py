"""The image cache of a labelled dataset: every image decoded once, resized to the working
size and stored with its cell label image, for every engine and every rank to reuse.

Decoding four 2048-px PNGs per step would starve a GPU, so every image is decoded
once, resized so its longer side is the working size (:func:`hpaseg.transforms.resize_image`),
and cached with its cell label image (also resized, nearest neighbour) under
``DATASET/cache_{size}px/``: ``{ID}.image.npy`` (H, W, 4) uint8 and ``{ID}.cells.npy``
(H, W) int32. The Mask R-CNN trainers and the image-level classifier read it.
:func:`cache_dataset` fills it for a dataset, or for one shard of its images (the tasks
of a job array, ``hpaseg train --cache-only --shard I/N``), before a training job starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask
from tqdm import tqdm

from .. import io
from ..classes import CHANNEL_NAMES
from ..errors import InputError
from ..runtime.dist import select_shard
from ..transforms import resize_image, resize_labels
from .coco import ImageRecord, load_coco_split

__all__ = ["cache_folder", "cache_paths", "build_cache", "cache_dataset"]


def cache_folder(dataset_dir: str | Path, size: int) -> Path:
    """``DATASET/cache_{size}px``: the cache of images at working size ``size``."""
    return Path(dataset_dir) / f"cache_{size}px"


def cache_paths(cache_dir: str | Path, image_id: str) -> tuple[Path, Path]:
    """Cached ``({ID}.image.npy, {ID}.cells.npy)`` paths of one image in ``cache_dir``."""
    cache_dir = Path(cache_dir)
    return cache_dir / f"{image_id}.image.npy", cache_dir / f"{image_id}.cells.npy"


def build_cache(
    records: Sequence[ImageRecord],
    data_dir: str | Path,
    cache_dir: str | Path,
    size: int,
    *,
    workers: int = 4,
    progress: bool = True,
) -> Path:
    """Decode, resize and cache every image not cached yet (resumable; atomic files)."""
    cache_dir = Path(cache_dir)
    todo = [r for r in records if not all(p.is_file() for p in cache_paths(cache_dir, r.image_id))]
    by_id = {r.image_id: r for r in todo}
    bar = tqdm(total=len(todo), desc=f"cache {size}px", unit="img", disable=not progress or not todo)
    for image_id, image in io.iter_rgby(data_dir, [r.image_id for r in todo], workers=workers):
        rec = by_id[image_id]
        if image.shape[:2] != (rec.height, rec.width):
            raise InputError(
                f"{data_dir}: image {image_id!r} is {image.shape[0]}x{image.shape[1]} px but the dataset says {rec.height}x{rec.width}; rebuild the dataset with 'hpaseg propagate'"
            )
        small = resize_image(image, size)
        cells = np.zeros((rec.height, rec.width), np.int32)
        for cell, rle in rec.rles.items():
            cells[coco_mask.decode(rle).astype(bool)] = cell
        image_path, cells_path = cache_paths(cache_dir, image_id)
        io.write_npy(cells_path, resize_labels(cells, small.shape[:2]))
        io.write_npy(image_path, small)
        bar.update()
    bar.close()
    return cache_dir


def cache_dataset(
    dataset_dir: str | Path,
    data_dir: str | Path,
    size: int,
    *,
    shard: tuple[int, int] | None = None,
    workers: int = 4,
    progress: bool = True,
) -> tuple[Path, int, int]:
    """Cache the images a Mask R-CNN training run on ``dataset_dir`` reads (those of
    ``train.json`` with cells and every image of ``val.json``), or those of one shard.

    Parameters
    ----------
    dataset_dir : path
        Output folder of ``hpaseg propagate``.
    data_dir : path
        The images.
    size : int
        Working size in px (the run's ``image_size``).
    shard : (int, int), optional
        ``(I, N)``: only the images of task I of N (:func:`hpaseg.runtime.dist.select_shard`).
    workers : int
        Image-decoding threads.
    progress : bool

    Returns
    -------
    (cache folder, images of the shard, of them cached before)
    """
    dataset_dir = Path(dataset_dir)
    if size < 1:
        raise InputError(f"image_size {size}: expected a positive integer", param="image_size")
    records = [r for r in load_coco_split(dataset_dir / "train.json") if r.cells]
    if (dataset_dir / "val.json").is_file():
        records += load_coco_split(dataset_dir / "val.json")
    if shard is not None:
        wanted = set(select_shard([r.image_id for r in records], *shard))
        records = [r for r in records if r.image_id in wanted]
    cache_dir = cache_folder(dataset_dir, size)
    todo = [r for r in records if not all(p.is_file() for p in cache_paths(cache_dir, r.image_id))]
    for rec in todo:  # fail before any decoding
        for channel in CHANNEL_NAMES:
            io.find_channel_file(data_dir, rec.image_id, channel)
    build_cache(todo, data_dir, cache_dir, size, workers=workers, progress=progress)
    return cache_dir, len(records), len(records) - len(todo)
