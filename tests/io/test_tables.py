"""Tests of hpaseg.io: reading channels (8/16-bit, tif, tif.gz, jpg), CSV tables, masks, atomic writes."""

from __future__ import annotations

import pytest

from hpaseg import io
from hpaseg.errors import InputError


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty file"),
        ("ID,Label\n", "no rows"),
        ("Id,Labels\na,1\n", "missing column"),
        ("ID,Label\na,1|19\n", r"line 2: label '19' is outside 0-18"),
        ("ID,Label\na,1\nb,x\n", r"line 3: label 'x' is not an integer"),
        ("ID,Label\na,1\na,2\n", r"line 3: duplicate ID 'a'"),
        ("ID,Label\na,\n", r"line 2: empty label"),
        ("ID,Label\na,1,2\n", r"line 2: expected 2 fields"),
    ],
)
def test_bad_labels_csv(tmp_path, content, message):
    path = tmp_path / "train.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        io.read_labels_csv(path)
    assert str(path) in str(info.value)


def test_labels_csv_round_trip(tmp_path):
    labels = {"a": (0, 16), "b": (18,)}
    io.write_labels_csv(tmp_path / "t.csv", labels)
    assert io.read_labels_csv(tmp_path / "t.csv") == labels


def test_csv_reader_takes_very_long_fields(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("ID,Label\n" + "a" * 300_000 + ",1\n")
    assert list(io.read_labels_csv(path)) == ["a" * 300_000]


def test_cell_probabilities_csv_round_trip_and_bad_rows(tmp_path):
    import numpy as np

    probs = {"a": {2: np.linspace(0, 1, 19), 1: np.full(19, 0.25)}, "b": {7: np.zeros(19)}}
    path = tmp_path / "p.csv"
    io.write_cell_probabilities_csv(path, probs)
    back = io.read_cell_probabilities_csv(path)
    assert set(back) == {"a", "b"} and set(back["a"]) == {1, 2}
    assert np.allclose(back["a"][2], probs["a"][2], atol=1e-6) and np.array_equal(back["b"][7], np.zeros(19))
    header = "ID,cell," + ",".join(io.PROBABILITY_COLUMNS)
    for row, message in (
        ("a,1," + ",".join(["0.5"] * 18 + ["1.5"]), r"line 2: probability '1.5'"),
        ("a,0," + ",".join(["0.5"] * 19), r"line 2: cell '0'"),
        ("a,1," + ",".join(["nan"] * 19), r"line 2: probability 'nan'"),
    ):
        path.write_text(f"{header}\n{row}\n")
        with pytest.raises(InputError, match=message):
            io.read_cell_probabilities_csv(path)
    path.write_text("ID,cell,p0\na,1,0.5\n")
    with pytest.raises(InputError, match="missing column"):
        io.read_cell_probabilities_csv(path)
