"""Tests of hpaseg.predict: detections -> cells -> submission, on hand-made tensors and a real tiny model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hpaseg import io, predict
from hpaseg.predict import CellPrediction, PostprocessConfig, cell_labels, compose_label_image, group_detections
from hpaseg.submission import decode_mask, read_submission, validate_submission


def _det(boxes, labels, scores, masks):
    return torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels), torch.tensor(scores), torch.stack(masks)[:, None]


def _square(y0, y1, x0, x1, size=20, value=0.9):
    m = torch.zeros(size, size)
    m[y0:y1, x0:x1] = value
    return m


def test_group_detections_merges_classes_of_one_cell():
    a, a2, b = _square(2, 10, 2, 10), _square(2, 10, 3, 10), _square(12, 18, 12, 18)
    boxes, labels, scores, masks = _det([[2, 2, 10, 10], [3, 2, 10, 10], [12, 12, 18, 18]], [1, 17, 14], [0.9, 0.6, 0.8], [a, a2, b])
    cells = group_detections(boxes, labels, scores, masks)
    assert [c.scores for c in cells] == [{0: pytest.approx(0.9), 16: pytest.approx(0.6)}, {13: pytest.approx(0.8)}]
    # Detections below min_score are dropped.
    assert len(group_detections(boxes, labels, torch.tensor([0.9, 0.6, 0.01]), masks)) == 1


def test_compose_label_image_each_pixel_one_cell_and_upsampling():
    big = CellPrediction(_square(2, 12, 2, 12), (2, 2, 12, 12), {0: 0.9})
    overlapping = CellPrediction(_square(8, 16, 8, 16), (8, 8, 16, 16), {5: 0.5})
    labels, kept = compose_label_image([big, overlapping], (20, 20), (40, 40))
    assert labels.shape == (40, 40) and kept == [0, 1]
    assert set(np.unique(labels)) == {0, 1, 2}
    assert labels[20, 20] == 1  # overlap goes to the higher score
    assert labels[28, 28] == 2
    assert (labels == 1).sum() == pytest.approx(20 * 20, rel=0.1)  # 10x10 at working size -> ~20x20
    # A cell that loses most of its pixels is dropped.
    swallowed = CellPrediction(_square(3, 11, 3, 11), (3, 3, 11, 11), {1: 0.2})
    labels, kept = compose_label_image([big, swallowed], (20, 20), (20, 20))
    assert kept == [0] and set(np.unique(labels)) == {0, 1}


def test_cell_labels_negative_rule():
    config = PostprocessConfig(min_score=0.05, negative_threshold=0.3)
    assert cell_labels({0: 0.9, 16: 0.4}, config) == [(0, 0.9), (16, 0.4)]
    assert cell_labels({16: 0.1}, config) == [(18, 0.9), (16, 0.1)]
    assert cell_labels({18: 0.95, 3: 0.1}, config) == [(18, 0.95), (3, 0.1)]


def test_predict_cli_writes_valid_submission_and_masks(trained_run, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    masks = tmp_path / "pred_masks"
    argv = ["--backbone", "densenet121", "--weights", str(trained_run / "model_final.pth"), "--data", str(tiny_dataset["test"]), "--out", str(out), "--device", "cpu", "--save-masks", str(masks), "--quiet"]
    assert predict.main(argv) == 0
    assert "-> " in capsys.readouterr().out
    report = validate_submission(out, tiny_dataset["test"])
    assert report.n_images == 2
    rows = {r.image_id: r for r in read_submission(out)}
    for image_id, row in rows.items():
        assert (row.height, row.width) == io.read_image_size(tiny_dataset["test"], image_id)  # original resolution
        label_image = io.read_mask(masks / f"{image_id}_cellmask.png")
        for p in row.predictions[:5]:
            m = decode_mask(p.mask, row.height, row.width)
            cell = np.unique(label_image[m])
            assert len(cell) == 1 and cell[0] > 0  # every mask is exactly one saved cell
    assert (masks / "cells.csv").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--backbone", "resnet101_fpn"], "trained with backbone 'densenet121', not --backbone 'resnet101_fpn'"),
        (["--backbone", "alexnet"], "--backbone 'alexnet': unknown backbone"),
        (["--engine", "caffe"], "--engine 'caffe'"),
    ],
)
def test_predict_bad_model_options(trained_run, tiny_dataset, tmp_path, capsys, extra, message):
    out = tmp_path / "sub.csv"
    assert predict.main(["--weights", str(trained_run / "model_final.pth"), "--data", str(tiny_dataset["test"]), "--out", str(out), "--device", "cpu", "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_predict_missing_weights_and_wrong_weights(trained_run, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    assert predict.main(["--weights", str(tmp_path / "none.pth"), "--data", str(tiny_dataset["test"]), "--out", str(out), "--quiet"]) == 2
    assert "none.pth: no such file" in capsys.readouterr().err
    other = torch.load(trained_run / "model_final.pth", map_location="cpu", weights_only=False)
    other["model"] = {k: v for k, v in list(other["model"].items())[:-3]}
    torch.save(other, tmp_path / "broken.pth")
    assert predict.main(["--weights", str(tmp_path / "broken.pth"), "--data", str(tiny_dataset["test"]), "--out", str(out), "--device", "cpu", "--quiet"]) == 2
    assert "weights do not fit backbone 'densenet121'" in capsys.readouterr().err
    assert not out.exists()


def test_predict_channels_of_different_sizes(trained_run, tiny_dataset, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset["test"], data)
    image_id = io.list_image_ids(data)[0]
    from PIL import Image

    Image.fromarray(np.zeros((100, 128), np.uint8)).save(data / f"{image_id}_yellow.png")
    out = tmp_path / "sub.csv"
    assert predict.main(["--weights", str(trained_run / "model_final.pth"), "--data", str(data), "--out", str(out), "--device", "cpu", "--quiet"]) == 2
    assert "all four channels of an image must have the same size" in capsys.readouterr().err
    assert not out.exists()
