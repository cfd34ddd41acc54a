"""Tests of the ``hpaseg visualize`` CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpaseg import cli, io
from hpaseg.cli import visualize as visualize_cli
from hpaseg.submission import (
    read_submission,
    write_submission,
)


@pytest.fixture(scope="module")
def cli_inputs(tiny_dataset, tmp_path_factory) -> dict[str, Path]:
    """Predicted cells for the tiny test images: the true masks with noisy labels
    (no model needed), and weak labels for the test images from hpaseg propagate."""
    from hpaseg.cli import propagate as propagate_cli

    root = tmp_path_factory.mktemp("viz_cli")
    data = tiny_dataset["data"]
    rows = io.read_table(data / "cell_labels.csv", ["ID", "split", "cell", "Label"]).to_dict("records")
    rng = np.random.default_rng(0)
    cells, image_labels = [], {}
    for r in rows:
        if r["split"] != "test":
            continue
        labs = io.parse_labels(r["Label"])
        image_labels.setdefault(r["ID"], set()).update(labs)
        cells += [[r["ID"], r["cell"], k, f"{rng.uniform(0.2, 1):.3f}"] for k in labs]
    io.write_table(root / "cells.csv", pd.DataFrame(cells, columns=["ID", "cell", "label", "confidence"]))
    io.write_labels_csv(root / "test_labels.csv", image_labels)
    assert (
        propagate_cli.main(
            [
                "--csv",
                str(root / "test_labels.csv"),
                "--masks",
                str(tiny_dataset["masks"]),
                "--out",
                str(root / "weak"),
                "--quiet",
            ]
        )
        == 0
    )
    return {"root": root, "cells": root / "cells.csv", "weak": root / "weak" / "cells.csv", "ids": sorted(image_labels)}


def test_cli_writes_overlays_from_masks_and_from_submission(tiny_dataset, cli_inputs, tmp_path, capsys):
    data = tiny_dataset["data"]
    out = tmp_path / "out"
    ids = cli_inputs["ids"]
    argv = [
        "--data",
        str(tiny_dataset["test"]),
        "--masks",
        str(tiny_dataset["masks"]),
        "--cells",
        str(cli_inputs["cells"]),
        "--weak-labels",
        str(cli_inputs["weak"]),
        "--truth",
        str(data / "truth.csv"),
        "--ids",
        *ids,
        "--out",
        str(out),
    ]
    assert cli.main(["visualize", *argv]) == 0
    assert "wrote 2 overlay(s)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [f"{i}_overlay.png" for i in ids]
    from PIL import Image

    with Image.open(out / f"{ids[0]}_overlay.png") as img:
        width, height = img.size
    assert width > 2 * height  # three panels side by side
    # the same from a submission CSV (the truth stands in for a prediction)
    out2 = tmp_path / "out2"
    assert (
        visualize_cli.main(
            [
                "--data",
                str(tiny_dataset["test"]),
                "--submission",
                str(data / "truth.csv"),
                "--ids",
                ids[0],
                "--out",
                str(out2),
                "--pixel-size-um",
                "0.5",
            ]
        )
        == 0
    )
    assert (out2 / f"{ids[0]}_overlay.png").is_file()


def _bad(capsys, argv) -> str:
    assert visualize_cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hpaseg visualize: error: ") and "\n" not in err
    return err


def test_cli_bad_input_one_line_exit_2_nothing_written(tiny_dataset, cli_inputs, tmp_path, capsys):
    test, masks, data = tiny_dataset["test"], tiny_dataset["masks"], tiny_dataset["data"]
    ids = cli_inputs["ids"]
    out = tmp_path / "out"
    base = ["--data", str(test), "--out", str(out)]
    assert "image 'nope' is not in" in _bad(
        capsys, base + ["--masks", str(masks), "--cells", str(cli_inputs["cells"]), "--ids", "nope"]
    )
    assert "no such file" in _bad(capsys, base + ["--masks", str(tmp_path / "none"), "--ids", ids[0]])
    assert "one of the arguments --masks --submission is required" in _bad(capsys, base + ["--ids", ids[0]])
    assert "not allowed with argument" in _bad(
        capsys, base + ["--masks", str(masks), "--submission", str(data / "truth.csv"), "--ids", ids[0]]
    )
    one_row = tmp_path / "one_row.csv"
    write_submission(one_row, [r for r in read_submission(data / "truth.csv") if r.image_id == ids[0]])
    assert f"no row for image '{ids[1]}'" in _bad(capsys, base + ["--submission", str(one_row), "--ids", ids[1]])
    assert f"--truth {one_row}: no row for image '{ids[1]}'" in _bad(
        capsys, base + ["--submission", str(data / "truth.csv"), "--truth", str(one_row), "--ids", ids[1]]
    )
    # a mask of the wrong size, for the second image: nothing written for the first either
    wrong = tmp_path / "wrong_masks"
    for i in ids:
        mask = io.read_mask(io.mask_paths(masks, i)[0])
        io.write_mask_png(io.mask_paths(wrong, i)[0], mask if i == ids[0] else mask[:-8])
    err = _bad(capsys, base + ["--masks", str(wrong), "--cells", str(cli_inputs["cells"]), "--ids", *ids])
    assert f"mask is 120x128 px but image '{ids[1]}'" in err and "original resolution" in err
    # weak labels for images that have none
    err = _bad(
        capsys,
        base
        + [
            "--masks",
            str(masks),
            "--cells",
            str(cli_inputs["cells"]),
            "--weak-labels",
            str(tiny_dataset["dataset"] / "cells.csv"),
            "--ids",
            ids[0],
        ],
    )
    assert f"no cells of image '{ids[0]}'" in err
    assert not out.exists()
