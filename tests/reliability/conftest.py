"""Fixtures of the reliability tests: a small synthetic dataset and cell-label tables made
from its true masks, with library calls."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hpaseg import io
from hpaseg.submission import CELL_TABLE_HEADER

from .harness import run_here

#: Images of the ``fields`` dataset: enough for several kill points and two shards.
N_TRAIN, N_TEST = 6, 2


@pytest.fixture(scope="session")
def fields(tmp_path_factory) -> Path:
    """A synthetic dataset (6 train + 2 test images of 128 px, compact style): ``train/``,
    ``test/``, ``masks/`` (true masks), ``train.csv``."""
    from hpaseg.synth import generate_dataset

    root = tmp_path_factory.mktemp("fields") / "data"
    generate_dataset(root, N_TRAIN, N_TEST, 128, 3, progress=False, style="compact")
    return root


@pytest.fixture(scope="session")
def cell_table(fields) -> Path:
    """``ID,cell,label,confidence`` for every true cell of the train images (label and
    confidence derived from the cell id), for ``hpaseg submit``."""
    rows = []
    for image_id in io.mask_image_ids(fields / "masks"):
        if not (fields / "train" / f"{image_id}_green.png").is_file():
            continue
        cells, _ = io.read_mask_pair(fields / "masks", image_id)
        for cell in sorted(set(cells.ravel().tolist()) - {0}):
            rows.append((image_id, cell, cell % 19, f"{(cell % 7 + 1) / 8:.6g}"))
    path = fields.parent / "cells.csv"
    io.write_table(path, pd.DataFrame(rows, columns=list(CELL_TABLE_HEADER)))
    return path


@pytest.fixture(scope="session")
def segmented(fields, tmp_path_factory) -> Path:
    """Masks of an uninterrupted ``hpaseg segment`` of the train images (one worker, unsharded)."""
    out = tmp_path_factory.mktemp("segment") / "masks"
    run_here("segment", "--data", fields / "train", "--out", out, "--quiet")
    return out
