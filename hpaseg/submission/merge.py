"""Partial submissions joined into one: the parts that the tasks of a predict job array
write (``hpaseg predict --shard I/N``), merged and checked by the strict validator.

Each part is first checked on its own (:func:`~hpaseg.submission.validate_submission`,
so a problem names the part, line and field), an image in two parts is refused (naming
both), and with the test images' folder every image must be in exactly one part. The
rows, sorted by ID as an unsharded ``hpaseg predict`` writes them, are written to a
temporary file beside the output, validated again as a whole against the folder, and
only then renamed to the output: a merge that fails leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from ..io import TEMP_SUFFIX, list_image_ids
from .format import SubmissionRow, read_submission, write_submission
from .validate import ValidationReport, validate_submission

__all__ = ["merge_rows", "merge_submissions"]


def merge_rows(parts: Sequence[str | os.PathLike], data_dir: str | os.PathLike | None = None) -> list[SubmissionRow]:
    """The rows of the partial submissions ``parts``, sorted by ID, each part validated.

    Parameters
    ----------
    parts : sequence of path
        Submission CSVs, each holding some of the images (e.g. one per ``--shard I/N``).
    data_dir : path, optional
        Folder of the test images: every image there must be in one part, and no other.

    Returns
    -------
    list of SubmissionRow

    Raises
    ------
    InputError
        No parts, the same file twice, a part the validator refuses, an image in two
        parts, or (with ``data_dir``) an image in none or one that is not in the folder.
    """
    if not parts:
        raise InputError("parts: no partial submission given; expected the CSVs of 'hpaseg predict --shard I/N'")
    paths = [Path(p) for p in parts]
    seen_paths: set[Path] = set()
    for path in paths:
        if path.resolve() in seen_paths:
            raise InputError(f"parts: {path} is given twice; give each partial submission once", param="parts")
        seen_paths.add(path.resolve())
    owner: dict[str, Path] = {}
    rows: list[SubmissionRow] = []
    for path in paths:
        validate_submission(path)
        for row in read_submission(path):
            if row.image_id in owner:
                raise InputError(
                    f"{path}: image {row.image_id!r} is also in {owner[row.image_id]}; each image must be in one part "
                    "(parts of two different --shard N, or of two runs, mixed?)"
                )
            owner[row.image_id] = path
            rows.append(row)
    if data_dir is not None:
        expected = list_image_ids(data_dir)
        missing = [i for i in expected if i not in owner]
        if missing:
            raise InputError(
                f"{len(missing)} of the {len(expected)} images of {data_dir} are in none of the {len(paths)} parts, first {missing[0]!r}; "
                "a task of the array failed or a part was left out: rerun its 'hpaseg predict --shard I/N'"
            )
        extra = sorted(set(owner) - set(expected))
        if extra:
            raise InputError(
                f"{owner[extra[0]]}: image {extra[0]!r} is not an image of {data_dir} ({len(extra)} such); "
                "were the parts predicted on another folder?"
            )
    return sorted(rows, key=lambda r: r.image_id)


def merge_submissions(
    parts: Sequence[str | os.PathLike], out: str | os.PathLike, data_dir: str | os.PathLike | None = None
) -> ValidationReport:
    """Merge the partial submissions ``parts`` into ``out`` (:func:`merge_rows`), validated as a whole.

    Parameters
    ----------
    parts : sequence of path
    out : path
        The submission CSV to write; written only when the merged file passes
        :func:`~hpaseg.submission.validate_submission` (with ``data_dir``: IDs and sizes).
    data_dir : path, optional
        Folder of the test images.

    Returns
    -------
    ValidationReport
        The validator's report of ``out``.
    """
    out = Path(out)
    if any(Path(p).resolve() == out.resolve() for p in parts):
        raise InputError(f"out {out}: is one of the parts; write the merged submission elsewhere", param="out")
    rows = merge_rows(parts, data_dir)
    unchecked = out.parent / f".{out.name}.unvalidated{TEMP_SUFFIX}"
    try:
        write_submission(unchecked, rows)
        try:
            report = validate_submission(unchecked, data_dir)
        except InputError as exc:
            raise InputError(str(exc).replace(str(unchecked), f"{out} (merged)")) from None
        os.replace(unchecked, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(unchecked)
    return dataclasses.replace(report, path=str(out))
