"""Mask R-CNN training data: the cached images of :mod:`hpaseg.labels.cache` with their
targets, one instance per (cell, label), and random flips and quarter turns."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..labels import ImageRecord, cache_paths
from ..transforms import to_tensor

__all__ = ["target_from_cells", "CellDataset", "collate"]


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
        "masks": torch.from_numpy(np.stack(masks).astype(np.uint8))
        if masks
        else torch.zeros((0, h, w), dtype=torch.uint8),
    }


class CellDataset(torch.utils.data.Dataset):
    """Cached images with Mask R-CNN targets; random flips and 90-degree turns when ``augment``.

    Items are ``(image, target)`` with image a float tensor (4, H, W) in [0, 1].
    """

    def __init__(
        self, records: Sequence[ImageRecord], cache_dir: str | Path, *, augment: bool = False, seed: int = 0
    ) -> None:
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
            raise InputError(f"{image_path}: not cached; build the cache with hpaseg.labels.build_cache first")
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
        tensor = to_tensor(image)
        return tensor, target


def collate(batch: list) -> tuple[list, list]:
    """Keep images and targets as lists (images may differ in size)."""
    return [b[0] for b in batch], [b[1] for b in batch]
