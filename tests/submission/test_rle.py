"""Tests of hpaseg.submission: encoding, RLE parsing, building rows, reading and writing, on tiny masks and the real 21-cell mask."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from hpaseg import io
from hpaseg.errors import InputError
from hpaseg.submission import (
    decode_mask,
    decode_rle,
    encode_binary_mask,
    encode_counts,
    encode_label_image,
    label_image_rles,
    rle_counts,
)

REAL_ID = "1000_A12_2"


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


@pytest.fixture(scope="module")
def real_mask(shared_data):
    path = shared_data / "hpa_1000_A12_2" / f"{REAL_ID}_cellmask.png"
    if not path.is_file():
        pytest.skip(f"{path} not found (see shared/data/README.md)")
    return io.read_mask(path)


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
