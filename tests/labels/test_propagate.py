"""Tests of hpaseg.labels.propagate: weak labels to cells, COCO files, splits."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from pycocotools.coco import COCO

from hpaseg import io
from hpaseg.cli.propagate import main
from hpaseg.labels import cell_records, split_image_ids


def _mask(h=48, w=64, shift=0):
    m = np.zeros((h, w), np.int32)
    m[0:10, 0:12] = 1  # touches the border
    m[15:30, 15 + shift : 35 + shift] = 2
    m[32:40, 40:50] = 3
    m[20:22, 50:52] = 4  # 4 px
    return m


@pytest.fixture()
def dataset(tmp_path):
    masks = tmp_path / "masks"
    data = tmp_path / "data"
    labels = {f"img{i}": ((0, 16) if i % 2 else (5,)) for i in range(10)}
    for i, image_id in enumerate(labels):
        m = _mask(shift=i % 3)
        io.write_mask_pair(masks, image_id, m, (m > 0).astype(np.int32) * m)
        io.write_rgby(data, image_id, np.zeros((48, 64, 4), np.uint8))
    io.write_labels_csv(tmp_path / "train.csv", labels)
    return tmp_path, labels


def test_coco_dataset_readable_by_pycocotools(dataset, capsys):
    root, labels = dataset
    out = root / "ds"
    assert (
        main(
            [
                "--csv",
                str(root / "train.csv"),
                "--masks",
                str(root / "masks"),
                "--data",
                str(root / "data"),
                "--out",
                str(out),
                "--val-fraction",
                "0.2",
                "--quiet",
            ]
        )
        == 0
    )
    assert "propagated labels to 40 cells" in capsys.readouterr().out
    seen_images = {}
    for split in ("train", "val"):
        coco = COCO(str(out / f"{split}.json"))
        for img in coco.dataset["images"]:
            seen_images[img["file_name"]] = split
            cell_mask = io.read_mask(root / "masks" / f"{img['file_name']}_cellmask.png")
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
            expected_labels = labels[img["file_name"]]
            assert len(anns) == 4 * len(expected_labels)  # one annotation per (cell, label)
            for ann in anns:
                np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), cell_mask == ann["cell_id"])
                assert ann["category_id"] - 1 in expected_labels
                assert tuple(ann["labels"]) == expected_labels
                x, y, w, h = ann["bbox"]
                ys, xs = np.nonzero(cell_mask == ann["cell_id"])
                assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
                assert ann["area"] == len(ys)
        assert [c["name"] for c in coco.dataset["categories"]][0] == "Nucleoplasm"
    assert sorted(seen_images) == sorted(labels)  # every image in exactly one split
    assert list(seen_images.values()).count("val") == 2
    rows = list(csv.DictReader(open(out / "cells.csv")))
    assert len(rows) == 40 and set(rows[0]) == {"ID", "split", "cell", "x", "y", "width", "height", "area", "Label"}
    assert {r["ID"]: r["split"] for r in rows} == seen_images


def test_drop_border_and_min_area(dataset):
    root, _ = dataset
    out = root / "ds"
    assert (
        main(
            [
                "--csv",
                str(root / "train.csv"),
                "--masks",
                str(root / "masks"),
                "--out",
                str(out),
                "--drop-border",
                "--min-cell-area-px",
                "5",
                "--quiet",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(out / "cells.csv")))
    assert sorted({r["cell"] for r in rows}) == ["2", "3"]
    summary = io.read_json(out / "propagate.json")
    assert summary["cells_dropped"] == 20 and summary["cells"] == 20


def test_cell_records_non_contiguous_ids():
    m = np.zeros((5, 5), np.int32)
    m[1:3, 1:3] = 7
    (rec,) = cell_records("x", m, [3, 1, 3])
    assert rec.cell == 7 and rec.labels == (1, 3) and rec.area == 4 and not rec.touches_border


def test_split_is_deterministic_and_disjoint():
    ids = [f"i{k}" for k in range(50)]
    a = split_image_ids(ids, val_fraction=0.2, seed=3)
    assert a == split_image_ids(list(reversed(ids)), val_fraction=0.2, seed=3)
    assert not set(a[0]) & set(a[1]) and len(a[1]) == 10
    assert split_image_ids(ids, val_fraction=0.2, seed=4) != a
