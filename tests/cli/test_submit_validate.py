"""Tests of the ``hpaseg submit`` and ``hpaseg validate`` CLIs (strict validation end to end)."""

from __future__ import annotations

import base64
import shutil
import zlib

import numpy as np
import pytest

from hpaseg import io
from hpaseg.cli import submit as submit_cli
from hpaseg.cli import validate as validate_cli
from hpaseg.submission import (
    Prediction,
    build_submission,
    encode_binary_mask,
    encode_counts,
    read_cell_labels,
    read_submission,
    validate_submission,
    write_submission,
)

REAL_ID = "1000_A12_2"


def _coco_string(counts: list[int]) -> bytes:
    """COCO's compressed RLE string of any run lengths, negative ones included (a
    transcription of pycocotools' ``rleToString``), to build malformed masks."""
    out = bytearray()
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(c + 48)
    return bytes(out)


def _assert_one_line_error(capsys, rc, *expected):
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def real_mask(shared_data):
    path = shared_data / "hpa_1000_A12_2" / f"{REAL_ID}_cellmask.png"
    if not path.is_file():
        pytest.skip(f"{path} not found (see shared/data/README.md)")
    return io.read_mask(path)


def _tiny_dataset(tmp_path, sizes=None):
    """Images (RGBY PNGs), masks and a per-cell table for two small images."""
    sizes = sizes or {"img1": (6, 5), "img2": (4, 7)}  # (H, W)
    data, masks = tmp_path / "data", tmp_path / "masks"
    labels = {}
    for n, (image_id, (h, w)) in enumerate(sizes.items()):
        io.write_rgby(data, image_id, np.full((h, w, 4), 10 * n, dtype=np.uint8))
        lab = np.zeros((h, w), dtype=np.int32)
        lab[: h // 2, : w // 2] = 1
        lab[h // 2 :, w // 2 :] = 2
        lab[0, -1] = 3
        io.write_mask_png(masks / f"{image_id}_cellmask.png", lab)
        labels[image_id] = lab
    cells = tmp_path / "cells.csv"
    cells.write_text("ID,cell,label,confidence\nimg1,1,0,0.9\nimg1,1,16,0.4\nimg1,2,5,1\nimg1,3,18,0\n")
    return data, masks, cells, labels


def _valid_submission(tmp_path):
    data, masks, cells, labels = _tiny_dataset(tmp_path)
    out = tmp_path / "sub.csv"
    rows = build_submission(labels.items(), read_cell_labels(cells))
    write_submission(out, rows)
    return data, out, labels


def test_validate_accepts_built_submission(tmp_path, capsys):
    data, out, labels = _valid_submission(tmp_path)
    report = validate_submission(out, data)
    assert (report.n_images, report.n_predictions, report.n_cells, report.n_images_without_predictions) == (2, 4, 3, 1)
    assert validate_cli.main([str(out), "--data", str(data)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == "OK"
    assert "2 images (1 without predictions), 4 predictions, 3 cells" in printed[0]
    assert validate_cli.main([str(out)]) == 0


def _first_mask(out):
    return out.read_text().splitlines()[1].split(",")[3].split(" ")[2]


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda t: t.replace("PredictionString", "Predictions", 1), ["line 1", "header"]),
        (lambda t: t.replace("img2,", "img1,", 1), ["line 3, ID", "already on line 2"]),
        (lambda t: t.replace("img2,", ",", 1), ["line 3, ID", "non-empty"]),
        (lambda t: t.replace("img1,5,6,", "img1,5.0,6,", 1), ["line 2, ImageWidth", "'5.0'"]),
        (lambda t: t.replace("img2,7,4,", "img2,7,0,", 1), ["line 3, ImageHeight", "'0'"]),
        (
            lambda t: t.replace("img1,5,6,0 ", "img1,5,6,19 ", 1),
            ["line 2, PredictionString triple 1 (tokens 1-3), label", "'19'"],
        ),
        (
            lambda t: t.replace(" 0.9 ", " 1.5 ", 1),
            ["line 2, PredictionString triple 1 (tokens 1-3), confidence", "[0, 1]"],
        ),
        (
            lambda t: t.replace(" 0.9 ", " nan ", 1),
            ["line 2, PredictionString triple 1 (tokens 1-3), confidence", "'nan'"],
        ),
        (lambda t: t.replace(" 0.4 ", "  0.4 ", 1), ["line 2, PredictionString", "double space"]),
        (lambda t: t.replace("img2,7,4,", "img2,7,4,0 0.5", 1), ["line 3, PredictionString", "2 tokens"]),
        (lambda t: t.replace("img2,7,4,", "img2,7,4,1,", 1), ["line 3", "5 fields"]),
        (lambda t: t + "\n", ["line 4", "0 fields"]),
    ],
)
def test_validate_cli_rejects_with_one_line(tmp_path, capsys, edit, expected):
    data, out, _ = _valid_submission(tmp_path)
    out.write_text(edit(out.read_text()))
    rc = validate_cli.main([str(out), "--data", str(data)])
    _assert_one_line_error(capsys, rc, "hpaseg validate: error:", str(out), *expected)


def test_validate_rejects_bad_masks(tmp_path, capsys):
    data, out, labels = _valid_submission(tmp_path)
    original = out.read_text()
    mask = _first_mask(out)
    complete = zlib.compress(b"13")
    cases = [
        ("Only base64 data is allowed", "@@@@"),
        ("sum to 15 pixels but the image is 5x6 = 30", encode_binary_mask(np.ones((3, 5), dtype=bool))),
        ("covers no pixel", encode_binary_mask(np.zeros((6, 5), dtype=bool))),
        ("RLE counts byte 1", encode_counts(b" 0")),
        ("has 3 bytes after its end", base64.b64encode(complete + b"xyz").decode()),
        ("is truncated", base64.b64encode(complete[:-3]).decode()),
        ("negative length", encode_counts(_coco_string([31, -1]))),
    ]
    for message, bad in cases:
        out.write_text(original.replace(mask, bad, 1))
        rc = validate_cli.main([str(out)])
        _assert_one_line_error(capsys, rc, str(out), "line 2, PredictionString triple 1 (tokens 1-3), mask", message)


def test_validate_against_data_folder(tmp_path, capsys):
    data, out, _ = _valid_submission(tmp_path)
    original = out.read_text()
    # a row for an image not in the folder
    out.write_text(original + "img9,5,6,\n")
    rc = validate_cli.main([str(out), "--data", str(data)])
    _assert_one_line_error(capsys, rc, "line 4, ID", "'img9' is not an image in")
    # an image of the folder without a row
    out.write_text("\n".join(original.splitlines()[:2]) + "\n")
    rc = validate_cli.main([str(out), "--data", str(data)])
    _assert_one_line_error(capsys, rc, str(out), "no row for 1 image(s)", "'img2'")
    # size differs from the image's
    io.write_rgby(data, "img2", np.zeros((8, 7, 4), dtype=np.uint8))
    out.write_text(original)
    rc = validate_cli.main([str(out), "--data", str(data)])
    _assert_one_line_error(capsys, rc, "line 3, ImageWidth/ImageHeight: 7x4", "is 7x8")
    # missing files and folders
    rc = validate_cli.main([str(tmp_path / "none.csv")])
    _assert_one_line_error(capsys, rc, "none.csv: no such file")
    rc = validate_cli.main([str(out), "--data", str(tmp_path / "nodata")])
    _assert_one_line_error(capsys, rc, "nodata: no such folder")
    rc = validate_cli.main([])
    _assert_one_line_error(capsys, rc, "hpaseg validate: error:", "SUBMISSION")


def test_submit_cli_end_to_end(tmp_path, capsys):
    data, masks, cells, labels = _tiny_dataset(tmp_path)
    out = tmp_path / "out" / "sub.csv"
    assert submit_cli.main(["--masks", str(masks), "--cells", str(cells), "--out", str(out), "--data", str(data)]) == 0
    assert "2 images (1 without predictions), 4 predictions" in capsys.readouterr().out
    rows = read_submission(out)
    assert [(r.image_id, r.width, r.height) for r in rows] == [("img1", 5, 6), ("img2", 7, 4)]
    assert rows[1].predictions == []
    got = [(p.label, p.confidence, p.mask) for p in rows[0].predictions]
    lab = labels["img1"]
    assert got == [
        (0, 0.9, encode_binary_mask(lab == 1)),
        (16, 0.4, encode_binary_mask(lab == 1)),
        (5, 1.0, encode_binary_mask(lab == 2)),
        (18, 0.0, encode_binary_mask(lab == 3)),
    ]
    assert validate_cli.main([str(out), "--data", str(data)]) == 0
    # without --data: every mask in the folder gets a row, the same file
    out2 = tmp_path / "sub2.csv"
    assert submit_cli.main(["--masks", str(masks), "--cells", str(cells), "--out", str(out2), "--quiet"]) == 0
    assert out2.read_bytes() == out.read_bytes()


@pytest.mark.parametrize(
    "body, expected",
    [
        ("img1,9,0,0.5", ["cells.csv, line 2: cell 9 is not in the mask of image 'img1' (3 cells, ids 1-3)"]),
        ("img1,1,19,0.5", ["cells.csv, line 2: label 19 is outside 0-18"]),
        ("img1,1,0,2", ["cells.csv, line 2: confidence 2.0", "[0, 1]"]),
        ("img1,1,0,abc", ["cells.csv, line 2: confidence 'abc' is not a number"]),
        (
            "img1,1,0,0.5\nimg1,2,0,0.5\nimg1,1,0,0.7",
            ["cells.csv, line 4: duplicate row for image 'img1', cell 1, label 0", "line 2"],
        ),
        ("img3,1,0,0.5", ["cells.csv, line 2: image 'img3'", "img3_cellmask.png"]),
    ],
)
def test_submit_cli_rejects_bad_table(tmp_path, capsys, body, expected):
    data, masks, cells, _ = _tiny_dataset(tmp_path)
    cells.write_text(f"ID,cell,label,confidence\n{body}\n")
    out = tmp_path / "sub.csv"
    rc = submit_cli.main(["--masks", str(masks), "--cells", str(cells), "--out", str(out)])
    _assert_one_line_error(capsys, rc, "hpaseg submit: error:", *expected)
    assert not out.exists()


def test_submit_cli_rejects_missing_masks_and_sizes(tmp_path, capsys):
    data, masks, cells, _ = _tiny_dataset(tmp_path)
    out = tmp_path / "sub.csv"
    args = ["--masks", str(masks), "--cells", str(cells), "--out", str(out)]
    # an image of --data without a mask file
    io.write_rgby(data, "img3", np.zeros((2, 2, 4), dtype=np.uint8))
    rc = submit_cli.main(args + ["--data", str(data)])
    _assert_one_line_error(capsys, rc, "img3_cellmask.png: no such mask file", str(data))
    for path in data.glob("img3_*"):
        path.unlink()
    # a mask whose size differs from the image's
    io.write_rgby(data, "img2", np.zeros((9, 7, 4), dtype=np.uint8))
    rc = submit_cli.main(args + ["--data", str(data)])
    _assert_one_line_error(capsys, rc, "img2_cellmask.png: mask is 7x4 px but the image", "is 7x9")
    # a table row for a mask that is not an image of --data
    io.write_rgby(data, "img2", np.zeros((4, 7, 4), dtype=np.uint8))
    (data / "img1_green.png").unlink()
    rc = submit_cli.main(args + ["--data", str(data)])
    _assert_one_line_error(capsys, rc, "cells.csv, line 2: image 'img1' is not an image in")
    # an empty mask folder, a missing one, a missing table
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = submit_cli.main(["--masks", str(empty), "--cells", str(cells), "--out", str(out)])
    _assert_one_line_error(capsys, rc, "no {ID}_cellmask.png files")
    rc = submit_cli.main(["--masks", str(tmp_path / "nomasks"), "--cells", str(cells), "--out", str(out)])
    _assert_one_line_error(capsys, rc, "nomasks: no such folder")
    rc = submit_cli.main(["--masks", str(masks), "--cells", str(tmp_path / "none.csv"), "--out", str(out)])
    _assert_one_line_error(capsys, rc, "none.csv: no such file")
    # a corrupt mask file
    (masks / "img2_cellmask.png").write_bytes(b"not a png")
    rc = submit_cli.main(args)
    _assert_one_line_error(capsys, rc, "img2_cellmask.png: cannot decode image")
    assert not out.exists()


def test_submit_and_validate_real_mask(real_mask, shared_data, tmp_path, capsys):
    masks, data = tmp_path / "masks", tmp_path / "data"
    masks.mkdir()
    data.mkdir()
    shutil.copy(shared_data / "hpa_1000_A12_2" / f"{REAL_ID}_cellmask.png", masks)
    shutil.copy(shared_data / "hpa_1000_A12_2" / f"{REAL_ID}_green.png", data)
    lines = ["ID,cell,label,confidence"]
    for k in range(1, 22):
        lines.append(f"{REAL_ID},{k},{k % 18},{k / 21:.4f}")
        if k % 3 == 0:
            lines.append(f"{REAL_ID},{k},18,0.5")
    cells = tmp_path / "cells.csv"
    cells.write_text("\n".join(lines) + "\n")
    out = tmp_path / "sub.csv"
    assert submit_cli.main(["--masks", str(masks), "--cells", str(cells), "--out", str(out), "--data", str(data)]) == 0
    (row,) = read_submission(out)
    assert (row.width, row.height, len(row.predictions)) == (2048, 2048, 28)
    assert row.predictions[0] == Prediction(1, float(f"{1 / 21:.4f}"), encode_binary_mask(real_mask == 1))
    assert row.predictions[-1].mask == encode_binary_mask(real_mask == 21)
    assert validate_cli.main([str(out), "--data", str(data)]) == 0
    assert "1 images (0 without predictions), 28 predictions, 21 cells" in capsys.readouterr().out
