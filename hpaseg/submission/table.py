"""Per-cell label tables (``ID,cell,label,confidence``, one row per (cell, label)) and the
submission rows built from them and the cells' label images."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..classes import NUM_CLASSES
from ..errors import InputError, excerpt
from ..io import FLOAT_RE, INT_RE, LINE, read_table, write_table
from .format import Prediction, SubmissionRow
from .rle import cell_runs, encode_counts, encode_label_image, rles_from_runs

__all__ = [
    "CellLabel",
    "CELL_TABLE_HEADER",
    "check_cell_labels",
    "read_cell_labels",
    "write_cell_labels",
    "build_submission",
    "submission_row",
]


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


def _where(c: CellLabel) -> str:
    return c.where or f"cell {c.cell} of image {excerpt(c.image_id)}, label {c.label}"


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
            raise InputError(
                f"{where}: ID {excerpt(c.image_id)}; expected a non-empty image ID without surrounding spaces"
            )
        if c.cell < 1:
            raise InputError(f"{where}: cell {c.cell}; expected a cell id >= 1 (0 is background)")
        if not 0 <= c.label < NUM_CLASSES:
            raise InputError(f"{where}: label {c.label} is outside 0-{NUM_CLASSES - 1}")
        if not (math.isfinite(c.confidence) and 0.0 <= c.confidence <= 1.0):
            raise InputError(f"{where}: confidence {c.confidence!r}; expected a finite number in [0, 1]")
        key = (c.image_id, c.cell, c.label)
        if key in seen:
            raise InputError(
                f"{where}: duplicate row for image {excerpt(c.image_id)}, cell {c.cell}, label {c.label} "
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
    out = []
    for row in read_table(path, CELL_TABLE_HEADER).to_dict("records"):
        where = f"{path}, line {row[LINE]}"
        cell_text, label_text, conf_text = row["cell"].strip(), row["label"].strip(), row["confidence"].strip()
        if not INT_RE.fullmatch(cell_text):
            raise InputError(
                f"{where}: cell {excerpt(row['cell'])}; expected a positive integer cell id of the image's mask"
            )
        if not INT_RE.fullmatch(label_text):
            raise InputError(
                f"{where}: label {excerpt(row['label'])}; expected an integer class id 0-{NUM_CLASSES - 1}"
            )
        if not FLOAT_RE.fullmatch(conf_text):
            raise InputError(
                f"{where}: confidence {excerpt(row['confidence'])} is not a number; expected a finite number in [0, 1]"
            )
        out.append(CellLabel(row["ID"].strip(), int(cell_text), int(label_text), float(conf_text), where))
    check_cell_labels(out)
    return out


def write_cell_labels(
    path: str | os.PathLike, cell_scores: Iterable[tuple[str, Mapping[int, Sequence[tuple[int, float]]]]]
) -> None:
    """Write per-cell (class, confidence) pairs as an ``ID,cell,label,confidence`` table (atomically).

    Parameters
    ----------
    path : path
    cell_scores : iterable of (str, dict)
        ``(ID, {cell: [(class, confidence), ...]})`` per image, as the predictors return them.
    """
    rows = [
        (i, int(c), int(k), f"{s:.6g}")
        for i, per_cell in cell_scores
        for c, pairs in per_cell.items()
        for k, s in pairs
    ]
    write_table(path, pd.DataFrame(rows, columns=list(CELL_TABLE_HEADER)))


def _describe_ids(ids: Sequence[int]) -> str:
    if not ids:
        return "no cells"
    lo, hi = min(ids), max(ids)
    if hi - lo + 1 == len(ids):
        return f"{len(ids)} cells, ids {lo}-{hi}"
    return f"{len(ids)} cells, ids between {lo} and {hi}"


def build_submission(label_images: Iterable[tuple[str, np.ndarray]], cells: Sequence[CellLabel]) -> list[SubmissionRow]:
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
    >>> from hpaseg.submission.rle import encode_binary_mask
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
            runs = cell_runs(label_image)
            for c in mine:
                if c.cell not in runs.bounds:
                    raise InputError(
                        f"{_where(c)}: cell {c.cell} is not in the mask of image {image_id!r} "
                        f"({_describe_ids(list(runs.bounds))}); expected a cell id of that image's mask"
                    )
            wanted = sorted({c.cell for c in mine})
            encoded = {k: encode_counts(rle["counts"]) for k, rle in rles_from_runs(runs, wanted).items()}
            predictions = [Prediction(c.label, c.confidence, encoded[c.cell]) for c in mine]
        rows.append(SubmissionRow(image_id, int(width), int(height), predictions))
    for image_id, mine in by_image.items():
        if image_id not in seen:
            raise InputError(
                f"{_where(mine[0])}: no mask was given for image {excerpt(image_id)}; every image with rows needs a cell mask"
            )
    return rows


def submission_row(
    image_id: str, label_image: np.ndarray, cell_scores: Mapping[int, Sequence[tuple[int, float]]]
) -> SubmissionRow:
    """One submission row from a label image and per-cell (class, confidence) pairs.

    Examples
    --------
    >>> row = submission_row("a", np.array([[0, 1], [1, 1]]), {1: [(0, 0.9), (16, 0.2)]})
    >>> [(p.label, p.confidence) for p in row.predictions], row.width, row.height
    ([(0, 0.9), (16, 0.2)], 2, 2)
    """
    encoded = encode_label_image(label_image, list(cell_scores))
    predictions = [Prediction(k, conf, encoded[cell]) for cell, pairs in cell_scores.items() for k, conf in pairs]
    return SubmissionRow(image_id, label_image.shape[1], label_image.shape[0], predictions)
