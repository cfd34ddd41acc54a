"""The cells of each image as one bag, with their inputs (descriptors or crops, cached) and
targets: what the weak-supervision trainer (:mod:`hpaseg.classification.cell_trainer`) learns from.

Descriptors (:func:`hpaseg.descriptors.describe_cells`) are computed once per image from
the image and its cell mask (nuclei found in the blue channel, as at prediction time on
Mask R-CNN's cells) and cached under ``DATASET/cache_descriptors_{key}/`` (``key`` names
the mask folder), like the crop cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classes import image_labels_of_cells, negative_known
from ..descriptors import describe_cells, descriptor_names
from ..errors import InputError
from ..labels import ImageRecord
from ..weak import targets_matrix
from .data import build_cell_cache

__all__ = [
    "Bag",
    "make_bag",
    "copy_bags",
    "descriptor_cache_dir",
    "descriptor_cache_paths",
    "build_descriptor_cache",
    "load_bags",
]


@dataclass
class Bag:
    """One image's cells: descriptors, the image's labels and per-cell targets.

    ``targets`` start as the cells' labels in the dataset (propagated) and are replaced
    by refined ones between rounds (:func:`hpaseg.weak.refine_targets`).
    ``negative_known`` says whether their Negative column is known: not for cells given
    a positive image's labels (Kaggle convention: such an image's labels do not say
    whether some of its cells are Negative); yes once refined (a cell left with none of
    its image's labels is Negative), for images labelled Negative alone, and for datasets
    whose cells were labelled one by one (some cell of a positive image is Negative).
    """

    image_id: str
    cells: np.ndarray  # (N,) cell labels
    x: np.ndarray  # (N, D) float32 descriptors, or (N, S, S, 4) uint8 crops
    image_labels: tuple[int, ...]
    targets: np.ndarray  # (N, 19) float32
    negative_known: bool = True


def copy_bags(bags: Sequence[Bag]) -> list[Bag]:
    """Copies of ``bags`` whose targets refinement can change without touching the originals'."""
    return [dataclasses.replace(b, targets=b.targets.copy()) for b in bags]


def descriptor_cache_dir(dataset_dir: str | Path, mask_dir: str | Path) -> Path:
    """``DATASET/cache_descriptors_{key}``, ``key`` naming the mask folder and the descriptor set."""
    text = f"{Path(mask_dir).resolve()}|{','.join(descriptor_names())}"
    return Path(dataset_dir) / f"cache_descriptors_{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def descriptor_cache_paths(cache_dir: str | Path, image_id: str) -> tuple[Path, Path]:
    """``(descriptors .npy, cell ids .npy)`` of one image."""
    cache_dir = Path(cache_dir)
    return cache_dir / f"{image_id}_descriptors.npy", cache_dir / f"{image_id}_cells.npy"


def build_descriptor_cache(
    records: Sequence[ImageRecord],
    data_dir: str | Path,
    mask_dir: str | Path,
    cache_dir: str | Path,
    *,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Describe and cache every cell of every image not cached yet (resumable; atomic files).

    Raises
    ------
    InputError
        A missing channel or mask file, a mask whose size differs from its image, or a
        cell of the dataset that the mask does not have.
    """
    return build_cell_cache(
        records,
        data_dir,
        mask_dir,
        cache_dir,
        paths=descriptor_cache_paths,
        compute=_describe,
        desc="describe cells",
        workers=workers,
        progress=progress,
    )


def _describe(image: np.ndarray, label_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, ids = describe_cells(image, label_image)
    return x, ids.astype(np.int64)


def load_bags(
    records: Sequence[ImageRecord],
    cache_dir: str | Path,
    paths: Callable[[Path, str], tuple[Path, Path]] = descriptor_cache_paths,
) -> list[Bag]:
    """One bag per image with cells, holding the dataset's cells only (in increasing cell order).

    Parameters
    ----------
    records : sequence of ImageRecord
    cache_dir : str or Path
        A per-cell cache (:func:`hpaseg.classification.data.build_cell_cache`).
    paths : callable
        ``(cache_dir, image_id) -> (values .npy, cell ids .npy)``: the descriptor cache's
        (default) or the crop cache's (:func:`hpaseg.classification.data.crop_cache_paths`).
        An image whose cached cells are exactly the dataset's keeps its values memory-mapped
        (crops of a large set need not fit in memory).
    """
    bags = []
    for rec in records:
        if not rec.cells:
            continue
        x_path, ids_path = paths(Path(cache_dir), rec.image_id)
        if not x_path.is_file():
            raise InputError(f"{x_path}: not cached; build the cell cache first")
        x, ids = np.load(x_path, mmap_mode="r"), np.load(ids_path)
        row_of = {int(c): i for i, c in enumerate(ids)}
        cells = np.array(sorted(rec.cells), np.int64)
        rows = np.array([row_of[int(c)] for c in cells], np.int64)
        labels = [rec.cells[int(c)] for c in cells]
        values = x if np.array_equal(rows, np.arange(len(ids))) and x.dtype == np.uint8 else np.asarray(x[rows])
        bags.append(make_bag(rec.image_id, cells, values, labels))
    return bags


def make_bag(image_id: str, cells: np.ndarray, x: np.ndarray, labels: Sequence[Sequence[int]]) -> Bag:
    """A bag from its cells' dataset labels: the image's labels as train.csv writes them
    (:func:`hpaseg.classes.image_labels_of_cells`), the labels as targets, and whether
    their Negative column is known (:class:`Bag`).

    >>> b = make_bag("a", np.array([1, 2]), np.zeros((2, 3), np.float32), [(0,), (0,)])
    >>> b.image_labels, b.negative_known
    ((0,), False)
    >>> make_bag("a", np.array([1, 2]), np.zeros((2, 3), np.float32), [(0,), (18,)]).negative_known
    True
    """
    known = negative_known(labels)
    return Bag(
        image_id,
        np.asarray(cells),
        x if isinstance(x, np.ndarray) and x.dtype == np.uint8 else np.asarray(x, np.float32),
        image_labels_of_cells(labels),
        targets_matrix(labels),
        known,
    )
