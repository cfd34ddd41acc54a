"""Tests of hpaseg.submission: encoding, RLE parsing, building rows, reading and writing, on tiny masks and the real 21-cell mask."""

from __future__ import annotations

import numpy as np
import pytest

from hpaseg.errors import InputError
from hpaseg.submission import (
    CellLabel,
    build_submission,
    encode_binary_mask,
    read_cell_labels,
)


def test_build_submission_encodes_each_cell_once_in_table_order():
    mask = np.array([[1, 1, 0, 2], [0, 3, 3, 2], [0, 3, 0, 0]])
    cells = [
        CellLabel("a", 3, 16, 0.25),
        CellLabel("a", 1, 0, 0.5),
        CellLabel("a", 3, 0, 1.0),
    ]
    rows = build_submission(iter([("a", mask), ("b", mask[:2])]), cells)
    assert [(r.image_id, r.width, r.height) for r in rows] == [("a", 4, 3), ("b", 4, 2)]
    assert rows[1].predictions == []
    assert [(p.label, p.confidence) for p in rows[0].predictions] == [(16, 0.25), (0, 0.5), (0, 1.0)]
    assert rows[0].predictions[0].mask == rows[0].predictions[2].mask == encode_binary_mask(mask == 3)
    assert rows[0].predictions[1].mask == encode_binary_mask(mask == 1)


@pytest.mark.parametrize(
    "cells, images, message",
    [
        (
            [CellLabel("a", 4, 0, 0.5, "c.csv, line 2")],
            None,
            "c.csv, line 2: cell 4 is not in the mask of image 'a' (2 cells, ids 1-2)",
        ),
        ([CellLabel("a", 1, 19, 0.5, "c.csv, line 2")], None, "c.csv, line 2: label 19 is outside 0-18"),
        ([CellLabel("a", 1, 0, 1.5, "c.csv, line 2")], None, "c.csv, line 2: confidence 1.5"),
        ([CellLabel("a", 1, 0, float("nan"), "L")], None, "L: confidence nan"),
        ([CellLabel("a", 0, 0, 0.5, "L")], None, "L: cell 0"),
        (
            [CellLabel("a", 1, 0, 0.5, "L2"), CellLabel("a", 1, 0, 0.7, "L3")],
            None,
            "L3: duplicate row for image 'a', cell 1, label 0 (first at L2)",
        ),
        ([CellLabel("z", 1, 0, 0.5, "L")], None, "L: no mask was given for image 'z'"),
        ([], [("a", np.ones((2, 2), int)), ("a", np.ones((2, 2), int))], "image 'a' is given twice"),
        ([], [("a", np.ones((2, 2, 1), int))], "expected a 2-D integer label image"),
    ],
)
def test_build_submission_rejects(cells, images, message):
    images = images or [("a", np.array([[1, 2], [0, 2]]))]
    with pytest.raises(InputError) as info:
        build_submission(images, cells)
    assert message in str(info.value)


def test_read_cell_labels(tmp_path):
    path = tmp_path / "cells.csv"
    path.write_text("ID,cell,label,confidence,extra\nimg,3,16,0.9,x\nimg,3,0,1e-3,y\n")
    cells = read_cell_labels(path)
    assert [(c.image_id, c.cell, c.label, c.confidence) for c in cells] == [("img", 3, 16, 0.9), ("img", 3, 0, 0.001)]
    assert cells[1].where == f"{path}, line 3"
    for body, message in [
        ("img,x,0,0.5", "line 2: cell 'x'"),
        ("img,1,-1,0.5", "line 2: label '-1'"),
        ("img,1,1,inf", "line 2: confidence 'inf' is not a number"),
        ("img,1,1,1_0", "line 2: confidence '1_0' is not a number"),
    ]:
        path.write_text(f"ID,cell,label,confidence\n{body}\n")
        with pytest.raises(InputError, match=message):
            read_cell_labels(path)
