"""Weak labels: every cell gets its image's labels (``hpaseg propagate``).

:func:`propagate_dataset` reads each image's cell mask, gives every cell the image-level
labels of ``train.csv`` and writes

* ``DATASET/train.json`` and ``DATASET/val.json``: COCO instance segmentation
  (:mod:`hpaseg.labels.coco`), split **by image ID** (no image in both);
* ``DATASET/cells.csv``: one row per kept cell: ``ID,split,cell,x,y,width,height,area,Label``
  (bbox in pixels at original resolution, ``Label`` '|'-separated);
* ``DATASET/propagate.json``: the options used and counts.

Options drop cells touching the image border (``drop_border``) and cells smaller than
``min_cell_area_px`` pixels at the image's original resolution.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm import tqdm

from .. import io
from ..errors import InputError
from .coco import CellRecord, coco_annotations, coco_categories

__all__ = [
    "BORDER_WIDTH_PX",
    "CELLS_TABLE_HEADER",
    "border_cells",
    "cell_records",
    "split_image_ids",
    "propagate_dataset",
]

log = logging.getLogger(__name__)

#: Pixel width of the image frame within which a cell counts as touching the border.
BORDER_WIDTH_PX = 1
#: Columns of ``DATASET/cells.csv``.
CELLS_TABLE_HEADER: tuple[str, ...] = ("ID", "split", "cell", "x", "y", "width", "height", "area", "Label")


def border_cells(cell_mask: np.ndarray) -> set[int]:
    """The cells of a label image within :data:`BORDER_WIDTH_PX` of its frame (cut by the border).

    >>> sorted(border_cells(np.array([[0, 0, 0], [0, 2, 0], [3, 3, 0]])))
    [3]
    """
    b = BORDER_WIDTH_PX
    frame = np.concatenate(
        (cell_mask[:b].ravel(), cell_mask[-b:].ravel(), cell_mask[:, :b].ravel(), cell_mask[:, -b:].ravel())
    )
    return {int(v) for v in np.unique(frame)} - {0}


def cell_records(
    image_id: str,
    cell_mask: np.ndarray,
    labels: Sequence[int],
    *,
    drop_border: bool = False,
    min_cell_area_px: int = 0,
) -> list[CellRecord]:
    """Give every cell of a label image the image's labels.

    Parameters
    ----------
    image_id : str
    cell_mask : ndarray, shape (H, W), int
        0 = background, cells 1..N (ids need not be contiguous).
    labels : sequence of int
        The image's class ids.
    drop_border : bool
        Drop cells with a pixel on the image's outermost row or column.
    min_cell_area_px : int
        Drop cells smaller than this many pixels.

    Returns
    -------
    list of CellRecord
        Sorted by cell id.

    Examples
    --------
    >>> m = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 2, 2, 0], [0, 2, 2, 0]])
    >>> [(r.cell, r.bbox, r.area, r.labels, r.touches_border) for r in cell_records("a", m, [16, 0])]
    [(1, (0, 0, 2, 1), 2, (0, 16), True), (2, (1, 2, 2, 2), 4, (0, 16), True)]
    >>> [r.cell for r in cell_records("a", m, [0], min_cell_area_px=3)]
    [2]
    """
    if cell_mask.ndim != 2:
        raise ValueError(f"{image_id}: expected a 2-D cell mask, got shape {cell_mask.shape}")
    labels = tuple(sorted(set(int(v) for v in labels)))
    areas = np.bincount(cell_mask.ravel())
    on_border = border_cells(cell_mask)
    records = []
    for index, slc in enumerate(ndimage.find_objects(cell_mask)):
        if slc is None:
            continue
        cell = index + 1
        area = int(areas[cell])
        touches = cell in on_border
        if area < min_cell_area_px or (drop_border and touches):
            continue
        ys, xs = slc
        bbox = (int(xs.start), int(ys.start), int(xs.stop - xs.start), int(ys.stop - ys.start))
        records.append(CellRecord(image_id, cell, bbox, area, labels, touches))
    return records


def split_image_ids(image_ids: Iterable[str], *, val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split image IDs into train and validation sets, deterministically per seed.

    At least one validation image is kept whenever ``val_fraction > 0`` and there are
    two or more images.

    >>> split_image_ids(["a", "b", "c", "d"], val_fraction=0.25, seed=0)
    (['a', 'b', 'd'], ['c'])
    """
    ids = sorted(set(image_ids))
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"val_fraction {val_fraction}: expected a number in [0, 1)", param="val_fraction")
    order = ids[:]
    random.Random(seed).shuffle(order)
    n_val = int(round(len(ids) * val_fraction))
    if val_fraction > 0 and len(ids) >= 2:
        n_val = max(1, n_val)
    n_val = min(n_val, max(len(ids) - 1, 0))
    val = set(order[:n_val])
    return [i for i in ids if i not in val], [i for i in ids if i in val]


def propagate_dataset(
    csv_path: str | Path,
    mask_dir: str | Path,
    out_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    drop_border: bool = False,
    min_cell_area_px: int = 0,
    val_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Propagate image labels to cells and write the COCO dataset (see module docstring).

    Returns
    -------
    dict
        Counts: images, cells, annotations per split, and cells dropped.
    """

    labels = io.read_labels_csv(csv_path)
    mask_dir = Path(mask_dir)
    _check_masks_exist(labels, mask_dir, csv_path)
    train_ids, val_ids = split_image_ids(labels, val_fraction=val_fraction, seed=seed)
    split_of = {i: "train" for i in train_ids} | {i: "val" for i in val_ids}
    coco = {s: {"images": [], "annotations": [], "categories": coco_categories()} for s in ("train", "val")}
    rows = []
    n_cells_total = 0
    next_ann = {"train": 1, "val": 1}
    for image_index, image_id in enumerate(
        tqdm(list(labels), desc="propagate", unit="img", disable=not progress), start=1
    ):
        cell_mask = _read_cell_mask(mask_dir, image_id, data_dir)
        n_cells_total += int(len(np.unique(cell_mask)) - (cell_mask.min() == 0))
        records = cell_records(
            image_id, cell_mask, labels[image_id], drop_border=drop_border, min_cell_area_px=min_cell_area_px
        )
        split = split_of[image_id]
        coco[split]["images"].append(_coco_image(image_index, image_id, cell_mask.shape, labels[image_id]))
        anns = coco_annotations(records, cell_mask, image_index, next_ann[split])
        next_ann[split] += len(anns)
        coco[split]["annotations"].extend(anns)
        rows.extend([r.image_id, split, r.cell, *r.bbox, r.area, io.format_labels(r.labels)] for r in records)
    summary = {
        "options": {
            "csv": str(Path(csv_path).resolve()),
            "masks": str(mask_dir.resolve()),
            "data": str(Path(data_dir).resolve()) if data_dir is not None else None,
            "drop_border": drop_border,
            "min_cell_area_px": min_cell_area_px,
            "val_fraction": val_fraction,
            "seed": seed,
        },
        "images": {s: len(coco[s]["images"]) for s in coco},
        "annotations": {s: len(coco[s]["annotations"]) for s in coco},
        "cells": len(rows),
        "cells_dropped": n_cells_total - len(rows),
    }
    _write_dataset(Path(out_dir), coco, rows, summary)
    return summary


def _check_masks_exist(labels: dict, mask_dir: Path, csv_path: str | Path) -> None:
    """Fail before any work if an image of ``labels`` has no cell mask."""
    for image_id in labels:
        cell_path, _ = io.mask_paths(mask_dir, image_id)
        if not cell_path.is_file():
            raise InputError(
                f"{cell_path}: no cell mask for image {image_id!r} of {csv_path}; run 'hpaseg segment' for it first"
            )


def _read_cell_mask(mask_dir: Path, image_id: str, data_dir: str | Path | None) -> np.ndarray:
    """The image's cell mask, its size checked against the image's when ``data_dir`` is given."""
    cell_path, _ = io.mask_paths(mask_dir, image_id)
    cell_mask = io.read_mask(cell_path)
    height, width = cell_mask.shape
    if data_dir is not None:
        image_size = io.read_image_size(data_dir, image_id)
        if image_size != (height, width):
            raise InputError(
                f"{cell_path}: mask is {height}x{width} px but image {image_id!r} in {data_dir} is "
                f"{image_size[0]}x{image_size[1]}; masks must be at the image's original resolution"
            )
    return cell_mask


def _coco_image(index: int, image_id: str, shape: tuple[int, int], labels) -> dict:
    """The COCO ``images`` entry of one image (its image-level labels included)."""
    height, width = shape
    return {
        "id": index,
        "file_name": image_id,
        "hpa_id": image_id,
        "height": height,
        "width": width,
        "labels": list(labels),
    }


def _write_dataset(out_dir: Path, coco: dict, rows: list, summary: dict) -> None:
    """``train.json``, ``val.json``, ``cells.csv`` and, last (it marks the folder done), ``propagate.json``."""
    for split in ("train", "val"):
        coco[split]["info"] = {
            "description": "HPA cells with image-level labels propagated (hpaseg propagate)",
            **summary["options"],
        }
        io.write_json(out_dir / f"{split}.json", coco[split])
    io.write_table(out_dir / "cells.csv", pd.DataFrame(rows, columns=list(CELLS_TABLE_HEADER)))
    io.write_json(out_dir / "propagate.json", summary, indent=2)
