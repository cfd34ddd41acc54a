"""Mask R-CNN training data: the cached images of :mod:`hpaseg.labels.cache` with their
targets, one instance per cell with its multi-hot labels (and a teacher's probabilities
when one is given), and random flips and quarter turns."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import masks_to_boxes

from .. import io
from ..classes import NUM_CLASSES
from ..errors import InputError
from ..labels import ImageRecord, cache_paths
from ..transforms import to_tensor
from .heads import distill_targets, pixel_crops

log = logging.getLogger(__name__)

__all__ = [
    "Teacher",
    "teacher_file",
    "load_teacher",
    "target_from_cells",
    "CellDataset",
    "collate",
    "cell_crops_by_image",
    "joined_crops",
]


#: A teacher's per-cell probabilities: ``{ID: {cell: (19,) probabilities}}``.
Teacher = Mapping[str, Mapping[int, np.ndarray]]


def teacher_file(teacher: str | Path) -> Path:
    """The probability CSV of ``teacher``: a cell classifier run's ``cell_probabilities.csv``
    or the CSV itself; an InputError naming ``teacher`` when there is none."""
    path = Path(teacher)
    if path.is_dir():
        path = path / io.CELL_PROBABILITIES_CSV
        if not path.is_file():
            raise InputError(
                f"teacher {teacher}: no {io.CELL_PROBABILITIES_CSV} in it; give a cell classifier run of "
                "'hpaseg classify --level cell' (descriptors) trained with this version, or its CSV",
                param="teacher",
            )
    elif not path.is_file():
        raise InputError(f"teacher {teacher}: no such run folder or file", param="teacher")
    return path


def load_teacher(teacher: str | Path, records: list) -> Teacher:
    """``{ID: {cell: probabilities}}`` of ``teacher`` (:func:`teacher_file`) for the cells of
    ``records``; an InputError when it scores none of them (another dataset's run)."""
    probs = io.read_cell_probabilities_csv(teacher_file(teacher))
    wanted = {(r.image_id, c) for r in records for c in r.cells}
    found = sum(1 for i, c in wanted if c in probs.get(i, {}))
    if wanted and not found:
        raise InputError(
            f"teacher {teacher}: its probabilities cover none of the dataset's {len(wanted)} cells; "
            "give the cell classifier run trained on this dataset",
            param="teacher",
        )
    if found < len(wanted):
        log.warning(
            "teacher %s: %d of %d training cells have no probabilities (their hard labels alone)",
            teacher,
            len(wanted) - found,
            len(wanted),
        )
    return probs


def target_from_cells(
    cells: np.ndarray, cell_labels: dict[int, tuple[int, ...]], cell_probs: Mapping[int, np.ndarray] | None = None
) -> dict[str, torch.Tensor]:
    """Mask R-CNN targets: one instance per cell that survived resizing, with its labels as a multi-hot row.

    Parameters
    ----------
    cells : ndarray, shape (H, W), int
        Label image at working size (0 = background).
    cell_labels : dict of int to tuple of int
        Cell id -> its class ids (:attr:`hpaseg.labels.ImageRecord.cells`); a cell with
        no class gets an all-zero row.
    cell_probs : mapping of int to ndarray (19,), optional
        A teacher's probabilities of the cells (cells it lacks get a NaN row).

    Returns
    -------
    dict
        ``boxes`` (N, 4) float32 xyxy (exclusive ends), ``labels`` (N,) int64, all 1
        (class-agnostic "cell"), ``masks`` (N, H, W) uint8, ``multilabels`` (N, 19) float32,
        and with ``cell_probs`` ``label_probs`` (N, 19) float32.

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
    target = {
        "boxes": boxes.float(),
        "labels": torch.ones(len(masks), dtype=torch.int64),
        "masks": masks,
        "multilabels": multilabels,
    }
    if cell_probs is not None:
        kept = [c for c, k in zip(present, keep) if k]
        probs = np.full((len(kept), NUM_CLASSES), np.nan, dtype=np.float32)
        for row, cell in enumerate(kept):
            if cell in cell_probs:
                probs[row] = cell_probs[cell]
        target["label_probs"] = torch.from_numpy(probs)
    return target


class CellDataset(torch.utils.data.Dataset):
    """Cached images with Mask R-CNN targets; random flips and 90-degree turns when ``augment``.

    Items are ``(image, target)`` with image a float tensor (4, H, W) in [0, 1]; with a
    ``teacher``, targets hold its probabilities (``label_probs``).
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        cache_dir: str | Path,
        *,
        augment: bool = False,
        seed: int = 0,
        teacher: Teacher | None = None,
    ) -> None:
        self.records = list(records)
        self.teacher = teacher
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

    def target(self, index: int, cells: np.ndarray) -> dict[str, torch.Tensor]:
        """Targets of item ``index`` on its label image ``cells`` (as cached, or flipped and
        turned): :func:`target_from_cells` with the teacher's probabilities of its cells."""
        record = self.records[index]
        probs = None if self.teacher is None else self.teacher.get(record.image_id, {})
        return target_from_cells(np.ascontiguousarray(cells), record.cells, probs)

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
        target = self.target(index, cells)
        tensor = to_tensor(image)
        return tensor, target


def collate(batch: list) -> tuple[list, list]:
    """Keep images and targets as lists (images may differ in size)."""
    return [b[0] for b in batch], [b[1] for b in batch]


def cell_crops_by_image(
    dataset: CellDataset, mean: Sequence[float], std: Sequence[float], distill_weight: float
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per image with cells: its cells' pixel crops, label-head targets and hard multi-hot
    labels (``multilabels``), in the dataset's order.

    Parameters
    ----------
    dataset : CellDataset
        Its cached working-size images (no augmentation applied) and targets.
    mean, std : sequence of float
        The model's per-channel normalisation (what its transform applies).
    distill_weight : float
        ``d`` of :func:`hpaseg.detection.heads.distill_targets`.

    Returns
    -------
    list of (Tensor (N_i, 4, s, s), Tensor (N_i, 19), Tensor (N_i, 19))
    """
    m = torch.tensor(list(mean)).view(-1, 1, 1)
    s = torch.tensor(list(std)).view(-1, 1, 1)
    out = []
    for index in range(len(dataset)):
        image, cells = dataset.load(index)
        target = dataset.target(index, cells)
        if not len(target["boxes"]):
            continue
        normalised = ((to_tensor(image) - m) / s)[None]
        soft = distill_targets(target["multilabels"], target.get("label_probs"), distill_weight)
        out.append((pixel_crops(normalised, [target["boxes"]]), soft, target["multilabels"]))
    return out


def joined_crops(
    per_image: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The crops and label-head targets of :func:`cell_crops_by_image`, every image's joined."""
    if not per_image:
        return torch.zeros((0, 4, 1, 1)), torch.zeros((0, NUM_CLASSES))
    return torch.cat([c for c, _, _ in per_image]), torch.cat([t for _, t, _ in per_image])
