"""The submission format: a CSV ``ID,ImageWidth,ImageHeight,PredictionString``.

A PredictionString is space-separated ``label confidence mask`` triples, one per
(cell, label), where ``mask`` is a Kaggle mask string (:mod:`hpaseg.submission.rle`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..classes import NUM_CLASSES
from ..errors import InputError, excerpt
from ..io import INT_RE, LINE, read_table, write_table

__all__ = [
    "Prediction",
    "SubmissionRow",
    "SUBMISSION_HEADER",
    "format_prediction_string",
    "parse_prediction_string",
    "write_submission",
    "read_submission",
]

SUBMISSION_HEADER: tuple[str, ...] = ("ID", "ImageWidth", "ImageHeight", "PredictionString")


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
        if not INT_RE.fullmatch(label_text) or not 0 <= int(label_text) < NUM_CLASSES:
            raise InputError(f"{where}, triple {k}: label {excerpt(label_text)}; expected an integer 0-18")
        try:
            confidence = float(conf_text)
        except ValueError:
            raise InputError(f"{where}, triple {k}: confidence {excerpt(conf_text)} is not a number") from None
        if not np.isfinite(confidence):
            raise InputError(f"{where}, triple {k}: confidence {excerpt(conf_text)} is not finite")
        out.append(Prediction(int(label_text), confidence, mask))
    return out


def write_submission(path: str | os.PathLike, rows: Iterable[SubmissionRow]) -> None:
    """Write a submission CSV (atomically), one line per image, in the order given."""
    rows = list(rows)
    table = pd.DataFrame(
        {
            "ID": [r.image_id for r in rows],
            "ImageWidth": [int(r.width) for r in rows],
            "ImageHeight": [int(r.height) for r in rows],
            "PredictionString": [format_prediction_string(r.predictions) for r in rows],
        },
        columns=list(SUBMISSION_HEADER),
    )
    write_table(path, table)


def read_submission(path: str | os.PathLike) -> list[SubmissionRow]:
    """Read a submission CSV, parsing every PredictionString.

    Raises
    ------
    InputError
        Missing columns, a non-integer size, a malformed triple or a duplicate ID;
        the message names the file and line.
    """
    out: list[SubmissionRow] = []
    seen: set[str] = set()
    table = read_table(path, SUBMISSION_HEADER)
    for row in table.to_dict("records"):
        where = f"{path}, line {row[LINE]}"
        image_id = row["ID"].strip()
        if not image_id:
            raise InputError(f"{where}: empty ID")
        if image_id in seen:
            raise InputError(f"{where}: duplicate ID {excerpt(image_id)}; each image must appear once")
        seen.add(image_id)
        sizes = row["ImageWidth"].strip(), row["ImageHeight"].strip()
        if not all(INT_RE.fullmatch(text) and int(text) > 0 for text in sizes):
            raise InputError(
                f"{where}: ImageWidth/ImageHeight {excerpt(row['ImageWidth'])}/{excerpt(row['ImageHeight'])}; expected positive integers"
            )
        width, height = int(sizes[0]), int(sizes[1])
        preds = parse_prediction_string(row["PredictionString"] or "", where=f"{where}, PredictionString")
        out.append(SubmissionRow(image_id, width, height, preds))
    return out
