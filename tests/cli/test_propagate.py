"""Tests of the ``hpaseg propagate`` CLI."""

from __future__ import annotations

import numpy as np
import pytest

from hpaseg import io
from hpaseg.cli.propagate import main


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


def _run_bad(root, capsys, extra, message):
    out = root / "ds"
    code = main(
        ["--csv", str(root / "train.csv"), "--masks", str(root / "masks"), "--out", str(out), "--quiet", *extra]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("hpaseg propagate: error:")
    assert message in err, err
    assert not out.exists()


def test_missing_mask(dataset, capsys):
    root, _ = dataset
    (root / "masks" / "img3_cellmask.png").unlink()
    _run_bad(root, capsys, [], "img3_cellmask.png: no cell mask for image 'img3'")


def test_mask_and_image_sizes_differ(dataset, capsys):
    root, _ = dataset
    io.write_rgby(root / "data", "img4", np.zeros((40, 64, 4), np.uint8))
    _run_bad(root, capsys, ["--data", str(root / "data")], "img4_cellmask.png: mask is 48x64 px but image 'img4'")


def test_bad_label_row(dataset, capsys):
    root, _ = dataset
    with open(root / "train.csv", "a") as fh:
        fh.write("img99,3|20\n")
    _run_bad(root, capsys, [], "line 12: label '20' is outside 0-18")


def test_empty_csv(dataset, capsys):
    root, _ = dataset
    (root / "train.csv").write_text("")
    _run_bad(root, capsys, [], "train.csv: empty file")


def test_bad_option(dataset, capsys):
    root, _ = dataset
    _run_bad(root, capsys, ["--val-fraction", "1.5"], "--val-fraction 1.5")
    _run_bad(root, capsys, ["--min-cell-area-px", "-1"], "--min-cell-area-px -1")
