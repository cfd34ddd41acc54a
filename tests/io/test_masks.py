"""Tests of hpaseg.io: reading channels (8/16-bit, tif, tif.gz, jpg), CSV tables, masks, atomic writes."""

from __future__ import annotations

import numpy as np
from PIL import Image

from hpaseg import io


def test_mask_round_trip_16bit(tmp_path):
    mask = np.zeros((20, 30), np.int32)
    mask[2:5, 3:9] = 700
    mask[10:, 20:] = 3
    io.write_mask_pair(tmp_path, "x", mask, mask)
    cell_path, _ = io.mask_paths(tmp_path, "x")
    assert np.asarray(Image.open(cell_path)).dtype == np.uint16
    cell, nuc = io.read_mask_pair(tmp_path, "x")
    np.testing.assert_array_equal(cell, mask)
