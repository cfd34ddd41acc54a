"""Cleaned cell labels: a dataset of ``hpaseg propagate`` re-written with per-cell labels
from elsewhere (``hpaseg relabel``), e.g. the ``refined_labels.csv`` of a weakly
supervised cell classifier, so that Mask R-CNN trains on cleaned labels rather than on
every cell carrying its image's labels.

The output folder gets ``train.json``, ``val.json`` (the same images, cells, masks and
split; one annotation per (cell, label) of the new labels), ``cells.csv`` and
``relabel.json`` (the source, and how many cells' labels changed).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .. import io
from ..errors import InputError
from .propagate import CELLS_TABLE_HEADER

__all__ = ["relabel_coco", "relabel_dataset"]


def relabel_coco(coco: dict, cell_labels: Mapping[str, Mapping[int, tuple[int, ...]]], source: str) -> tuple[dict, int]:
    """A COCO dict of ``hpaseg propagate`` with each cell's annotations replaced by its new labels.

    Parameters
    ----------
    coco : dict
        ``images``, ``annotations`` (with ``cell_id``), ``categories``.
    cell_labels : mapping
        ``{ID: {cell: labels}}``; must hold every cell of ``coco``.
    source : str
        Named in errors.

    Returns
    -------
    (dict, int)
        The new COCO dict and the number of cells whose labels changed.
    """
    hpa_id = {img["id"]: img.get("hpa_id", img["file_name"]) for img in coco["images"]}
    first: dict[tuple[int, int], dict] = {}
    old: dict[tuple[int, int], set[int]] = {}
    for ann in coco["annotations"]:
        key = (ann["image_id"], int(ann.get("cell_id", ann["id"])))
        first.setdefault(key, ann)
        old.setdefault(key, set()).add(int(ann["category_id"]) - 1)
    annotations, changed = [], 0
    for (image_index, cell), ann in first.items():
        image_id = hpa_id[image_index]
        labels = cell_labels.get(image_id, {}).get(cell)
        if labels is None:
            raise InputError(f"{source}: no labels for cell {cell} of image {image_id!r}; give labels for every cell")
        changed += set(labels) != old[(image_index, cell)]
        for label in labels:
            annotations.append({**ann, "id": len(annotations) + 1, "category_id": label + 1, "labels": sorted(labels)})
    return {**coco, "annotations": annotations}, changed


def relabel_dataset(dataset_dir: str | Path, labels_csv: str | Path, out_dir: str | Path) -> dict:
    """Write ``dataset_dir`` with the cell labels of ``labels_csv`` (``ID,cell,Label``) to ``out_dir``.

    Returns
    -------
    dict
        ``{"cells": N, "changed": M, "source": ..., "labels": ...}`` (also ``relabel.json``).

    Raises
    ------
    InputError
        A missing file of the dataset, or a cell without labels in ``labels_csv``.
    """
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    cell_labels = io.read_cell_labels_csv(labels_csv)
    outputs, n_cells, n_changed = {}, 0, 0
    for split in ("train", "val"):
        path = dataset_dir / f"{split}.json"
        if not path.is_file():
            raise InputError(
                f"dataset {dataset_dir}: no {split}.json; expected the output folder of 'hpaseg propagate'",
                param="dataset",
            )
        coco, changed = relabel_coco(io.read_json(path), cell_labels, str(labels_csv))
        outputs[split] = coco
        n_cells += len({(a["image_id"], a["cell_id"]) for a in coco["annotations"]})
        n_changed += changed
    cells = io.read_table(dataset_dir / "cells.csv", CELLS_TABLE_HEADER)
    cells["Label"] = [io.format_labels(cell_labels[i][int(c)]) for i, c in zip(cells["ID"], cells["cell"])]
    summary = {
        "source": str(dataset_dir.resolve()),
        "labels": str(Path(labels_csv).resolve()),
        "cells": n_cells,
        "changed": n_changed,
    }
    for split, coco in outputs.items():
        io.write_json(out_dir / f"{split}.json", coco)
    io.write_table(out_dir / "cells.csv", pd.DataFrame(cells[list(CELLS_TABLE_HEADER)]))
    io.write_json(out_dir / "relabel.json", summary, indent=2)
    return summary
