"""Tests of hpaseg.io: reading channels (8/16-bit, tif, tif.gz, jpg), CSV tables, masks, atomic writes."""

from __future__ import annotations

import pandas as pd
import pytest

from hpaseg import io


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with io.atomic_write(target) as fh:
            fh.write("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_write(target) as fh:
            fh.write("new")
            raise RuntimeError("boom")
    assert target.read_text() == "old"


def test_atomic_write_gives_normal_file_mode(tmp_path):
    import os

    io.write_table(tmp_path / "a.csv", pd.DataFrame({"x": [1]}))
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.csv").stat().st_mode & 0o777 == 0o666 & ~mask
