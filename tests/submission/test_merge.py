"""Tests of hpaseg.submission.merge: partial submissions of a job array joined, checked by
the validator, written only when valid."""

from __future__ import annotations

import numpy as np
import pytest

from hpaseg import io
from hpaseg.errors import InputError
from hpaseg.submission import (
    Prediction,
    SubmissionRow,
    encode_label_image,
    merge_rows,
    merge_submissions,
    read_submission,
    write_submission,
)

SIZE = 16
IDS = ["img_a", "img_b", "img_c"]


def _row(image_id: str, k: int) -> SubmissionRow:
    cells = np.zeros((SIZE, SIZE), np.int32)
    cells[2 : 6 + k, 3:9] = 1
    cells[10:14, 8 : 12 + k] = 2
    masks = encode_label_image(cells)
    return SubmissionRow(
        image_id, SIZE, SIZE, [Prediction(label, 0.25 * (label + 1), masks[1 + label % 2]) for label in range(3)]
    )


@pytest.fixture
def data(tmp_path):
    """A test folder of three images (their pixels do not matter, their sizes do)."""
    folder = tmp_path / "test"
    for image_id in IDS:
        io.write_rgby(folder, image_id, np.zeros((SIZE, SIZE, 4), np.uint8))
    return folder


def _parts(tmp_path, groups: list[list[str]]) -> list:
    paths = []
    for i, ids in enumerate(groups):
        path = tmp_path / f"part-{i}-of-{len(groups)}.csv"
        write_submission(path, [_row(image_id, IDS.index(image_id)) for image_id in ids])
        paths.append(path)
    return paths


def test_parts_merge_sorted_by_id_into_the_unsharded_file(tmp_path, data):
    parts = _parts(tmp_path, [["img_c", "img_a"], ["img_b"]])
    out = tmp_path / "sub.csv"
    report = merge_submissions(parts, out, data)
    assert report.path == str(out) and report.n_images == 3 and report.n_predictions == 9
    assert [r.image_id for r in read_submission(out)] == IDS
    whole = tmp_path / "whole.csv"
    write_submission(whole, [_row(i, k) for k, i in enumerate(IDS)])
    assert out.read_bytes() == whole.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*(p.name for p in parts), "sub.csv", "whole.csv", "test"]
    )


def test_an_image_in_two_parts_is_refused_naming_both(tmp_path, data):
    parts = _parts(tmp_path, [["img_a", "img_b"], ["img_b", "img_c"]])
    with pytest.raises(InputError, match=r"part-1-of-2.csv: image 'img_b' is also in .*part-0-of-2.csv"):
        merge_rows(parts, data)


def test_missing_and_foreign_images_with_the_data_folder(tmp_path, data):
    parts = _parts(tmp_path, [["img_a"], ["img_c"]])
    with pytest.raises(InputError, match="1 of the 3 images of .* are in none of the 2 parts, first 'img_b'"):
        merge_rows(parts, data)
    assert [r.image_id for r in merge_rows(parts)] == ["img_a", "img_c"]  # no folder: no completeness check
    (tmp_path / "x").mkdir()
    foreign = tmp_path / "x" / "part.csv"
    write_submission(foreign, [SubmissionRow("img_z", SIZE, SIZE)])
    with pytest.raises(InputError, match="image 'img_z' is not an image of"):
        merge_rows([*_parts(tmp_path, [IDS]), foreign], data)


def test_bad_parts_are_refused_before_anything_is_written(tmp_path, data):
    out = tmp_path / "sub.csv"
    with pytest.raises(InputError, match="no partial submission given"):
        merge_submissions([], out, data)
    (part,) = _parts(tmp_path, [IDS])
    with pytest.raises(InputError, match="is given twice"):
        merge_submissions([part, part], out, data)
    with pytest.raises(InputError, match="is one of the parts"):
        merge_submissions([part], part, data)
    bad = tmp_path / "bad.csv"
    bad.write_text(part.read_text().replace("0.25", "1.25", 1))
    with pytest.raises(InputError, match=r"bad.csv, line 2, PredictionString.*confidence"):
        merge_submissions([bad], out, data)
    small = tmp_path / "small"
    for image_id in IDS:
        io.write_rgby(small, image_id, np.zeros((SIZE // 2, SIZE // 2, 4), np.uint8))
    with pytest.raises(InputError, match=r"sub.csv \(merged\), line 2"):  # sizes checked on the merged file
        merge_submissions([part], out, small)
    assert not out.exists() and not any(p.name.startswith(".") for p in tmp_path.iterdir())
