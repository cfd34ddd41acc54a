"""Kaggle mask strings: ``base64(zlib_level9(COCO RLE counts))`` of a cell's binary mask at
the image's original resolution.

:func:`encode_binary_mask` is the organizers' reference (one full-size mask at a
time). :func:`encode_label_image` produces the same bytes for every cell of a label
image in one pass over the image: it finds the runs of the Fortran-order label image
once and hands each cell's run lengths to pycocotools, which writes the compressed
counts string (31-38x faster than the reference on a real 2048-px mask,
``python -m hpaseg.bench encode``). :func:`rle_counts` decodes a counts string without
the image, so a mask can be checked without decoding it to full size.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as coco_mask

from ..errors import InputError

__all__ = [
    "encode_binary_mask",
    "label_image_rles",
    "CellRuns",
    "cell_runs",
    "rles_from_runs",
    "encode_label_image",
    "encode_counts",
    "decode_counts",
    "decode_mask",
    "rle_counts",
    "checked_rle",
    "decode_rle",
]

_ZLIB_LEVEL = zlib.Z_BEST_COMPRESSION


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
    runs = cell_runs(label_image)
    wanted = list(runs.bounds) if labels is None else [int(v) for v in labels]
    return rles_from_runs(runs, wanted)


@dataclass(frozen=True)
class CellRuns:
    """Runs of every cell of a label image in column-major order (see :func:`cell_runs`)."""

    height: int
    width: int
    starts: np.ndarray  # (R,) int64, first pixel of each run (column-major index)
    ends: np.ndarray  # (R,) int64, one past the last pixel
    bounds: dict[int, tuple[int, int]]  # label -> slice of its runs in starts/ends


def cell_runs(label_image: np.ndarray) -> CellRuns:
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
    return CellRuns(height, width, starts, ends, bounds)


def rles_from_runs(runs: CellRuns, wanted: Sequence[int]) -> dict[int, dict]:
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


def decode_counts(encoded: str, *, where: str = "mask", max_bytes: int | None = None) -> bytes:
    """Inverse of :func:`encode_counts`; raises :class:`InputError` on text that is not
    base64 of exactly one complete zlib stream (no truncation, nothing after its end), or
    (with ``max_bytes``) that decompresses to more than ``max_bytes`` bytes.

    >>> decode_counts("eNozNAYAAJcAZQ==")
    b'13'
    """
    try:
        stream = zlib.decompressobj()
        counts = stream.decompress(base64.b64decode(encoded, validate=True), 0 if max_bytes is None else max_bytes + 1)
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise InputError(f"{where}: not a base64(zlib(COCO RLE)) mask string ({exc})") from exc
    if max_bytes is not None and len(counts) > max_bytes:
        raise InputError(
            f"{where}: the mask string decompresses to more than {max_bytes} bytes, more than any mask of its image needs"
        )
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
#: Most pixels of an image whose masks are checked (a million pixels a side).
MAX_MASK_PIXELS = 2**40
#: Bound on the sizes of the values of a counts string: no running sum of them can
#: overflow int64 below it, and a mask of ``MAX_MASK_PIXELS`` pixels stays far below it.
_RLE_MAX_TOTAL = 2.0**62


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
        Empty text, a byte outside the alphabet ``'0'``..``'o'``, a truncated count, or
        values so large that their sums would overflow int64 (the stored values of a mask
        of ``n`` pixels add up to at most ``3 n`` in size).

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
            f"{where}: RLE counts byte {bad[0] + 1} is {counts[bad[0] : bad[0] + 1]!r}; "
            f"expected characters '0'..'o' of COCO's compressed RLE"
        )
    is_last = (v & _RLE_MORE_BIT) == 0
    if not is_last[-1]:
        raise InputError(
            f"{where}: RLE counts end in the middle of a number (byte {v.size} of {v.size} says more follow); the mask string is truncated"
        )
    last = np.flatnonzero(is_last)
    first = np.concatenate(([0], last[:-1] + 1))
    n_chunks = last - first + 1
    if n_chunks.max() > _RLE_MAX_CHUNKS:
        raise InputError(
            f"{where}: an RLE count has {n_chunks.max()} chunks; at most {_RLE_MAX_CHUNKS} fit a 64-bit count"
        )
    position = np.arange(v.size) - np.repeat(first, n_chunks)
    value = np.add.reduceat((v & _RLE_CHUNK_MASK) << (_RLE_CHUNK_BITS * position), first)
    negative = (v[last] & _RLE_SIGN_BIT) != 0
    value[negative] -= np.left_shift(np.int64(1), _RLE_CHUNK_BITS * n_chunks[negative])
    if np.abs(value).sum(dtype=np.float64) >= _RLE_MAX_TOTAL:
        raise InputError(
            f"{where}: RLE values add up to about {np.abs(value).sum(dtype=np.float64):.3g}; "
            "far more pixels than any image has (not a mask string)"
        )
    out = value.copy()
    out[1::2] = np.cumsum(value[1::2])  # counts 3, 5, ... are stored as differences
    out[2::2] = np.cumsum(value[2::2])  # counts 4, 6, ... likewise (count 2 is absolute)
    return out


def checked_rle(encoded: str, height: int, width: int, where: str) -> tuple[dict, int]:
    """Decode a mask string to a compressed RLE dict and its area, checking the run lengths
    (non-negative, summing to ``height * width`` without overflow) and bounding the text's
    decompressed size by what a mask of the image can need."""
    n_pixels = height * width
    if n_pixels > MAX_MASK_PIXELS:
        raise InputError(
            f"{where}: the image is {width}x{height} = {n_pixels} pixels; masks of images over {MAX_MASK_PIXELS} pixels are not supported"
        )
    data = decode_counts(encoded, where=where, max_bytes=_RLE_MAX_CHUNKS * (n_pixels + 1))
    counts = rle_counts(data, where=where)
    if (counts < 0).any():
        i = int(np.flatnonzero(counts < 0)[0])
        raise InputError(f"{where}: RLE run {i + 1} has negative length {int(counts[i])}; run lengths must be >= 0")
    approximate = counts.sum(dtype=np.float64)  # an int64 sum of many large runs could wrap around
    total: int | str = int(counts.sum()) if approximate < _RLE_MAX_TOTAL else f"about {approximate:.3g}"
    if total != n_pixels:
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
    return checked_rle(encoded, height, width, where)[0]
