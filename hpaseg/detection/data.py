"""Mask R-CNN training data: the cached images of :mod:`hpaseg.labels.cache` with their
targets, one instance per cell with its multi-hot labels, and random flips and quarter turns."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import masks_to_boxes

from ..classes import NUM_CLASSES
from ..errors import InputError
from ..labels import ImageRecord, cache_paths
from ..transforms import to_tensor

__all__ = ["target_from_cells", "CellDataset", "collate"]


def target_from_cells(cells: np.ndarray, cell_labels: dict[int, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Mask R-CNN targets: one instance per cell that survived resizing, with its labels as a multi-hot row.

    Parameters
    ----------
    cells : ndarray, shape (H, W), int
        Label image at working size (0 = background).
    cell_labels : dict of int to tuple of int
        Cell id -> its class ids (:attr:`hpaseg.labels.ImageRecord.cells`); a cell with
        no class gets an all-zero row.

    Returns
    -------
    dict
        ``boxes`` (N, 4) float32 xyxy (exclusive ends), ``labels`` (N,) int64, all 1
        (class-agnostic "cell"), ``masks`` (N, H, W) uint8, ``multilabels`` (N, 19) float32.

    Examples
    --------
    >>> cells = np.zeros((4, 4), np.int32); cells[1:3, 1:3] = 7
    >>> t = target_from_cells(cells, {7: (0, 16), 9: (3,)})  # cell 9 was lost in resizing
    >>> t["boxes"].tolist(), t["labels"].tolist(), t["multilabels"][0].nonzero().flatten().tolist()
    ([[1.0, 1.0, 3.0, 3.0]], [1], [0, 16])
    """
    h, w = cells.shape
    present = [cell for cell in cell_labels if cell != 0]
    masks = cells[None] == np.asarray(present, dtype=cells.dtype).reshape(-1, 1, 1)
    keep = masks.reshape(len(present), -1).any(axis=1)
    masks = torch.from_numpy(masks[keep].astype(np.uint8)).reshape(-1, h, w)
    multilabels = torch.zeros((len(masks), NUM_CLASSES), dtype=torch.float32)
    for row, cell in enumerate(c for c, k in zip(present, keep) if k):
        multilabels[row, list(cell_labels[cell])] = 1.0
    boxes = masks_to_boxes(masks) + torch.tensor([0.0, 0.0, 1.0, 1.0]) if len(masks) else torch.zeros((0, 4))
    return {
        "boxes": boxes.float(),
        "labels": torch.ones(len(masks), dtype=torch.int64),
        "masks": masks,
        "multilabels": multilabels,
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
