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
