"""The Kaggle submission: mask strings, the CSV format, per-cell label tables, building and
strict validation.

Modules: :mod:`~hpaseg.submission.rle` (mask encoding and decoding),
:mod:`~hpaseg.submission.format` (rows, reading and writing),
:mod:`~hpaseg.submission.table` (per-cell label tables, building rows),
:mod:`~hpaseg.submission.validate` (the strict validator),
:mod:`~hpaseg.submission.merge` (partial submissions of a job array joined and validated).
"""

from .format import (
    SUBMISSION_HEADER,
    Prediction,
    SubmissionRow,
    format_prediction_string,
    parse_prediction_string,
    read_submission,
    write_submission,
)
from .merge import merge_rows, merge_submissions
from .rle import (
    decode_counts,
    decode_mask,
    decode_rle,
    encode_binary_mask,
    encode_counts,
    encode_label_image,
    label_image_rles,
    rle_counts,
)
from .table import (
    CELL_TABLE_HEADER,
    CellLabel,
    build_submission,
    check_cell_labels,
    read_cell_labels,
    submission_row,
    write_cell_labels,
)
from .validate import ValidationReport, validate_submission

__all__ = [
    "SUBMISSION_HEADER",
    "Prediction",
    "SubmissionRow",
    "format_prediction_string",
    "parse_prediction_string",
    "read_submission",
    "write_submission",
    "decode_counts",
    "decode_mask",
    "decode_rle",
    "encode_binary_mask",
    "encode_counts",
    "encode_label_image",
    "label_image_rles",
    "rle_counts",
    "CELL_TABLE_HEADER",
    "CellLabel",
    "build_submission",
    "check_cell_labels",
    "read_cell_labels",
    "submission_row",
    "write_cell_labels",
    "ValidationReport",
    "validate_submission",
    "merge_rows",
    "merge_submissions",
]
