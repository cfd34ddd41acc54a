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


def test_atomic_write_takes_over_the_temporary_file_a_killed_writer_left(tmp_path):
    """A run killed while writing leaves ``.{name}.tmp`` (no process holds its lock); the next
    write of the same file takes it over, so nothing is left behind."""
    target = tmp_path / "sub.csv"
    (tmp_path / ".sub.csv.tmp").write_text("half a submission")
    io.write_table(target, pd.DataFrame({"x": [1]}))
    assert target.read_text() == "x\n1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub.csv"]


def test_atomic_write_leaves_the_temporary_file_of_a_live_writer_alone(tmp_path):
    import fcntl
    import os

    target = tmp_path / "sub.csv"
    busy = tmp_path / ".sub.csv.tmp"
    fd = os.open(busy, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another writer of the same file, still alive
        os.write(fd, b"being written")
        io.write_table(target, pd.DataFrame({"x": [2]}))
        assert target.read_text() == "x\n2\n"
        assert busy.read_bytes() == b"being written"
        assert sorted(p.name for p in tmp_path.iterdir()) == [".sub.csv.tmp", "sub.csv"]
    finally:
        os.close(fd)


def test_concurrent_writers_of_one_file_leave_one_complete_file(tmp_path):
    """Threads (separate open files, as separate processes have) writing one file at once:
    the file holds one complete write and no temporary file is left."""
    from concurrent.futures import ThreadPoolExecutor

    target = tmp_path / "table.csv"
    contents = [f"writer {k}\n" * (1000 + k) for k in range(8)]

    def write(k: int) -> None:
        for _ in range(20):
            with io.atomic_write(target) as fh:
                fh.write(contents[k])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    assert target.read_text() in contents
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]
