"""Tests of hpaseg.detection.data: one training instance per cell with multi-hot labels."""

from __future__ import annotations

import numpy as np
import torch

from hpaseg.detection import CellDataset, target_from_cells
from hpaseg.labels import load_coco_split


def test_one_instance_per_cell_with_multi_hot_labels():
    cells = np.zeros((20, 30), np.int32)
    cells[2:8, 3:10] = 4  # three labels
    cells[10:18, 12:29] = 9  # one label
    cells[0, 29] = 5  # a cell of a single pixel, no label
    target = target_from_cells(cells, {4: (0, 5, 16), 9: (18,), 5: (), 7: (2,)})  # cell 7 lost in resizing
    assert len(target["boxes"]) == len(target["labels"]) == len(target["masks"]) == len(target["multilabels"]) == 3
    assert target["labels"].tolist() == [1, 1, 1]  # class-agnostic
    assert target["boxes"].tolist() == [[3.0, 2.0, 10.0, 8.0], [12.0, 10.0, 29.0, 18.0], [29.0, 0.0, 30.0, 1.0]]
    assert target["multilabels"].shape == (3, 19) and target["multilabels"].dtype == torch.float32
    assert [row.nonzero().flatten().tolist() for row in target["multilabels"]] == [[0, 5, 16], [18], []]
    assert target["masks"].dtype == torch.uint8
    assert [int(m.sum()) for m in target["masks"]] == [42, 136, 1]
    for mask, cell in zip(target["masks"], (4, 9, 5)):
        assert np.array_equal(mask.numpy().astype(bool), cells == cell)


def test_no_cell_gives_empty_targets():
    target = target_from_cells(np.zeros((6, 5), np.int32), {3: (1,)})
    assert target["boxes"].shape == (0, 4) and target["masks"].shape == (0, 6, 5)
    assert target["multilabels"].shape == (0, 19) and target["labels"].shape == (0,)


def test_dataset_items_follow_the_coco_cells(tiny_dataset):
    from hpaseg.labels import build_cache, cache_folder

    records = [r for r in load_coco_split(tiny_dataset["dataset"] / "train.json") if r.cells]
    cache = cache_folder(tiny_dataset["dataset"], 64)
    build_cache(records, tiny_dataset["train"], cache, 64, progress=False)
    image, target = CellDataset(records, cache, augment=True)[0]
    assert image.shape[0] == 4 and image.dtype == torch.float32
    record = records[0]
    assert len(target["boxes"]) <= len(record.cells)  # one per cell, never one per (cell, label)
    assert target["multilabels"].sum() <= sum(len(v) for v in record.cells.values())


def test_teacher_probabilities_follow_the_cells_and_nan_for_cells_without():
    cells = np.zeros((20, 30), np.int32)
    cells[2:8, 3:10] = 4
    cells[10:18, 12:29] = 9
    teacher = {4: np.linspace(0.0, 1.0, 19)}
    target = target_from_cells(cells, {4: (0,), 9: (18,), 7: (2,)}, teacher)
    assert target["label_probs"].shape == (2, 19)
    assert np.allclose(target["label_probs"][0].numpy(), teacher[4]) and bool(target["label_probs"][1].isnan().all())
    assert "label_probs" not in target_from_cells(cells, {4: (0,), 9: (18,)})


def test_dataset_items_carry_the_teachers_probabilities(tiny_dataset):
    from hpaseg.labels import build_cache, cache_folder

    records = [r for r in load_coco_split(tiny_dataset["dataset"] / "train.json") if r.cells]
    cache = cache_folder(tiny_dataset["dataset"], 64)
    build_cache(records, tiny_dataset["train"], cache, 64, progress=False)
    record = records[0]
    teacher = {record.image_id: {c: np.full(19, 0.01 * c) for c in record.cells}}
    _, target = CellDataset(records, cache, teacher=teacher)[0]
    assert len(target["label_probs"]) == len(target["boxes"])
    # each instance's row is its own cell's (the rows differ per cell), in the order of the instances
    assert sorted(round(float(v), 4) for v in target["label_probs"][:, 0]) == sorted(
        round(0.01 * c, 4) for c in record.cells if c in np.unique(CellDataset(records, cache).load(0)[1])
    )
