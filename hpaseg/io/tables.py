"""Tables: image labels (``train.csv``), per-cell tables and any CSV hpaseg reads or writes.

Tables are pandas DataFrames. Reading is strict: a CSV is tokenised with the standard
library's ``csv`` module first, so that a row with a missing or an extra field is an
error naming its line (pandas' reader pads short rows and silently turns an extra
field into an index or drops it), then handed to pandas with every column as text and
the line number of each row in the column :data:`LINE`. A UTF-8 byte-order mark is
accepted. Writing goes through :func:`hpaseg.io.atomic_write`.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..classes import NUM_CLASSES
from ..errors import InputError, excerpt
from .files import atomic_write

__all__ = [
    "LINE",
    "INT_RE",
    "FLOAT_RE",
    "parse_labels",
    "format_labels",
    "long_csv_fields",
    "read_table",
    "write_table",
    "read_labels_csv",
    "write_labels_csv",
    "read_cell_labels_csv",
    "write_cell_labels_csv",
    "PROBABILITY_COLUMNS",
    "CELL_PROBABILITIES_CSV",
    "read_cell_probabilities_csv",
    "write_cell_probabilities_csv",
]

#: Column of :func:`read_table`'s DataFrames holding each row's line number in the file
#: (the header is line 1), for error messages.
LINE = "_line"
#: Longest CSV field read: a PredictionString of ~100 cells x 19 labels is ~1 MB, far
#: beyond the ``csv`` module's default limit of 131072 characters.
_MAX_CSV_FIELD_CHARS = 2**31 - 1
#: A non-negative integer in ASCII digits (``str.isdigit`` also accepts e.g. superscripts,
#: which ``int`` rejects), at most 18 of them: every count, size and id fits, the value
#: fits an int64, and ``int`` never meets Python's limit on digits (4300) of a conversion.
INT_RE = re.compile(r"[0-9]{1,18}")
#: A decimal number as CSV tables hold confidences (no ``inf``, ``nan`` or ``1_0``).
FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_labels(text: str, *, where: str = "Label") -> tuple[int, ...]:
    """Parse a ``|``-separated label string into sorted unique class ids.

    >>> parse_labels("16|0|16")
    (0, 16)
    >>> parse_labels("19")
    Traceback (most recent call last):
    ...
    hpaseg.errors.InputError: Label: label '19' is outside 0-18; expected '|'-separated class ids 0-18
    """
    parts = [p.strip() for p in str(text).split("|")]
    if not parts or any(p == "" for p in parts):
        raise InputError(
            f"{where}: empty label in {excerpt(text)}; expected '|'-separated class ids 0-{NUM_CLASSES - 1}"
        )
    labels = set()
    for part in parts:
        if not INT_RE.fullmatch(part):
            raise InputError(
                f"{where}: label {excerpt(part)} is not an integer; expected '|'-separated class ids 0-{NUM_CLASSES - 1}"
            )
        value = int(part)
        if not 0 <= value < NUM_CLASSES:
            raise InputError(
                f"{where}: label {excerpt(part)} is outside 0-{NUM_CLASSES - 1}; expected '|'-separated class ids 0-{NUM_CLASSES - 1}"
            )
        labels.add(value)
    return tuple(sorted(labels))


def format_labels(labels: Iterable[int]) -> str:
    """Inverse of :func:`parse_labels`.

    >>> format_labels([16, 0])
    '0|16'
    """
    return "|".join(str(v) for v in sorted(set(int(x) for x in labels)))


@contextlib.contextmanager
def long_csv_fields() -> Iterator[None]:
    """Lift the ``csv`` module's (process-wide) field size limit while reading."""
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, _MAX_CSV_FIELD_CHARS))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def read_table(path: str | os.PathLike, required: Sequence[str]) -> pd.DataFrame:
    """Read a CSV with a header line, strictly (see the module docstring).

    Parameters
    ----------
    path : path
    required : sequence of str
        Columns that must be present; others are kept.

    Returns
    -------
    pandas.DataFrame
        Every column as text (``str``), in file order, plus :data:`LINE` (int), the
        line of each row in the file.

    Raises
    ------
    InputError
        Missing file, empty file, missing columns, a row with another number of
        fields than the header, a file that is not UTF-8 text or not CSV.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = path.write_text("ID,Label\\na,0|16\\n")
    >>> read_table(path, ["ID"]).to_dict("records")
    [{'ID': 'a', 'Label': '0|16', '_line': 2}]
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with long_csv_fields(), open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, strict=True)
            header = next(reader, None)
            if not header:
                raise InputError(f"{path}: empty file; expected a header line with columns {','.join(required)}")
            missing = [c for c in required if c not in header]
            if missing:
                raise InputError(
                    f"{path}: header is {excerpt(','.join(header))}; missing column(s) {','.join(missing)}"
                )
            rows, lines = [], []
            for fields in reader:
                if len(fields) != len(header):
                    raise InputError(
                        f"{path}, line {reader.line_num}: expected {len(header)} fields ({','.join(header)}), got {len(fields)}"
                    )
                rows.append(fields)
                lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a UTF-8 text CSV ({exc})") from exc
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV ({exc})") from exc
    table = pd.DataFrame(rows, columns=header, dtype=str) if rows else pd.DataFrame(columns=header, dtype=str)
    table[LINE] = pd.Series(lines, dtype="int64")
    return table


def write_table(path: str | os.PathLike, table: pd.DataFrame) -> None:
    """Write a DataFrame as CSV without its index (atomically); :data:`LINE` is not written."""
    with atomic_write(path, "w") as fh:
        table.drop(columns=[LINE], errors="ignore").to_csv(fh, index=False, lineterminator="\n")


def read_labels_csv(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Read an image-level label CSV (``ID,Label``), as Kaggle's ``train.csv``.

    Returns
    -------
    dict
        ``{ID: (class ids, sorted)}`` in file order.

    Raises
    ------
    InputError
        Empty file, missing columns, a row with a bad label or a duplicate ID;
        the message names the file and line.
    """
    table = read_table(path, ("ID", "Label"))
    if table.empty:
        raise InputError(f"{path}: no rows after the header; expected one 'ID,Label' row per image")
    labels: dict[str, tuple[int, ...]] = {}
    for image_id, text, line in zip(table["ID"].str.strip(), table["Label"], table[LINE]):
        where = f"{path}, line {line}"
        if not image_id:
            raise InputError(f"{where}: empty ID")
        if image_id in labels:
            raise InputError(f"{where}: duplicate ID {excerpt(image_id)}; each image must appear once")
        labels[image_id] = parse_labels(text, where=where)
    return labels


def write_labels_csv(path: str | os.PathLike, labels: dict[str, Iterable[int]]) -> None:
    """Write ``{ID: labels}`` as an ``ID,Label`` CSV (atomically)."""
    write_table(path, pd.DataFrame({"ID": list(labels), "Label": [format_labels(v) for v in labels.values()]}))


def read_cell_labels_csv(path: str | os.PathLike) -> dict[str, dict[int, tuple[int, ...]]]:
    """Read a per-cell label CSV (``ID,cell,Label``; other columns ignored), as the
    ``cell_labels.csv`` of ``hpaseg synth`` or the ``refined_labels.csv`` of a cell
    classifier run.

    Returns
    -------
    dict
        ``{ID: {cell: (class ids, sorted)}}``.

    Raises
    ------
    InputError
        Missing columns, a bad cell number or label, or a cell listed twice; the
        message names the file and line.
    """
    table = read_table(path, ("ID", "cell", "Label"))
    out: dict[str, dict[int, tuple[int, ...]]] = {}
    for image_id, cell, text, line in zip(table["ID"].str.strip(), table["cell"], table["Label"], table[LINE]):
        where = f"{path}, line {line}"
        if not INT_RE.fullmatch(cell.strip()) or int(cell) < 1:
            raise InputError(f"{where}: cell {cell!r}; expected a cell number >= 1")
        cells = out.setdefault(image_id, {})
        if int(cell) in cells:
            raise InputError(f"{where}: cell {int(cell)} of image {image_id!r} listed twice")
        cells[int(cell)] = parse_labels(text, where=where)
    return out


def write_cell_labels_csv(path: str | os.PathLike, labels: dict[str, dict[int, Iterable[int]]]) -> None:
    """Write ``{ID: {cell: labels}}`` as an ``ID,cell,Label`` CSV (atomically)."""
    rows = [(i, c, format_labels(v)) for i, cells in labels.items() for c, v in sorted(cells.items())]
    write_table(path, pd.DataFrame(rows, columns=["ID", "cell", "Label"]))


#: Columns of a per-cell probability CSV after ``ID`` and ``cell``: ``p0`` ... ``p18``.
PROBABILITY_COLUMNS: tuple[str, ...] = tuple(f"p{k}" for k in range(NUM_CLASSES))
#: File name of a cell classifier run's probabilities of its training cells (a teacher's).
CELL_PROBABILITIES_CSV = "cell_probabilities.csv"


def read_cell_probabilities_csv(path: str | os.PathLike) -> dict[str, dict[int, np.ndarray]]:
    """Read a per-cell probability CSV (``ID,cell,p0,...,p18``), as the
    ``cell_probabilities.csv`` of a cell classifier run (a teacher's probabilities).

    Returns
    -------
    dict
        ``{ID: {cell: (19,) float64 probabilities}}``.

    Raises
    ------
    InputError
        Missing columns, a bad cell number, a value that is not a number in [0, 1], or a
        cell listed twice; the message names the file and line.
    """
    table = read_table(path, ("ID", "cell", *PROBABILITY_COLUMNS))
    values = table[list(PROBABILITY_COLUMNS)].to_numpy(dtype=str)
    out: dict[str, dict[int, np.ndarray]] = {}
    for row, (image_id, cell, line) in enumerate(zip(table["ID"].str.strip(), table["cell"], table[LINE])):
        where = f"{path}, line {line}"
        if not INT_RE.fullmatch(cell.strip()) or int(cell) < 1:
            raise InputError(f"{where}: cell {cell!r}; expected a cell number >= 1")
        bad = [v for v in values[row] if not FLOAT_RE.fullmatch(v.strip()) or not 0.0 <= float(v) <= 1.0]
        if bad:
            raise InputError(f"{where}: probability {excerpt(str(bad[0]))}; expected numbers in [0, 1] in p0..p18")
        cells = out.setdefault(image_id, {})
        if int(cell) in cells:
            raise InputError(f"{where}: cell {int(cell)} of image {image_id!r} listed twice")
        cells[int(cell)] = values[row].astype(np.float64)
    return out


def write_cell_probabilities_csv(path: str | os.PathLike, probabilities: dict[str, dict[int, np.ndarray]]) -> None:
    """Write ``{ID: {cell: (19,) probabilities}}`` as an ``ID,cell,p0,...,p18`` CSV (atomically)."""
    rows = [
        (i, c, *(f"{float(v):.6g}" for v in p)) for i, cells in probabilities.items() for c, p in sorted(cells.items())
    ]
    write_table(path, pd.DataFrame(rows, columns=["ID", "cell", *PROBABILITY_COLUMNS]))
