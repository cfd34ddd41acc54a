"""The real Kaggle HPA fields (../shared/data/hpa_kaggle_fields: four fields of 2048 px
with HPA-Cell-Segmentation's cell masks and their image labels) through the whole
pipeline, command by command as a user runs it: HPA's masks read as precomputed cells
(nuclei from the blue channel) -> propagate -> classify (cell level, the CPU default) ->
predict -> submission -> validate; the built-in segmenter's masks through the same
prediction; and an overlay of a real field rendered from the submission."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from hpaseg import io
from hpaseg.cli import classify, predict, propagate, segment, validate
from hpaseg.submission import read_submission
from hpaseg.viz import CellPanel, cells_from_submission_row, plot_cell_panels
from hpaseg.viz.images import figure_to_rgb

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_run(shared_data, tmp_path_factory) -> dict[str, Path]:
    """The fields copied into a Kaggle layout, segmented both ways, propagated, and a cell
    classifier trained on them (descriptors, a few epochs: this checks the plumbing on real
    fields, not accuracy)."""
    fields = shared_data / "hpa_kaggle_fields"
    root = tmp_path_factory.mktemp("real")
    data, hpa = root / "data", root / "hpa_masks"
    data.mkdir()
    hpa.mkdir()
    for path in fields.glob("*.png"):
        shutil.copy(path, (hpa if path.name.endswith("_cellmask.png") else data) / path.name)
    shutil.copy(fields / "train.csv", root / "train.csv")
    paths = {"root": root, "data": data, "csv": root / "train.csv"}
    paths["masks"] = root / "masks"  # HPA-Cell-Segmentation's masks, read as precomputed
    argv = ["--data", data, "--out", paths["masks"], "--method", "precomputed", "--precomputed", hpa]
    assert segment.main([str(a) for a in [*argv, "--nuclei-from", "blue", "--quiet"]]) == 0
    paths["watershed"] = root / "watershed"
    assert segment.main([str(a) for a in ["--data", data, "--out", paths["watershed"], "--quiet"]]) == 0
    paths["dataset"] = root / "dataset"
    argv = ["--csv", paths["csv"], "--masks", paths["masks"], "--data", data, "--out", paths["dataset"]]
    assert propagate.main([str(a) for a in [*argv, "--val-fraction", "0.25", "--quiet"]]) == 0
    paths["run"] = root / "run"
    argv = ["--level", "cell", "--dataset", paths["dataset"], "--data", data, "--masks", paths["masks"]]
    argv += ["--out", paths["run"], "--epochs", "5", "--refine-rounds", "1", "--device", "cpu", "--quiet"]
    assert classify.main([str(a) for a in argv]) == 0
    return paths


def _predict(real_run, masks: Path, out: Path) -> list:
    argv = ["--classifier", real_run["run"], "--masks", masks, "--data", real_run["data"], "--out", out]
    assert predict.main([str(a) for a in [*argv, "--device", "cpu", "--quiet"]]) == 0
    assert validate.main([str(out), "--data", str(real_run["data"]), "--quiet"]) == 0
    return read_submission(out)


def test_real_fields_end_to_end_with_hpa_masks(real_run, tmp_path):
    ids = io.list_image_ids(real_run["data"])
    assert len(ids) == 4
    dataset = real_run["dataset"] / "propagate.json"
    assert io.read_json(dataset)["images"] == {"train": 3, "val": 1}
    eval_json = io.read_json(real_run["run"] / "eval.json")
    assert eval_json["backbone"] == "descriptors" and eval_json["level"] == "cell"
    rows = _predict(real_run, real_run["masks"], tmp_path / "submission.csv")
    assert sorted(r.image_id for r in rows) == ids
    for row in rows:
        image = io.read_rgby(real_run["data"], row.image_id)
        assert (row.height, row.width) == image.shape[:2]
        cells, classes = cells_from_submission_row(row)
        reference = io.read_mask(real_run["masks"] / f"{row.image_id}_cellmask.png")
        # every cell of HPA's mask is predicted, with its own mask, and every class ranked
        assert len(np.unique(cells)) - 1 == len(np.unique(reference)) - 1 == len(classes)
        assert all(len(pairs) == 19 for pairs in classes.values())
        assert np.array_equal(cells > 0, reference > 0)


def test_real_fields_builtin_segmentation_and_overlay(real_run, tmp_path):
    rows = _predict(real_run, real_run["watershed"], tmp_path / "submission.csv")
    row = max(rows, key=lambda r: r.width)  # the largest field
    cells, classes = cells_from_submission_row(row)
    assert len(classes) >= 5
    image = io.read_rgby(real_run["data"], row.image_id)
    hpa = io.read_mask(real_run["masks"] / f"{row.image_id}_cellmask.png")
    figure = plot_cell_panels(
        image,
        [
            CellPanel("HPA-Cell-Segmentation cells", hpa, {}),
            CellPanel("built-in cells, classifier labels", cells, classes),
        ],
        title=row.image_id,
    )
    rgb = figure_to_rgb(figure)
    path = Path(os.environ.get("HPASEG_TEST_OVERLAYS", tmp_path)) / f"overlay_{row.image_id}.png"
    io.write_rgb_png(path, rgb)
    assert rgb.ndim == 3 and rgb.shape[1] > 800 and path.stat().st_size > 50_000
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 1000  # a rendered field, not a blank canvas
