"""Property-based tests (hypothesis) of the submission reader, the strict validator, the
evaluator and the per-cell label table reader: whatever bytes a file holds (random bytes, truncated base64, a byte-order mark,
CRLF line ends, quoted fields, other encodings, huge or negative numbers), each either
accepts it or raises :class:`~hpaseg.errors.InputError` with one short line: never
another exception, never a hang (every example has a deadline). The CLIs on such files:
``tests/cli/test_fuzzed_inputs.py``."""

from __future__ import annotations

import base64
import zlib
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from hpaseg.errors import InputError
from hpaseg.evaluation import competition_map
from hpaseg.submission import (
    CELL_TABLE_HEADER,
    SUBMISSION_HEADER,
    encode_label_image,
    read_cell_labels,
    read_submission,
    validate_submission,
)

from ..fuzzing import FUZZ, accepts_or_input_error, csv_bytes, header, number, odd, write_file

_LABELS = np.array([[1, 1, 0, 2], [1, 0, 2, 2], [3, 3, 0, 2]])
#: Valid mask strings of a 4x3 image, to build rows from.
MASKS = list(encode_label_image(_LABELS).values())


# --------------------------------------------------------------------------- strategies


def _truncated(text: str, data: st.DataObject) -> str:
    return text[: data.draw(st.integers(0, len(text)))]


def _mutated(text: str, data: st.DataObject) -> str:
    """One character of ``text`` replaced by any character."""
    if not text:
        return text
    i = data.draw(st.integers(0, len(text) - 1))
    return text[:i] + data.draw(st.characters()) + text[i + 1 :]


def _mask(data: st.DataObject) -> str:
    mask = data.draw(st.sampled_from(MASKS))
    if not odd(data, 40):
        return mask
    kind = data.draw(st.sampled_from(["truncated", "mutated", "raw", "garbage", "bomb", "other counts"]))
    if kind == "truncated":
        return _truncated(mask, data)
    if kind == "mutated":
        return _mutated(mask, data)
    if kind == "raw":  # base64 of arbitrary bytes, of zlib of arbitrary bytes
        payload = data.draw(st.binary(max_size=64))
        return base64.b64encode(zlib.compress(payload) if data.draw(st.booleans()) else payload).decode()
    if kind == "garbage":
        return data.draw(st.text(max_size=40).filter(lambda t: "," not in t and "\n" not in t and " " not in t))
    if kind == "bomb":  # decompresses to far more than any mask of the image needs
        return base64.b64encode(zlib.compress(b"1" * data.draw(st.integers(1, 5_000_000)), 9)).decode()
    # COCO counts of random (possibly huge or negative) run lengths, sometimes summing to the image
    counts = data.draw(st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=8))
    if data.draw(st.booleans()):
        counts.append(12 - sum(counts))
    return base64.b64encode(zlib.compress(_coco_string(counts))).decode()


def _coco_string(counts: list[int]) -> bytes:
    """COCO's compressed RLE string of any run lengths (pycocotools' ``rleToString``)."""
    out = bytearray()
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(c + 48)
    return bytes(out)


def _prediction_string(data: st.DataObject) -> str:
    triples = []
    for _ in range(data.draw(st.integers(0, 3))):
        label = number(data) if odd(data) else str(data.draw(st.integers(0, 18)))
        confidence = number(data) if odd(data) else f"{data.draw(st.floats(0, 1)):.3g}"
        triples.append(f"{label} {confidence} {_mask(data)}")
    separator = data.draw(st.sampled_from(["  ", "\t", " \u00a0"])) if odd(data, 10) else " "
    return separator.join(triples)


def _row(data: st.DataObject) -> list[str]:
    image_id = data.draw(st.one_of(st.text(max_size=8), st.just(""), st.just(" a"))) if odd(data, 10) else "a"
    if not odd(data, 30):  # a second image, or the same twice
        image_id = data.draw(st.sampled_from([image_id, "b", "c"]))
    width = number(data) if odd(data) else "4"
    height = number(data) if odd(data) else "3"
    row = [image_id, width, height, _prediction_string(data)]
    if odd(data, 5):  # a missing or an extra field
        row = row[:-1] if data.draw(st.booleans()) else row + ["extra"]
    return row


def submission_bytes(data: st.DataObject) -> bytes:
    """A submission-like file: a header (mostly right), rows of plausible and odd fields,
    quoted or not, LF or CRLF line ends, UTF-8 with or without a BOM, or another encoding,
    sometimes cut short."""
    rows = [header(SUBMISSION_HEADER, data)] + [_row(data) for _ in range(data.draw(st.integers(0, 4)))]
    return csv_bytes(rows, data)


def cell_table_bytes(data: st.DataObject) -> bytes:
    """A per-cell label table (``ID,cell,label,confidence``) with odd fields and encodings."""
    rows = [header(CELL_TABLE_HEADER, data)]
    for _ in range(data.draw(st.integers(0, 5))):
        image_id = data.draw(st.text(max_size=6)) if odd(data, 10) else data.draw(st.sampled_from(["a", "b"]))
        cell = number(data) if odd(data) else str(data.draw(st.integers(1, 3)))
        label = number(data) if odd(data) else str(data.draw(st.integers(0, 18)))
        confidence = number(data) if odd(data) else f"{data.draw(st.floats(0, 1)):.3g}"
        rows.append([image_id, cell, label, confidence] + (["extra"] if odd(data, 5) else []))
    return csv_bytes(rows, data)


# --------------------------------------------------------------------------- properties


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes(raw):
    path = write_file(raw)
    accepts_or_input_error(validate_submission, path)
    accepts_or_input_error(read_submission, path)


@FUZZ
@given(st.data())
def test_submission_like_files(data):
    path = write_file(submission_bytes(data))
    report = accepts_or_input_error(validate_submission, path)
    rows = accepts_or_input_error(read_submission, path)
    if not isinstance(report, InputError):
        assert not isinstance(rows, InputError), f"validated but unreadable: {rows}"


@FUZZ
@given(st.data())
def test_evaluate_any_pair(data):
    """The evaluator on a valid truth and a fuzzed submission, and the reverse."""
    good = (
        "ID,ImageWidth,ImageHeight,PredictionString\na,4,3,"
        + " ".join(f"{k} 1 {m}" for k, m in enumerate(MASKS))
        + "\n"
    ).encode()
    fuzzed = submission_bytes(data)
    truth, sub = (
        (write_file(good), write_file(fuzzed)) if data.draw(st.booleans()) else (write_file(fuzzed), write_file(good))
    )
    rows = [accepts_or_input_error(read_submission, p) for p in (truth, sub)]
    if not any(isinstance(r, InputError) for r in rows):
        accepts_or_input_error(competition_map, *rows)


@FUZZ
@given(st.data())
def test_cell_label_tables(data):
    accepts_or_input_error(read_cell_labels, write_file(cell_table_bytes(data)))


@FUZZ
@given(st.binary(max_size=2000))
def test_cell_label_tables_of_random_bytes(raw):
    accepts_or_input_error(read_cell_labels, write_file(raw))


# --------------------------------------------------------------------------- what fuzzing found


def _submission(row: str) -> Path:
    return write_file(f"ID,ImageWidth,ImageHeight,PredictionString\n{row}\n".encode())


def test_thousands_of_digits_are_an_input_error_not_a_value_error():
    """``int()`` refuses more than 4300 digits with a ValueError (Python >= 3.11): integer fields
    take at most 18 digits, and the message quotes only the start of the field."""
    for row in (f"a,{'9' * 5000},3,", f"a,4,3,{'1' * 5000} 0.5 {MASKS[0]}", f"a,4,3,0 {'9' * 5000} {MASKS[0]}"):
        for read in (validate_submission, read_submission):
            exc = accepts_or_input_error(read, _submission(row), record=False)
            assert isinstance(exc, InputError) and "(5000 characters)" in str(exc), exc


def test_run_lengths_that_wrap_around_int64_are_refused():
    """64 runs of 2**58 pixels and one of 12 sum to 12 in int64 arithmetic: the validator
    accepted that as a mask of a 4x3 image and the evaluator scored it."""
    mask = base64.b64encode(zlib.compress(_coco_string([2**58] * 64 + [12]))).decode()
    for read in (validate_submission, lambda p: competition_map(read_submission(p), read_submission(p))):
        exc = accepts_or_input_error(read, _submission(f"a,4,3,0 1 {mask}"), record=False)
        assert isinstance(exc, InputError) and "sum to about 1.84e+19 pixels but the image is 4x3" in str(exc), exc


def test_a_mask_string_that_decompresses_to_gigabytes_is_refused_early():
    mask = base64.b64encode(zlib.compress(b"1" * 50_000_000, 9)).decode()  # 50 MB from ~50 kB
    exc = accepts_or_input_error(validate_submission, _submission(f"a,4,3,0 1 {mask}"), record=False)
    assert isinstance(exc, InputError) and "decompresses to more than" in str(exc), exc


def test_masks_of_absurdly_large_images_are_refused():
    exc = accepts_or_input_error(validate_submission, _submission(f"a,{10**17},3,0 1 {MASKS[0]}"), record=False)
    assert isinstance(exc, InputError) and "not supported" in str(exc), exc
