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
"""
from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
from pycocotools import mask as coco_mask

from .errors import InputError

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
    mask = np.squeeze(mask)
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
    wanted = present.tolist() if labels is None else [int(v) for v in labels]
    uncompressed = []
    for lab in wanted:
        lo, hi = bounds.get(lab, (0, 0))
        s, e = starts[lo:hi], ends[lo:hi]
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
    base64 of zlib data."""
    try:
        return zlib.decompress(base64.b64decode(encoded, validate=True))
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise InputError(f"{where}: not a base64(zlib(COCO RLE)) mask string ({exc})") from exc


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
