"""Tests of hpaseg.viz: colours, drawn cells, evaluation figures, feature maps, the classifier study's figures."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hpaseg import io
from hpaseg.classes import CLASS_NAMES, NUM_CLASSES
from hpaseg.errors import InputError
from hpaseg.evaluation import study


def _write_csv(path: Path, header, rows) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture()
def ablation_dir(tmp_path) -> Path:
    """A tiny results folder in the exact format of ``hpaseg ablation``."""
    configs = ["resnet50-bce-standard", "resnet50-focal-cutmix", "efficientnet_b0-bce-standard"]
    _write_csv(
        tmp_path / "results.csv",
        study.RESULTS_COLUMNS,
        [
            [c, "image", c.split("-")[0], c.split("-")[1], c.split("-")[2], "rgby", 64, 2, f1, f1t, ap, 12.5]
            for c, f1, f1t, ap in zip(configs, ["0.21", "0.35", "0.1"], ["0.3", "", "0.2"], ["0.4", "0.55", "0.25"])
        ],
    )
    _write_csv(
        tmp_path / "per_class_ap.csv",
        study.PER_CLASS_AP_COLUMNS,
        [
            [c, k, CLASS_NAMES[k], "" if k in (3, 11) else f"{(i + k) % 10 / 10:.2f}"]
            for i, c in enumerate(configs)
            for k in range(NUM_CLASSES)
        ],
    )
    _write_csv(
        tmp_path / "confusion.csv",
        study.CONFUSION_COLUMNS,
        [[c, k, CLASS_NAMES[k], 20, k % 3, 1, k % 4] for c in configs for k in range(NUM_CLASSES)],
    )
    return tmp_path


def test_ablation_bad_rows_name_file_and_line(ablation_dir):
    path = _write_csv(
        ablation_dir / "bad.csv",
        study.RESULTS_COLUMNS,
        [["a", "image", "b", "bce", "standard", "rgby", 64, 2, "0.1", "0.2", "high", 1]],
    )
    with pytest.raises(InputError, match=r"bad.csv, line 2: macro_ap 'high'; expected a number"):
        study.ablation_results(io.read_table(path, study.RESULTS_COLUMNS), source=str(path))
    row = ["a", "image", "b", "bce", "standard", "rgby", 64, 2, "0.1", "0.2", "0.3", 1]
    path = _write_csv(ablation_dir / "dup.csv", study.RESULTS_COLUMNS, [row, row])
    with pytest.raises(InputError, match="line 3: configuration 'a' already on line 2"):
        study.ablation_results(io.read_table(path, study.RESULTS_COLUMNS))
