"""The Kaggle submission format: mask encoding, decoding, writing and reading.

A submission is a CSV ``ID,ImageWidth,ImageHeight,PredictionString``; a
PredictionString is space-separated ``label confidence mask`` triples, one per
(cell, label), where ``mask`` is ``base64(zlib_level9(COCO RLE counts))`` of the
cell's binary mask at the image's original resolution.

:func:`encode_binary_mask` is the organizers' reference (one full-size mask at a
time). :func:`encode_label_image` produces the same bytes for every cell of a label
image in one pass over the image: it finds the runs of the Fortran-order label image
once and hands each cell's run lengths to pycocotools, which writes the compressed
counts string.

Beyond encoding, this module builds a submission from label images and a per-cell
label table (:func:`build_submission`), reads that table (:func:`read_cell_labels`)
and checks a submission file strictly (:func:`validate_submission`).

Rules enforced by the strict validator
--------------------------------------
* header exactly ``ID,ImageWidth,ImageHeight,PredictionString``;
* IDs unique, non-empty, without surrounding white space;
* ImageWidth/ImageHeight plain positive decimal integers;
* a PredictionString is empty or ``label confidence mask`` triples separated by
  single spaces; ``label`` an integer 0-18; ``confidence`` a finite decimal number in
  **[0, 1]** (the competition metric only ranks confidences, but a value outside
  [0, 1] is almost always a logit passed by mistake, so it is rejected); ``mask`` is
  ``base64(zlib(COCO compressed RLE counts))`` whose run lengths are non-negative,
  sum to exactly ``ImageWidth * ImageHeight`` (the mask lies within the image) and
  cover at least one pixel (the mask is non-empty);
* with a data folder: one row for each image in it, none for any other image, and
  sizes equal to the image's (read from the green channel's file header).
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import csv
import math
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from pycocotools import mask as coco_mask

from .classes import NUM_CLASSES
from .errors import InputError
from .io import long_csv_fields, read_image_size

__all__ = [
    "Prediction",
    "SubmissionRow",
    "SUBMISSION_HEADER",
    "encode_binary_mask",
    "label_image_rles",
    "encode_label_image",
    "encode_counts",
    "decode_counts",
    "decode_mask",
    "format_prediction_string",
    "parse_prediction_string",
    "write_submission",
    "read_submission",
    "rle_counts",
    "decode_rle",
    "CellLabel",
    "CELL_TABLE_HEADER",
    "read_cell_labels",
    "check_cell_labels",
    "build_submission",
    "ValidationReport",
    "validate_submission",
]

SUBMISSION_HEADER: tuple[str, ...] = ("ID", "ImageWidth", "ImageHeight", "PredictionString")
_ZLIB_LEVEL = zlib.Z_BEST_COMPRESSION
@dataclass(frozen=True)
class Prediction:
    """One ``label confidence mask`` triple of a PredictionString."""

    label: int
    confidence: float
    mask: str  # base64(zlib(COCO RLE counts))


@dataclass
class SubmissionRow:
    """One image of a submission."""

    image_id: str
    width: int
    height: int
    predictions: list[Prediction] = field(default_factory=list)


def encode_binary_mask(mask: np.ndarray) -> str:
    """Encode one binary mask: the organizers' reference implementation.

    Parameters
    ----------
    mask : ndarray, shape (H, W) or (H, W, 1), bool
        The cell's mask at the image's original resolution.

    Returns
    -------
    str
        ``base64(zlib_level9(RLE counts))`` as ASCII text.

    Examples
    --------
    >>> encode_binary_mask(np.array([[0, 1], [1, 1]], dtype=bool))
    'eNozNAYAAJcAZQ=='
    """
    if mask.dtype != bool:
        raise ValueError(f"encode_binary_mask expects a bool mask, got dtype {mask.dtype}")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]  # the organizers squeeze every axis, which fails on 1-pixel-high/wide images
    if mask.ndim != 2:
        raise ValueError(f"encode_binary_mask expects a 2-D mask, got shape {mask.shape}")
    mask_to_encode = np.asfortranarray(mask.reshape(mask.shape[0], mask.shape[1], 1).astype(np.uint8))
    encoded = coco_mask.encode(mask_to_encode)[0]["counts"]
    return base64.b64encode(zlib.compress(encoded, _ZLIB_LEVEL)).decode()


def label_image_rles(label_image: np.ndarray, labels: Sequence[int] | None = None) -> dict[int, dict]:
    """COCO RLEs of every cell of a label image, found in one pass over the image.

    Parameters
    ----------
    label_image : ndarray, shape (H, W), int
        0 = background, cells 1..N.
    labels : sequence of int, optional
        Cells to return; default all non-zero labels present.

    Returns
    -------
    dict
        ``{label: {"size": [H, W], "counts": bytes}}``, identical to
        ``pycocotools.mask.encode`` of each cell's full-size Fortran-order mask.
        Requested labels absent from the image get an all-background RLE.

    Examples
    --------
    >>> rles = label_image_rles(np.array([[1, 0], [2, 1]]))
    >>> rles[1] == coco_mask.encode(np.asfortranarray(np.array([[1, 0], [0, 1]], dtype=np.uint8)))
    True
    """
    runs = _cell_runs(label_image)
    wanted = list(runs.bounds) if labels is None else [int(v) for v in labels]
    return _rles_from_runs(runs, wanted)


@dataclass(frozen=True)
class _CellRuns:
    """Runs of every cell of a label image in column-major order (see :func:`_cell_runs`)."""

    height: int
    width: int
    starts: np.ndarray  # (R,) int64, first pixel of each run (column-major index)
    ends: np.ndarray  # (R,) int64, one past the last pixel
    bounds: dict[int, tuple[int, int]]  # label -> slice of its runs in starts/ends


def _cell_runs(label_image: np.ndarray) -> _CellRuns:
    if label_image.ndim != 2:
        raise ValueError(f"expected a 2-D label image, got shape {label_image.shape}")
    height, width = label_image.shape
    n = height * width
    # Run boundaries of the whole image in column-major (COCO) order, found once, without
    # transposing the image: a run starts where a pixel differs from the one above it, or at
    # the top of a column whose first pixel differs from the previous column's last pixel.
    rows, cols = np.nonzero(label_image[1:, :] != label_image[:-1, :])
    top = np.flatnonzero(label_image[0, 1:] != label_image[-1, :-1]) + 1
    change = np.sort(np.concatenate((cols * height + rows + 1, top * height)))
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [n]))
    values = label_image[starts % height, starts // height]
    keep = values != 0
    starts, ends, values = starts[keep], ends[keep], values[keep]
    order = np.argsort(values, kind="stable")  # runs of each cell stay in image order
    starts, ends, values = starts[order], ends[order], values[order]
    present, first = np.unique(values, return_index=True)
    bounds = dict(zip(present.tolist(), zip(first.tolist(), np.append(first[1:], len(values)).tolist())))
    return _CellRuns(height, width, starts, ends, bounds)


def _rles_from_runs(runs: _CellRuns, wanted: Sequence[int]) -> dict[int, dict]:
    height, width = runs.height, runs.width
    n = height * width
    uncompressed = []
    for lab in wanted:
        lo, hi = runs.bounds.get(lab, (0, 0))
        s, e = runs.starts[lo:hi], runs.ends[lo:hi]
        counts = np.empty(2 * len(s) + 1, dtype=np.int64)
        counts[0::2] = np.append(s, n) - np.concatenate(([0], e))  # zeros before each run, and after the last
        counts[1::2] = e - s
        if counts[-1] == 0 and len(counts) > 1:
            counts = counts[:-1]
        uncompressed.append({"size": [height, width], "counts": counts.tolist()})
    if not uncompressed:
        return {}
    compressed = coco_mask.frPyObjects(uncompressed, height, width)
    return {lab: {"size": [height, width], "counts": rle["counts"]} for lab, rle in zip(wanted, compressed)}


def encode_counts(counts: bytes) -> str:
    """``base64(zlib_level9(counts))``: the text form of a COCO RLE counts string."""
    return base64.b64encode(zlib.compress(counts, _ZLIB_LEVEL)).decode()


def encode_label_image(label_image: np.ndarray, labels: Sequence[int] | None = None) -> dict[int, str]:
    """Kaggle mask strings of every cell of a label image, in one pass.

    Same bytes as :func:`encode_binary_mask` ``(label_image == k)`` for each cell k.

    Examples
    --------
    >>> lab = np.array([[0, 2], [2, 2]])
    >>> encode_label_image(lab)[2] == encode_binary_mask(lab == 2)
    True
    """
    return {lab: encode_counts(rle["counts"]) for lab, rle in label_image_rles(label_image, labels).items()}


def decode_counts(encoded: str, *, where: str = "mask") -> bytes:
    """Inverse of :func:`encode_counts`; raises :class:`InputError` on text that is not
    base64 of exactly one complete zlib stream (no truncation, nothing after its end).

    >>> decode_counts("eNozNAYAAJcAZQ==")
    b'13'
    """
    try:
        stream = zlib.decompressobj()
        counts = stream.decompress(base64.b64decode(encoded, validate=True))
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise InputError(f"{where}: not a base64(zlib(COCO RLE)) mask string ({exc})") from exc
    if not stream.eof or stream.unused_data:
        problem = "is truncated" if not stream.eof else f"has {len(stream.unused_data)} bytes after its end"
        raise InputError(f"{where}: not a base64(zlib(COCO RLE)) mask string (the zlib stream {problem})")
    return counts


def decode_mask(encoded: str, height: int, width: int, *, where: str = "mask") -> np.ndarray:
    """Decode a Kaggle mask string to an ``(height, width)`` bool mask.

    Examples
    --------
    >>> m = np.array([[0, 1, 1], [1, 0, 0]], dtype=bool)
    >>> bool((decode_mask(encode_binary_mask(m), 2, 3) == m).all())
    True
    """
    rle = {"size": [int(height), int(width)], "counts": decode_counts(encoded, where=where)}
    try:
        decoded = coco_mask.decode(rle)
    except Exception as exc:  # pycocotools raises plain Exceptions/ValueErrors on bad counts
        raise InputError(f"{where}: RLE counts do not describe a {height}x{width} mask ({exc})") from exc
    return decoded.astype(bool)


def format_prediction_string(predictions: Iterable[Prediction]) -> str:
    """Join predictions into a PredictionString (confidences with 6 significant digits).

    >>> format_prediction_string([Prediction(0, 0.5, "eNozNAYAAJcAZQ==")])
    '0 0.5 eNozNAYAAJcAZQ=='
    """
    return " ".join(f"{p.label} {p.confidence:.6g} {p.mask}" for p in predictions)


def parse_prediction_string(text: str, *, where: str = "PredictionString") -> list[Prediction]:
    """Split a PredictionString into :class:`Prediction` triples, checking each field.

    >>> parse_prediction_string("16 0.9 eNozNAYAAJcAZQ==")
    [Prediction(label=16, confidence=0.9, mask='eNozNAYAAJcAZQ==')]
    """
    tokens = text.split()
    if len(tokens) % 3:
        raise InputError(f"{where}: {len(tokens)} tokens; expected 'label confidence mask' triples (a multiple of 3)")
    out = []
    for i in range(0, len(tokens), 3):
        label_text, conf_text, mask = tokens[i : i + 3]
        k = i // 3 + 1
        if not label_text.isdigit() or not 0 <= int(label_text) <= 18:
            raise InputError(f"{where}, triple {k}: label {label_text!r}; expected an integer 0-18")
        try:
            confidence = float(conf_text)
        except ValueError:
            raise InputError(f"{where}, triple {k}: confidence {conf_text!r} is not a number") from None
        if not np.isfinite(confidence):
            raise InputError(f"{where}, triple {k}: confidence {conf_text!r} is not finite")
        out.append(Prediction(int(label_text), confidence, mask))
    return out


def write_submission(path, rows: Iterable[SubmissionRow]) -> None:
    """Write a submission CSV (atomically), one line per image, in the order given."""
    from .io import write_csv_rows

    write_csv_rows(
        path,
        SUBMISSION_HEADER,
        ([r.image_id, int(r.width), int(r.height), format_prediction_string(r.predictions)] for r in rows),
    )


def read_submission(path) -> list[SubmissionRow]:
    """Read a submission CSV, parsing every PredictionString.

    Raises
    ------
    InputError
        Missing columns, a non-integer size, a malformed triple or a duplicate ID;
        the message names the file and line.
    """
    from .io import read_csv_rows

    out: list[SubmissionRow] = []
    seen: set[str] = set()
    for row in read_csv_rows(path, SUBMISSION_HEADER):
        where = f"{path}, line {row['_row']}"
        image_id = row["ID"].strip()
        if not image_id:
            raise InputError(f"{where}: empty ID")
        if image_id in seen:
            raise InputError(f"{where}: duplicate ID {image_id!r}; each image must appear once")
        seen.add(image_id)
        try:
            width, height = int(row["ImageWidth"]), int(row["ImageHeight"])
        except ValueError:
            raise InputError(f"{where}: ImageWidth/ImageHeight {row['ImageWidth']!r}/{row['ImageHeight']!r}; expected positive integers") from None
        if width <= 0 or height <= 0:
            raise InputError(f"{where}: ImageWidth/ImageHeight {width}/{height}; expected positive integers")
        preds = parse_prediction_string(row["PredictionString"] or "", where=f"{where}, PredictionString")
        out.append(SubmissionRow(image_id, width, height, preds))
    return out


# --------------------------------------------------------------------------- RLE counts
# COCO's compressed RLE string (pycocotools ``rleToString``): each count is written as
# 5-bit chunks, least significant first, one character ``chr(48 + chunk)`` each; bit 0x20
# of a chunk says another chunk follows and bit 0x10 of the last one is the sign. From
# the fourth count on, the value stored is the difference to the count two places back.
_RLE_CHAR_OFFSET = 48
_RLE_ALPHABET_SIZE = 64
_RLE_CHUNK_BITS = 5
_RLE_CHUNK_MASK = 0x1F
_RLE_MORE_BIT = 0x20
_RLE_SIGN_BIT = 0x10
_RLE_MAX_CHUNKS = 12  # 60 bits: more than any image can need, and no int64 overflow


def rle_counts(counts: bytes, *, where: str = "mask") -> np.ndarray:
    """Run lengths of a COCO compressed RLE counts string, decoded without the image.

    The inverse of pycocotools' string compression (``rleFrString``), vectorised, so a
    mask can be checked without decoding it to full size.

    Parameters
    ----------
    counts : bytes
        The ``"counts"`` of a compressed COCO RLE (what ``pycocotools.mask.encode`` returns).
    where : str
        Named in error messages.

    Returns
    -------
    ndarray, shape (M,), int64
        Alternating run lengths, background first, in column-major pixel order. Values
        are returned as stored: callers check the sign and the total.

    Raises
    ------
    InputError
        Empty text, a byte outside the alphabet ``'0'``..``'o'``, or a truncated count.

    Examples
    --------
    >>> rle = coco_mask.encode(np.asfortranarray(np.array([[0, 1], [1, 1]], dtype=np.uint8)))
    >>> rle_counts(rle["counts"]).tolist()
    [1, 3]
    >>> rle_counts(b"0o")
    Traceback (most recent call last):
    ...
    hpaseg.errors.InputError: mask: RLE counts end in the middle of a number (byte 2 of 2 says more follow); the mask string is truncated
    """
    v = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - _RLE_CHAR_OFFSET
    if v.size == 0:
        raise InputError(f"{where}: RLE counts are empty; expected at least one run length")
    bad = np.flatnonzero((v < 0) | (v >= _RLE_ALPHABET_SIZE))
    if bad.size:
        raise InputError(
            f"{where}: RLE counts byte {bad[0] + 1} is {counts[bad[0]:bad[0] + 1]!r}; "
            f"expected characters '0'..'o' of COCO's compressed RLE"
        )
    is_last = (v & _RLE_MORE_BIT) == 0
    if not is_last[-1]:
        raise InputError(f"{where}: RLE counts end in the middle of a number (byte {v.size} of {v.size} says more follow); the mask string is truncated")
    last = np.flatnonzero(is_last)
    first = np.concatenate(([0], last[:-1] + 1))
    n_chunks = last - first + 1
    if n_chunks.max() > _RLE_MAX_CHUNKS:
        raise InputError(f"{where}: an RLE count has {n_chunks.max()} chunks; at most {_RLE_MAX_CHUNKS} fit a 64-bit count")
    position = np.arange(v.size) - np.repeat(first, n_chunks)
    value = np.add.reduceat((v & _RLE_CHUNK_MASK) << (_RLE_CHUNK_BITS * position), first)
    negative = (v[last] & _RLE_SIGN_BIT) != 0
    value[negative] -= np.left_shift(np.int64(1), _RLE_CHUNK_BITS * n_chunks[negative])
    out = value.copy()
    out[1::2] = np.cumsum(value[1::2])  # counts 3, 5, ... are stored as differences
    out[2::2] = np.cumsum(value[2::2])  # counts 4, 6, ... likewise (count 2 is absolute)
    return out


def _checked_rle(encoded: str, height: int, width: int, where: str) -> tuple[dict, int]:
    """Decode a mask string to a compressed RLE dict and its area, checking the run lengths."""
    data = decode_counts(encoded, where=where)
    counts = rle_counts(data, where=where)
    if (counts < 0).any():
        i = int(np.flatnonzero(counts < 0)[0])
        raise InputError(f"{where}: RLE run {i + 1} has negative length {int(counts[i])}; run lengths must be >= 0")
    total = int(counts.sum())
    if total != height * width:
        raise InputError(
            f"{where}: RLE run lengths sum to {total} pixels but the image is {width}x{height} = {height * width}; "
            f"the mask must be encoded at the image's original resolution"
        )
    return {"size": [int(height), int(width)], "counts": data}, int(counts[1::2].sum())


def decode_rle(encoded: str, height: int, width: int, *, where: str = "mask") -> dict:
    """Decode a Kaggle mask string to a compressed COCO RLE, checked but not decoded to pixels.

    Parameters
    ----------
    encoded : str
        ``base64(zlib(COCO RLE counts))``.
    height, width : int
        Size of the image the mask belongs to.
    where : str
        Named in error messages.

    Returns
    -------
    dict
        ``{"size": [height, width], "counts": bytes}``, ready for ``pycocotools.mask.iou``,
        ``area`` or ``decode``.

    Raises
    ------
    InputError
        Not base64/zlib, malformed counts, a negative run, or run lengths that do not
        sum to ``height * width``.

    Examples
    --------
    >>> rle = decode_rle("eNozNAYAAJcAZQ==", 2, 2)
    >>> int(coco_mask.area(rle))
    3
    >>> decode_rle("eNozNAYAAJcAZQ==", 2, 3)
    Traceback (most recent call last):
    ...
    hpaseg.errors.InputError: mask: RLE run lengths sum to 4 pixels but the image is 3x2 = 6; the mask must be encoded at the image's original resolution
    """
    return _checked_rle(encoded, height, width, where)[0]


# --------------------------------------------------------------------------- building
@dataclass(frozen=True)
class CellLabel:
    """One row of a per-cell label table: cell ``cell`` of image ``image_id`` has class
    ``label`` with ``confidence``; ``where`` (e.g. ``"cells.csv, line 7"``) names the row
    in error messages."""

    image_id: str
    cell: int
    label: int
    confidence: float
    where: str = ""


CELL_TABLE_HEADER: tuple[str, ...] = ("ID", "cell", "label", "confidence")
_INT_RE = re.compile(r"[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _where(c: CellLabel) -> str:
    return c.where or f"cell {c.cell} of image {c.image_id!r}, label {c.label}"


def check_cell_labels(cells: Sequence[CellLabel]) -> None:
    """Check a per-cell label table: non-empty IDs, cell ids >= 1, labels 0-18,
    confidences finite in [0, 1], no (ID, cell, label) twice.

    Raises
    ------
    InputError
        On the first bad row, naming it (its ``where``).

    Examples
    --------
    >>> check_cell_labels([CellLabel("a", 1, 0, 0.9), CellLabel("a", 1, 0, 0.8, "c.csv, line 3")])
    Traceback (most recent call last):
    ...
    hpaseg.errors.InputError: c.csv, line 3: duplicate row for image 'a', cell 1, label 0 (first at cell 1 of image 'a', label 0); each (ID, cell, label) may appear once
    """
    seen: dict[tuple[str, int, int], CellLabel] = {}
    for c in cells:
        where = _where(c)
        if not c.image_id or c.image_id != c.image_id.strip():
            raise InputError(f"{where}: ID {c.image_id!r}; expected a non-empty image ID without surrounding spaces")
        if c.cell < 1:
            raise InputError(f"{where}: cell {c.cell}; expected a cell id >= 1 (0 is background)")
        if not 0 <= c.label < NUM_CLASSES:
            raise InputError(f"{where}: label {c.label} is outside 0-{NUM_CLASSES - 1}")
        if not (math.isfinite(c.confidence) and 0.0 <= c.confidence <= 1.0):
            raise InputError(f"{where}: confidence {c.confidence!r}; expected a finite number in [0, 1]")
        key = (c.image_id, c.cell, c.label)
        if key in seen:
            raise InputError(
                f"{where}: duplicate row for image {c.image_id!r}, cell {c.cell}, label {c.label} "
                f"(first at {_where(seen[key])}); each (ID, cell, label) may appear once"
            )
        seen[key] = c


def read_cell_labels(path: str | os.PathLike) -> list[CellLabel]:
    """Read a per-cell label table ``ID,cell,label,confidence``, one row per (cell, label).

    Returns
    -------
    list of CellLabel
        In file order, each naming its file and line in ``where``; checked with
        :func:`check_cell_labels`.

    Raises
    ------
    InputError
        Missing file or columns, a non-integer cell or label, a confidence that is not
        a finite number in [0, 1], or a duplicate (ID, cell, label); names file and line.
    """
    from .io import read_csv_rows

    out = []
    for row in read_csv_rows(path, CELL_TABLE_HEADER):
        where = f"{path}, line {row['_row']}"
        cell_text, label_text, conf_text = row["cell"].strip(), row["label"].strip(), row["confidence"].strip()
        if not _INT_RE.fullmatch(cell_text):
            raise InputError(f"{where}: cell {row['cell']!r}; expected a positive integer cell id of the image's mask")
        if not _INT_RE.fullmatch(label_text):
            raise InputError(f"{where}: label {row['label']!r}; expected an integer class id 0-{NUM_CLASSES - 1}")
        if not _FLOAT_RE.fullmatch(conf_text):
            raise InputError(f"{where}: confidence {row['confidence']!r} is not a number; expected a finite number in [0, 1]")
        out.append(CellLabel(row["ID"].strip(), int(cell_text), int(label_text), float(conf_text), where))
    check_cell_labels(out)
    return out


def _describe_ids(ids: Sequence[int]) -> str:
    if not ids:
        return "no cells"
    lo, hi = min(ids), max(ids)
    if hi - lo + 1 == len(ids):
        return f"{len(ids)} cells, ids {lo}-{hi}"
    return f"{len(ids)} cells, ids between {lo} and {hi}"


def build_submission(
    label_images: Iterable[tuple[str, np.ndarray]], cells: Sequence[CellLabel]
) -> list[SubmissionRow]:
    """Turn label images and a per-cell label table into submission rows.

    Each label image is encoded once, in one pass (:func:`label_image_rles`), for the
    cells the table names. Images without rows in the table get an empty
    PredictionString, so the submission covers every image given.

    Parameters
    ----------
    label_images : iterable of (str, ndarray of shape (H, W), int)
        ``(ID, cell mask)`` pairs at the images' original resolution; consumed once,
        lazily, so a generator that reads masks one at a time keeps memory bounded.
    cells : sequence of CellLabel
        One entry per (cell, label); checked with :func:`check_cell_labels`.

    Returns
    -------
    list of SubmissionRow
        In the order of ``label_images``; ``width = W``, ``height = H``; predictions
        of an image in the order of ``cells``.

    Raises
    ------
    InputError
        A bad or duplicate table row, a cell id missing from its image's mask, an
        image given twice, or table rows for an image that was never given; the
        message names the table row.

    Examples
    --------
    >>> mask = np.array([[1, 1, 0], [0, 2, 2]])
    >>> rows = build_submission([("a", mask), ("b", mask)], [CellLabel("a", 2, 16, 0.75)])
    >>> [(r.image_id, r.width, r.height, len(r.predictions)) for r in rows]
    [('a', 3, 2, 1), ('b', 3, 2, 0)]
    >>> rows[0].predictions[0].mask == encode_binary_mask(mask == 2)
    True
    """
    check_cell_labels(cells)
    by_image: dict[str, list[CellLabel]] = {}
    for c in cells:
        by_image.setdefault(c.image_id, []).append(c)
    rows: list[SubmissionRow] = []
    seen: set[str] = set()
    for image_id, label_image in label_images:
        if image_id in seen:
            raise InputError(f"image {image_id!r} is given twice; each image needs exactly one mask")
        seen.add(image_id)
        label_image = np.asarray(label_image)
        if label_image.ndim != 2 or not np.issubdtype(label_image.dtype, np.integer):
            raise InputError(
                f"mask of image {image_id!r}: shape {label_image.shape} dtype {label_image.dtype}; expected a 2-D integer label image"
            )
        height, width = label_image.shape
        mine = by_image.get(image_id, [])
        predictions: list[Prediction] = []
        if mine:
            runs = _cell_runs(label_image)
            for c in mine:
                if c.cell not in runs.bounds:
                    raise InputError(
                        f"{_where(c)}: cell {c.cell} is not in the mask of image {image_id!r} "
                        f"({_describe_ids(list(runs.bounds))}); expected a cell id of that image's mask"
                    )
            wanted = sorted({c.cell for c in mine})
            encoded = {k: encode_counts(rle["counts"]) for k, rle in _rles_from_runs(runs, wanted).items()}
            predictions = [Prediction(c.label, c.confidence, encoded[c.cell]) for c in mine]
        rows.append(SubmissionRow(image_id, int(width), int(height), predictions))
    for image_id, mine in by_image.items():
        if image_id not in seen:
            raise InputError(f"{_where(mine[0])}: no mask was given for image {image_id!r}; every image with rows needs a cell mask")
    return rows


# --------------------------------------------------------------------------- validation
@dataclass(frozen=True)
class ValidationReport:
    """What :func:`validate_submission` found in a valid submission."""

    path: str
    n_images: int
    n_predictions: int
    n_cells: int  # distinct masks, counted per image
    n_images_without_predictions: int
    data_dir: str | None = None

    def summary(self) -> str:
        """One line: images, predictions, cells (and the data folder checked against).

        >>> ValidationReport("sub.csv", 2, 5, 3, 1).summary()
        'sub.csv: 2 images (1 without predictions), 5 predictions, 3 cells'
        """
        text = (
            f"{self.path}: {self.n_images} images ({self.n_images_without_predictions} without predictions), "
            f"{self.n_predictions} predictions, {self.n_cells} cells"
        )
        if self.data_dir is not None:
            text += f"; IDs and sizes match {self.data_dir}"
        return text


def _positive_int(text: str, where: str, name: str) -> int:
    if not _INT_RE.fullmatch(text) or int(text) <= 0:
        raise InputError(f"{where}, {name}: {text!r}; expected a positive integer number of pixels")
    return int(text)


def _validate_prediction_string(text: str, width: int, height: int, where: str) -> tuple[int, int]:
    """Check one PredictionString; return (number of predictions, number of distinct masks)."""
    if text == "":
        return 0, 0
    tokens = text.split(" ")
    if "" in tokens:
        raise InputError(f"{where}: empty token (a leading, trailing or double space); expected 'label confidence mask' triples separated by single spaces")
    if len(tokens) % 3:
        raise InputError(f"{where}: {len(tokens)} tokens; expected 'label confidence mask' triples (a multiple of 3)")
    masks: dict[str, None] = {}
    for i in range(0, len(tokens), 3):
        label_text, conf_text, mask = tokens[i : i + 3]
        at = f"{where} triple {i // 3 + 1} (tokens {i + 1}-{i + 3})"
        if not _INT_RE.fullmatch(label_text) or int(label_text) >= NUM_CLASSES:
            raise InputError(f"{at}, label: {label_text!r}; expected an integer class id 0-{NUM_CLASSES - 1}")
        if not _FLOAT_RE.fullmatch(conf_text):
            raise InputError(f"{at}, confidence: {conf_text!r}; expected a finite decimal number in [0, 1]")
        confidence = float(conf_text)
        if not 0.0 <= confidence <= 1.0:
            raise InputError(f"{at}, confidence: {conf_text}; expected a number in [0, 1]")
        if mask not in masks:
            _, area = _checked_rle(mask, height, width, f"{at}, mask")
            if area == 0:
                raise InputError(f"{at}, mask: the mask covers no pixel; every prediction needs a non-empty cell mask")
            masks[mask] = None
    return len(tokens) // 3, len(masks)


def validate_submission(path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> ValidationReport:
    """Check a Kaggle submission CSV strictly (the rules are in the module docstring).

    Parameters
    ----------
    path : path
        The submission CSV.
    data_dir : path, optional
        Folder of the test images (``{ID}_green.png`` ...); when given, the submission
        must have exactly one row per image there, with that image's size.

    Returns
    -------
    ValidationReport

    Raises
    ------
    InputError
        On the first problem, naming the file, line and field.
    """
    from .io import list_image_ids

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    expected_ids: list[str] | None = None
    if data_dir is not None:
        expected_ids = list_image_ids(data_dir)
        if not expected_ids:
            raise InputError(f"{data_dir}: no images ({{ID}}_green.png files); expected the folder of test images")
    expected = set(expected_ids or ())
    seen: dict[str, int] = {}
    n_predictions = n_cells = n_empty = 0
    try:
        with long_csv_fields(), open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, strict=True)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: empty file; expected the header {','.join(SUBMISSION_HEADER)}")
            if tuple(header) != SUBMISSION_HEADER:
                raise InputError(f"{path}, line 1: header is {','.join(header)!r}; expected exactly {','.join(SUBMISSION_HEADER)!r}")
            for fields in reader:
                line = reader.line_num
                where = f"{path}, line {line}"
                if len(fields) != len(SUBMISSION_HEADER):
                    raise InputError(f"{where}: {len(fields)} fields; expected {len(SUBMISSION_HEADER)} ({','.join(SUBMISSION_HEADER)})")
                image_id, width_text, height_text, predictions = fields
                if not image_id or image_id != image_id.strip():
                    raise InputError(f"{where}, ID: {image_id!r}; expected a non-empty image ID without surrounding spaces")
                if image_id in seen:
                    raise InputError(f"{where}, ID: {image_id!r} already on line {seen[image_id]}; each image must appear once")
                seen[image_id] = line
                if expected_ids is not None and image_id not in expected:
                    raise InputError(f"{where}, ID: {image_id!r} is not an image in {data_dir}; rows are only allowed for its images")
                width = _positive_int(width_text, where, "ImageWidth")
                height = _positive_int(height_text, where, "ImageHeight")
                if data_dir is not None:
                    true_h, true_w = read_image_size(data_dir, image_id)
                    if (width, height) != (true_w, true_h):
                        raise InputError(
                            f"{where}, ImageWidth/ImageHeight: {width}x{height}; the image in {data_dir} is {true_w}x{true_h}"
                        )
                n_pred, n_masks = _validate_prediction_string(predictions, width, height, f"{where}, PredictionString")
                n_predictions += n_pred
                n_cells += n_masks
                n_empty += n_pred == 0
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a UTF-8 text CSV ({exc})") from exc
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV ({exc})") from exc
    if not seen:
        raise InputError(f"{path}: no rows after the header; expected one row per test image")
    if expected_ids is not None:
        missing = [i for i in expected_ids if i not in seen]
        if missing:
            raise InputError(
                f"{path}: no row for {len(missing)} image(s) of {data_dir}, first {missing[0]!r}; "
                f"every image needs a row (an empty PredictionString if it has no predictions)"
            )
    return ValidationReport(str(path), len(seen), n_predictions, n_cells, n_empty, None if data_dir is None else str(data_dir))
