"""COCO instance files of hpaseg: one annotation per (cell, label), and reading them back
grouped by cell.

Category id = class id + 1 (COCO reserves 0). A cell with several labels gets one
annotation per (cell, label), all with the same mask (COCO RLE at the image's original
resolution); every annotation also carries ``cell_id`` (the cell's value in
``{ID}_cellmask.png``) and ``labels`` (all class ids of that cell), so cell-level
consumers can group them back (:func:`load_coco_split`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask

from ..classes import CLASS_NAMES
from ..errors import InputError
from ..io import read_json
from ..submission.rle import label_image_rles

__all__ = ["ImageRecord", "coco_categories", "coco_annotations", "load_coco_split", "CellRecord"]


@dataclass(frozen=True)
class CellRecord:
    """One cell with its propagated labels.

    ``bbox`` is ``(x, y, width, height)`` in pixels at the original resolution.
    """

    image_id: str
    cell: int
    bbox: tuple[int, int, int, int]
    area: int
    labels: tuple[int, ...]
    touches_border: bool


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


def coco_categories() -> list[dict]:
    """COCO categories: id = class id + 1, name = class name."""
    return [{"id": k + 1, "name": name, "supercategory": "cell"} for k, name in enumerate(CLASS_NAMES)]


def coco_annotations(
    records: Sequence[CellRecord], cell_mask: np.ndarray, image_index: int, first_annotation_id: int
) -> list[dict]:
    """COCO annotations of one image: one per (cell, label), RLE masks at full size.

    Parameters
    ----------
    records : sequence of CellRecord
        The image's kept cells.
    cell_mask : ndarray, shape (H, W), int
    image_index : int
        COCO ``image_id``.
    first_annotation_id : int
        Id of the first annotation; ids increase by one.
    """
    rles = label_image_rles(cell_mask, [r.cell for r in records])
    annotations = []
    next_id = first_annotation_id
    for rec in records:
        rle = rles[rec.cell]
        segmentation = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
        for label in rec.labels:
            annotations.append(
                {
                    "id": next_id,
                    "image_id": image_index,
                    "category_id": label + 1,
                    "segmentation": segmentation,
                    "area": rec.area,
                    "bbox": list(rec.bbox),
                    "iscrowd": 0,
                    "cell_id": rec.cell,
                    "labels": list(rec.labels),
                }
            )
            next_id += 1
    return annotations


def load_coco_split(path: str | Path) -> list[ImageRecord]:
    """Read a ``train.json``/``val.json`` written by ``hpaseg propagate``.

    Annotations of the same cell (one per label) are grouped back into one cell.
    """
    coco = read_json(path)
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise InputError(f"{path}: no {key!r} list; expected a COCO instance file from 'hpaseg propagate'")
    by_image: dict[int, ImageRecord] = {}
    for img in coco["images"]:
        by_image[img["id"]] = ImageRecord(
            img.get("hpa_id", img["file_name"]), int(img["height"]), int(img["width"]), {}, {}
        )
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
        rec.rles[cell] = {
            "size": seg["size"],
            "counts": seg["counts"].encode() if isinstance(seg["counts"], str) else seg["counts"],
        }
    return list(by_image.values())
