"""The strict submission validator (``hpaseg validate``).

Rules
-----
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

The file is read line by line with the ``csv`` module (not pandas), so the first
problem is reported with its exact line and field without reading the rest.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from ..classes import NUM_CLASSES
from ..errors import InputError, excerpt
from ..io import FLOAT_RE, INT_RE, list_image_ids, long_csv_fields, read_image_size
from .format import SUBMISSION_HEADER
from .rle import checked_rle

__all__ = ["ValidationReport", "validate_submission"]


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
    if not INT_RE.fullmatch(text) or int(text) <= 0:
        raise InputError(f"{where}, {name}: {excerpt(text)}; expected a positive integer number of pixels")
    return int(text)


def _validate_prediction_string(text: str, width: int, height: int, where: str) -> tuple[int, int]:
    """Check one PredictionString; return (number of predictions, number of distinct masks)."""
    if text == "":
        return 0, 0
    tokens = text.split(" ")
    if "" in tokens:
        raise InputError(
            f"{where}: empty token (a leading, trailing or double space); expected 'label confidence mask' triples separated by single spaces"
        )
    if len(tokens) % 3:
        raise InputError(f"{where}: {len(tokens)} tokens; expected 'label confidence mask' triples (a multiple of 3)")
    masks: dict[str, None] = {}
    for i in range(0, len(tokens), 3):
        label_text, conf_text, mask = tokens[i : i + 3]
        at = f"{where} triple {i // 3 + 1} (tokens {i + 1}-{i + 3})"
        if not INT_RE.fullmatch(label_text) or int(label_text) >= NUM_CLASSES:
            raise InputError(f"{at}, label: {excerpt(label_text)}; expected an integer class id 0-{NUM_CLASSES - 1}")
        if not FLOAT_RE.fullmatch(conf_text):
            raise InputError(f"{at}, confidence: {excerpt(conf_text)}; expected a finite decimal number in [0, 1]")
        confidence = float(conf_text)
        if not 0.0 <= confidence <= 1.0:
            raise InputError(f"{at}, confidence: {excerpt(conf_text)}; expected a number in [0, 1]")
        if mask not in masks:
            _, area = checked_rle(mask, height, width, f"{at}, mask")
            if area == 0:
                raise InputError(f"{at}, mask: the mask covers no pixel; every prediction needs a non-empty cell mask")
            masks[mask] = None
    return len(tokens) // 3, len(masks)


def _check_row(
    fields: list[str], where: str, seen: dict[str, int], expected: set[str] | None, data_dir
) -> tuple[str, int, int, str]:
    """Check the ID and size fields of one row; returns ``(ID, width, height, PredictionString)``."""
    if len(fields) != len(SUBMISSION_HEADER):
        raise InputError(
            f"{where}: {len(fields)} fields; expected {len(SUBMISSION_HEADER)} ({','.join(SUBMISSION_HEADER)})"
        )
    image_id, width_text, height_text, predictions = fields
    if not image_id or image_id != image_id.strip():
        raise InputError(f"{where}, ID: {excerpt(image_id)}; expected a non-empty image ID without surrounding spaces")
    if image_id in seen:
        raise InputError(
            f"{where}, ID: {excerpt(image_id)} already on line {seen[image_id]}; each image must appear once"
        )
    if expected is not None and image_id not in expected:
        raise InputError(
            f"{where}, ID: {excerpt(image_id)} is not an image in {data_dir}; rows are only allowed for its images"
        )
    width = _positive_int(width_text, where, "ImageWidth")
    height = _positive_int(height_text, where, "ImageHeight")
    if data_dir is not None:
        true_h, true_w = read_image_size(data_dir, image_id)
        if (width, height) != (true_w, true_h):
            raise InputError(
                f"{where}, ImageWidth/ImageHeight: {width}x{height}; the image in {data_dir} is {true_w}x{true_h}"
            )
    return image_id, width, height, predictions


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

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    expected_ids: list[str] | None = None
    if data_dir is not None:
        expected_ids = list_image_ids(data_dir)
        if not expected_ids:
            raise InputError(f"{data_dir}: no images ({{ID}}_green.png files); expected the folder of test images")
    expected = set(expected_ids) if expected_ids is not None else None
    seen: dict[str, int] = {}
    n_predictions = n_cells = n_empty = 0
    try:
        with long_csv_fields(), open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, strict=True)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: empty file; expected the header {','.join(SUBMISSION_HEADER)}")
            if tuple(header) != SUBMISSION_HEADER:
                raise InputError(
                    f"{path}, line 1: header is {excerpt(','.join(header))}; expected exactly {','.join(SUBMISSION_HEADER)!r}"
                )
            for fields in reader:
                line = reader.line_num
                where = f"{path}, line {line}"
                image_id, width, height, predictions = _check_row(fields, where, seen, expected, data_dir)
                seen[image_id] = line
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
    return ValidationReport(
        str(path), len(seen), n_predictions, n_cells, n_empty, None if data_dir is None else str(data_dir)
    )
