"""Tests of hpaseg.submission (encoding, RLE parsing, building, strict validation) and of
the ``submit`` and ``validate`` CLIs, on tiny synthetic masks and the real 21-cell mask."""
from __future__ import annotations

import base64
import csv
import shutil
import zlib

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from hpaseg import io
from hpaseg import submit as submit_cli
from hpaseg import validate as validate_cli
from hpaseg.errors import InputError
from hpaseg.submission import (
    CellLabel,
    Prediction,
    SubmissionRow,
    build_submission,
    decode_mask,
    decode_rle,
    encode_binary_mask,
    encode_counts,
    encode_label_image,
    label_image_rles,
    read_cell_labels,
    read_submission,
    rle_counts,
    validate_submission,
    write_submission,
)

REAL_ID = "1000_A12_2"


# --------------------------------------------------------------------------- helpers
def _coco(binary: np.ndarray) -> dict:
    return coco_mask.encode(np.asfortranarray(binary.astype(np.uint8)))


def _runs_fortran(binary: np.ndarray) -> list[int]:
    """Run lengths of a binary mask in column-major order, background first (slow, obvious)."""
    flat = binary.ravel(order="F").astype(bool)
    counts, current, run = [], False, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = v, 1
    counts.append(run)
    return counts


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


def _random_label_image(rng, shape, n_cells) -> np.ndarray:
    """Blobs of random rectangles, some touching the edges, some overwritten (absent)."""
    h, w = shape
    lab = np.zeros(shape, dtype=np.int32)
    for k in range(1, n_cells + 1):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        y1, x1 = min(h, y0 + rng.integers(1, h + 1)), min(w, x0 + rng.integers(1, w + 1))
        lab[y0:y1, x0:x1] = k
    lab[rng.random(shape) < 0.05] = 0  # holes: cells with several runs per column
    return lab


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


# --------------------------------------------------------------------------- encoder
def test_real_mask_encodes_byte_identically_to_reference(real_mask):
    assert real_mask.shape == (2048, 2048)
    cells = [int(k) for k in np.unique(real_mask) if k]
    assert cells == list(range(1, 22))
    fast = encode_label_image(real_mask)
    assert sorted(fast) == cells
    for k in cells:
        assert fast[k] == encode_binary_mask(real_mask == k), f"cell {k}"


def test_real_mask_round_trip_and_counts(real_mask):
    rles = label_image_rles(real_mask, [3, 21])
    for k in (3, 21):
        encoded = encode_counts(rles[k]["counts"])
        assert np.array_equal(decode_mask(encoded, 2048, 2048), real_mask == k)
        counts = rle_counts(rles[k]["counts"])
        assert counts.sum() == 2048 * 2048
        assert counts[1::2].sum() == (real_mask == k).sum() == coco_mask.area(rles[k])


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 3), (7, 5), (13, 17), (31, 29), (64, 3)])
def test_random_label_images_match_reference_and_pycocotools(shape):
    rng = np.random.default_rng(sum(shape))
    for trial in range(3):
        lab = _random_label_image(rng, shape, n_cells=6)
        present = [int(k) for k in np.unique(lab) if k]
        wanted = list(range(1, 8))  # includes absent labels (overwritten or never drawn)
        fast = encode_label_image(lab, wanted)
        rles = label_image_rles(lab, wanted)
        assert sorted(encode_label_image(lab)) == present
        for k in wanted:
            binary = lab == k
            assert fast[k] == encode_binary_mask(binary), (shape, trial, k)
            assert rles[k]["counts"] == _coco(binary)["counts"]
            assert rles[k]["size"] == list(shape)
            # pycocotools' own compression of the obvious run lengths gives the same string
            via_fr = coco_mask.frPyObjects({"size": list(shape), "counts": _runs_fortran(binary)}, *shape)
            assert via_fr["counts"] == rles[k]["counts"]
            assert rle_counts(rles[k]["counts"]).tolist() == _runs_fortran(binary)
            assert np.array_equal(decode_mask(fast[k], *shape), binary)


def test_cells_touching_every_edge_and_single_pixel():
    lab = np.zeros((6, 5), dtype=np.int32)
    lab[0, :] = 1  # top edge, spans all columns
    lab[:, 0] = 2  # left edge (overwrites the corner)
    lab[-1, 1:] = 3  # bottom edge
    lab[1:5, -1] = 4  # right edge
    lab[2, 2] = 5  # single pixel
    lab[-1, -1] = 6  # single pixel in the last corner
    fast = encode_label_image(lab)
    assert sorted(fast) == [1, 2, 3, 4, 5, 6]
    for k in fast:
        assert fast[k] == encode_binary_mask(lab == k)
        assert np.array_equal(decode_mask(fast[k], 6, 5), lab == k)
    assert rle_counts(label_image_rles(lab)[6]["counts"]).tolist() == [29, 1]
    assert rle_counts(label_image_rles(lab)[5]["counts"]).tolist() == [14, 1, 15]


def test_empty_image_and_absent_labels():
    empty = np.zeros((4, 7), dtype=np.int32)
    assert encode_label_image(empty) == {}
    assert label_image_rles(empty) == {}
    absent = encode_label_image(empty, [1, 9])
    assert absent[1] == absent[9] == encode_binary_mask(np.zeros((4, 7), dtype=bool))
    assert rle_counts(decode_rle(absent[1], 4, 7)["counts"]).tolist() == [28]


def test_rle_counts_inverts_coco_string():
    rng = np.random.default_rng(0)
    for _ in range(20):
        counts = rng.integers(-(2**40), 2**40, size=rng.integers(1, 30)).tolist()
        assert rle_counts(_coco_string(counts)).tolist() == counts
    lab = np.zeros((9, 4), dtype=bool)
    lab[2:5, 1:3] = True
    assert _coco_string(_runs_fortran(lab)) == _coco(lab)["counts"]


def test_rle_counts_large_and_negative_values():
    binary = np.zeros((2048, 2048), dtype=bool)
    binary[-1, -1] = True
    counts = _coco(binary)["counts"]
    assert rle_counts(counts).tolist() == [2048 * 2048 - 1, 1]
    # a long third count then a short fourth: stored as a negative difference
    lab = np.zeros((100, 3), dtype=bool)
    lab[10:90, 0] = True
    lab[5:7, 1] = True
    assert rle_counts(_coco(lab)["counts"]).tolist() == _runs_fortran(lab)


@pytest.mark.parametrize(
    "counts, message",
    [(b"", "empty"), (b"0 1", "byte 2"), (b"0o", "truncated"), (b"\x00", "byte 1"), (b"o" * 13 + b"0", "chunks")],
)
def test_rle_counts_rejects_malformed(counts, message):
    with pytest.raises(InputError, match=message):
        rle_counts(counts, where="x")


def test_decode_rle_checks_size_and_text():
    good = encode_binary_mask(np.array([[1, 0, 0], [1, 1, 0]], dtype=bool))
    rle = decode_rle(good, 2, 3)
    assert rle["size"] == [2, 3] and coco_mask.area(rle) == 3
    with pytest.raises(InputError, match="sum to 6 pixels but the image is 3x3 = 9"):
        decode_rle(good, 3, 3)
    with pytest.raises(InputError, match="not a base64"):
        decode_rle("###", 2, 3)
    with pytest.raises(InputError, match="not a base64"):
        decode_rle(base64.b64encode(b"not zlib").decode(), 2, 3)
    negative = encode_counts(_coco_string([7, -1]))
    with pytest.raises(InputError, match="negative length -1"):
        decode_rle(negative, 2, 3)


# --------------------------------------------------------------------------- building
def test_build_submission_encodes_each_cell_once_in_table_order():
    mask = np.array([[1, 1, 0, 2], [0, 3, 3, 2], [0, 3, 0, 0]])
    cells = [
        CellLabel("a", 3, 16, 0.25),
        CellLabel("a", 1, 0, 0.5),
        CellLabel("a", 3, 0, 1.0),
    ]
    rows = build_submission(iter([("a", mask), ("b", mask[:2])]), cells)
    assert [(r.image_id, r.width, r.height) for r in rows] == [("a", 4, 3), ("b", 4, 2)]
    assert rows[1].predictions == []
    assert [(p.label, p.confidence) for p in rows[0].predictions] == [(16, 0.25), (0, 0.5), (0, 1.0)]
    assert rows[0].predictions[0].mask == rows[0].predictions[2].mask == encode_binary_mask(mask == 3)
    assert rows[0].predictions[1].mask == encode_binary_mask(mask == 1)


@pytest.mark.parametrize(
    "cells, images, message",
    [
        ([CellLabel("a", 4, 0, 0.5, "c.csv, line 2")], None, "c.csv, line 2: cell 4 is not in the mask of image 'a' (2 cells, ids 1-2)"),
        ([CellLabel("a", 1, 19, 0.5, "c.csv, line 2")], None, "c.csv, line 2: label 19 is outside 0-18"),
        ([CellLabel("a", 1, 0, 1.5, "c.csv, line 2")], None, "c.csv, line 2: confidence 1.5"),
        ([CellLabel("a", 1, 0, float("nan"), "L")], None, "L: confidence nan"),
        ([CellLabel("a", 0, 0, 0.5, "L")], None, "L: cell 0"),
        ([CellLabel("a", 1, 0, 0.5, "L2"), CellLabel("a", 1, 0, 0.7, "L3")], None, "L3: duplicate row for image 'a', cell 1, label 0 (first at L2)"),
        ([CellLabel("z", 1, 0, 0.5, "L")], None, "L: no mask was given for image 'z'"),
        ([], [("a", np.ones((2, 2), int)), ("a", np.ones((2, 2), int))], "image 'a' is given twice"),
        ([], [("a", np.ones((2, 2, 1), int))], "expected a 2-D integer label image"),
    ],
)
def test_build_submission_rejects(cells, images, message):
    images = images or [("a", np.array([[1, 2], [0, 2]]))]
    with pytest.raises(InputError) as info:
        build_submission(images, cells)
    assert message in str(info.value)


def test_read_cell_labels(tmp_path):
    path = tmp_path / "cells.csv"
    path.write_text("ID,cell,label,confidence,extra\nimg,3,16,0.9,x\nimg,3,0,1e-3,y\n")
    cells = read_cell_labels(path)
    assert [(c.image_id, c.cell, c.label, c.confidence) for c in cells] == [("img", 3, 16, 0.9), ("img", 3, 0, 0.001)]
    assert cells[1].where == f"{path}, line 3"
    for body, message in [
        ("img,x,0,0.5", "line 2: cell 'x'"),
        ("img,1,-1,0.5", "line 2: label '-1'"),
        ("img,1,1,inf", "line 2: confidence 'inf' is not a number"),
        ("img,1,1,1_0", "line 2: confidence '1_0' is not a number"),
    ]:
        path.write_text(f"ID,cell,label,confidence\n{body}\n")
        with pytest.raises(InputError, match=message):
            read_cell_labels(path)


# --------------------------------------------------------------------------- validation
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


def _rewrite(out, old, new):
    text = out.read_text()
    assert old in text, (old, text)
    out.write_text(text.replace(old, new, 1))


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
        (lambda t: t.replace("img1,5,6,0 ", "img1,5,6,19 ", 1), ["line 2, PredictionString triple 1 (tokens 1-3), label", "'19'"]),
        (lambda t: t.replace(" 0.9 ", " 1.5 ", 1), ["line 2, PredictionString triple 1 (tokens 1-3), confidence", "[0, 1]"]),
        (lambda t: t.replace(" 0.9 ", " nan ", 1), ["line 2, PredictionString triple 1 (tokens 1-3), confidence", "'nan'"]),
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


# --------------------------------------------------------------------------- submit CLI
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
        ("img1,1,0,0.5\nimg1,2,0,0.5\nimg1,1,0,0.7", ["cells.csv, line 4: duplicate row for image 'img1', cell 1, label 0", "line 2"]),
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


def test_write_then_read_submission_round_trip(tmp_path):
    rows = [SubmissionRow("a", 3, 2, [Prediction(4, 0.123456789, "eNozNAYAAJcAZQ==")]), SubmissionRow("b", 1, 1)]
    write_submission(tmp_path / "s.csv", rows)
    back = read_submission(tmp_path / "s.csv")
    assert back[0].predictions[0].confidence == pytest.approx(0.123457)
    assert back[1].predictions == []


def test_long_prediction_strings_are_read(tmp_path):
    """~100 cells x 19 labels make a PredictionString far longer than csv's default
    131072-character field limit."""
    lab = np.zeros((64, 64), dtype=np.int32)
    lab[4:60, 4:60] = np.arange(1, 57)[None, :].repeat(56, axis=0)  # 56 column-strip cells
    masks = encode_label_image(lab)
    preds = [Prediction(c, 0.5, m) for m in masks.values() for c in range(19)] * 8
    path = tmp_path / "long.csv"
    write_submission(path, [SubmissionRow("big", 64, 64, preds)])
    assert len(path.read_text()) > 200_000
    limit = csv.field_size_limit()
    assert len(read_submission(path)[0].predictions) == len(preds)
    assert validate_submission(path).n_predictions == len(preds)
    assert csv.field_size_limit() == limit  # restored
