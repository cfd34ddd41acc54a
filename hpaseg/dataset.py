"""Training data for Mask R-CNN: the COCO files of ``hpaseg propagate`` plus an image cache.

Decoding four 2048-px PNGs per step would starve a GPU, so every image is decoded
once, resized so its longer side is the working size, and cached with its cell label
image (also resized, nearest neighbour) under ``DATASET/cache_{size}px/``:
``{ID}.image.npy`` (H, W, 4) uint8 and ``{ID}.cells.npy`` (H, W) int32. Later runs,
every rank and every engine reuse the cache.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from pycocotools import mask as coco_mask
from skimage.transform import resize

from . import io
from .errors import InputError
from .segment import resize_labels

__all__ = ["ImageRecord", "load_coco_split", "working_shape", "resize_image", "resize_labels", "cache_paths", "build_cache", "target_from_cells", "CellDataset", "collate"]


@dataclass(frozen=True)
class ImageRecord:
    """One image of a COCO split: its cells and their labels.

    ``cells`` maps cell id -> (class ids) and ``rles`` cell id -> COCO RLE (full size).
    """

    image_id: str
    height: int
    width: int
    cells: dict[int, tuple[int, ...]]
    rles: dict[int, dict]


def load_coco_split(path: str | Path) -> list[ImageRecord]:
    """Read a ``train.json``/``val.json`` written by ``hpaseg propagate``.

    Annotations of the same cell (one per label) are grouped back into one cell.
    """
    coco = io.read_json(path)
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise InputError(f"{path}: no {key!r} list; expected a COCO instance file from 'hpaseg propagate'")
    by_image: dict[int, ImageRecord] = {}
    for img in coco["images"]:
        by_image[img["id"]] = ImageRecord(img.get("hpa_id", img["file_name"]), int(img["height"]), int(img["width"]), {}, {})
    for ann in coco["annotations"]:
        rec = by_image.get(ann["image_id"])
        if rec is None:
            raise InputError(f"{path}: annotation {ann.get('id')} refers to unknown image {ann['image_id']}")
        cell = int(ann.get("cell_id", ann["id"]))
        labels = set(rec.cells.get(cell, ())) | {int(ann["category_id"]) - 1}
        rec.cells[cell] = tuple(sorted(labels))
        seg = ann["segmentation"]
        if isinstance(seg, dict) and isinstance(seg.get("counts"), list):
            seg = coco_mask.frPyObjects(seg, rec.height, rec.width)
        rec.rles[cell] = {"size": seg["size"], "counts": seg["counts"].encode() if isinstance(seg["counts"], str) else seg["counts"]}
    return list(by_image.values())


def working_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Shape after resizing so the longer side is ``size`` px.

    >>> working_shape(2048, 1536, 512)
    (512, 384)
    """
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an ``(H, W, C)`` uint8 image so its longer side is ``size`` px (area-averaging when shrinking)."""
    shape = working_shape(image.shape[0], image.shape[1], size)
    if shape == image.shape[:2]:
        return image
    out = resize(image, shape + image.shape[2:], order=1, anti_aliasing=shape[0] < image.shape[0], preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def cache_paths(cache_dir: str | Path, image_id: str) -> tuple[Path, Path]:
    """Cached ``({ID}.image.npy, {ID}.cells.npy)`` paths of one image in ``cache_dir``."""
    cache_dir = Path(cache_dir)
    return cache_dir / f"{image_id}.image.npy", cache_dir / f"{image_id}.cells.npy"


def build_cache(records: Sequence[ImageRecord], data_dir: str | Path, cache_dir: str | Path, size: int, *, workers: int = 4, progress: bool = True) -> Path:
    """Decode, resize and cache every image not cached yet (resumable; atomic files)."""
    from tqdm import tqdm

    cache_dir = Path(cache_dir)
    todo = [r for r in records if not all(p.is_file() for p in cache_paths(cache_dir, r.image_id))]
    by_id = {r.image_id: r for r in todo}
    bar = tqdm(total=len(todo), desc=f"cache {size}px", unit="img", disable=not progress or not todo)
    for image_id, image in io.iter_rgby(data_dir, [r.image_id for r in todo], workers=workers):
        rec = by_id[image_id]
        if image.shape[:2] != (rec.height, rec.width):
            raise InputError(f"{data_dir}: image {image_id!r} is {image.shape[0]}x{image.shape[1]} px but the dataset says {rec.height}x{rec.width}; rebuild the dataset with 'hpaseg propagate'")
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


def target_from_cells(cells: np.ndarray, cell_labels: dict[int, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Mask R-CNN targets: one instance per (cell, label) that survived resizing."""
    boxes, labels, masks = [], [], []
    for cell, classes in cell_labels.items():
        mask = cells == cell
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
        for k in classes:
            boxes.append(box)
            labels.append(k + 1)
            masks.append(mask)
    h, w = cells.shape
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "masks": torch.from_numpy(np.stack(masks).astype(np.uint8)) if masks else torch.zeros((0, h, w), dtype=torch.uint8),
    }


class CellDataset(torch.utils.data.Dataset):
    """Cached images with Mask R-CNN targets; random flips and 90-degree turns when ``augment``.

    Items are ``(image, target)`` with image a float tensor (4, H, W) in [0, 1].
    """

    def __init__(self, records: Sequence[ImageRecord], cache_dir: str | Path, *, augment: bool = False, seed: int = 0) -> None:
        self.records = list(records)
        self.cache_dir = Path(cache_dir)
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Cached ``(image (H, W, 4) uint8, cells (H, W) int32)`` of item ``index``."""
        image_path, cells_path = cache_paths(self.cache_dir, self.records[index].image_id)
        if not image_path.is_file():
            raise InputError(f"{image_path}: not cached; build the cache with hpaseg.dataset.build_cache first")
        return np.load(image_path), np.load(cells_path)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image, cells = self.load(index)
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            if rng.random() < 0.5:
                image, cells = image[:, ::-1], cells[:, ::-1]
            if rng.random() < 0.5:
                image, cells = image[::-1], cells[::-1]
            if image.shape[0] == image.shape[1]:
                k = int(rng.integers(4))
                image, cells = np.rot90(image, k), np.rot90(cells, k)
        target = target_from_cells(np.ascontiguousarray(cells), self.records[index].cells)
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)
        return tensor, target


def collate(batch: list) -> tuple[list, list]:
    """Keep images and targets as lists (images may differ in size)."""
    return [b[0] for b in batch], [b[1] for b in batch]


def default_workers() -> int:
    """Data-loader workers: the CPUs this process may use, minus one, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(8, cpus - 1))
