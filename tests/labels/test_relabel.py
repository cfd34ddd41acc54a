"""hpaseg.labels.relabel: cleaned cell labels written back into a dataset."""

from __future__ import annotations

import pytest

from hpaseg import io
from hpaseg.errors import InputError
from hpaseg.labels import load_coco_split, relabel_dataset


def _all_cells(dataset) -> dict[str, dict[int, tuple[int, ...]]]:
    return {r.image_id: dict(r.cells) for s in ("train", "val") for r in load_coco_split(dataset / f"{s}.json")}


def test_relabel_replaces_each_cells_labels_and_keeps_masks_and_split(tiny_dataset, tmp_path):
    cells = _all_cells(tiny_dataset["dataset"])
    image_id = sorted(cells)[0]
    first = sorted(cells[image_id])[0]
    new = {i: dict(c) for i, c in cells.items()}
    new[image_id][first] = (18,)
    io.write_cell_labels_csv(tmp_path / "labels.csv", new)
    summary = relabel_dataset(tiny_dataset["dataset"], tmp_path / "labels.csv", tmp_path / "out")
    assert summary["changed"] == (cells[image_id][first] != (18,))
    assert summary["cells"] == sum(len(c) for c in cells.values())
    assert _all_cells(tmp_path / "out") == new
    for split in ("train", "val"):
        before = {r.image_id: r.rles for r in load_coco_split(tiny_dataset["dataset"] / f"{split}.json")}
        after = {r.image_id: r.rles for r in load_coco_split(tmp_path / "out" / f"{split}.json")}
        assert before == after
    table = io.read_cell_labels_csv(tmp_path / "out" / "cells.csv")
    assert table[image_id][first] == (18,)


def test_a_cell_without_labels_is_named(tiny_dataset, tmp_path):
    cells = _all_cells(tiny_dataset["dataset"])
    image_id = sorted(cells)[0]
    missing = sorted(cells[image_id])[-1]
    del cells[image_id][missing]
    io.write_cell_labels_csv(tmp_path / "labels.csv", cells)
    with pytest.raises(InputError, match=f"no labels for cell {missing} of image '{image_id}'"):
        relabel_dataset(tiny_dataset["dataset"], tmp_path / "labels.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cell_label_tables_are_read_strictly(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("ID,cell,Label\na,1,0|5\na,1,3\n")
    with pytest.raises(InputError, match="line 3: cell 1 of image 'a' listed twice"):
        io.read_cell_labels_csv(path)
    path.write_text("ID,cell,Label\na,x,0\n")
    with pytest.raises(InputError, match="line 2: cell 'x'"):
        io.read_cell_labels_csv(path)
