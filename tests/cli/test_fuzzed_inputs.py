"""The CLIs that read tables on fuzzed files (hypothesis; the strategies of the readers'
property tests): ``hpaseg validate``, ``hpaseg evaluate``, ``hpaseg submit`` and ``hpaseg
propagate`` exit with 0, or with 2 and exactly one ``hpaseg <stage>: error: ...`` line on
stderr, never a traceback."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hpaseg import io
from hpaseg.cli import evaluate as evaluate_cli
from hpaseg.cli import propagate as propagate_cli
from hpaseg.cli import submit as submit_cli
from hpaseg.cli import validate as validate_cli

from ..fuzzing import FUZZ, check_cli
from ..io.test_fuzz import labels_csv_bytes
from ..submission.test_fuzz import cell_table_bytes, submission_bytes

CLI_FUZZ = settings(FUZZ, max_examples=40)


@CLI_FUZZ
@given(data=st.data())
def test_validate_and_evaluate(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("sub") / "sub.csv"
    path.write_bytes(submission_bytes(data))
    check_cli(validate_cli.main, [str(path)])
    check_cli(evaluate_cli.main, ["--truth", str(path), "--submission", str(path)])


def _masks(folder):
    """Cell masks of images a and b (3x4, cells 1-3), as the fuzzed tables name them."""
    for image_id in ("a", "b"):
        cells = np.array([[1, 1, 0, 2], [1, 0, 2, 2], [3, 3, 0, 2]])
        io.write_mask_pair(folder, image_id, cells, cells)
    return folder


@CLI_FUZZ
@given(data=st.data())
def test_submit_and_propagate(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    masks = _masks(root / "masks")
    (root / "cells.csv").write_bytes(cell_table_bytes(data))
    check_cli(
        submit_cli.main,
        ["--masks", str(masks), "--cells", str(root / "cells.csv"), "--out", str(root / "s.csv"), "--quiet"],
    )
    (root / "train.csv").write_bytes(labels_csv_bytes(data))
    check_cli(
        propagate_cli.main,
        ["--csv", str(root / "train.csv"), "--masks", str(masks), "--out", str(root / "dataset"), "--quiet"],
    )
