"""Property-based tests (hypothesis) of the CSV readers of :mod:`hpaseg.io.tables`: the
image-label CSV (``ID,Label``, Kaggle's ``train.csv``) and any table. Random bytes, odd
encodings (a byte-order mark, UTF-16, Latin-1), CRLF or CR line ends, quoted fields and
unterminated quotes, missing or extra fields, huge, negative and thousands-of-digits
labels: each file is read or refused with one short :class:`~hpaseg.errors.InputError`
line, never another exception, never a hang."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hpaseg import io
from hpaseg.errors import InputError

from ..fuzzing import FUZZ, accepts_or_input_error, csv_bytes, header, number, odd, write_file


def _labels(data: st.DataObject) -> str:
    parts = [
        number(data) if odd(data) else str(data.draw(st.integers(0, 18))) for _ in range(data.draw(st.integers(1, 4)))
    ]
    separator = data.draw(st.sampled_from(["||", ",", " | ", ";"])) if odd(data, 10) else "|"
    return separator.join(parts)


def labels_csv_bytes(data: st.DataObject) -> bytes:
    rows = [header(("ID", "Label"), data)]
    for _ in range(data.draw(st.integers(0, 5))):
        image_id = data.draw(st.text(max_size=6)) if odd(data, 10) else data.draw(st.sampled_from(["a", "b", "c"]))
        rows.append([image_id, _labels(data)] + (["extra"] if odd(data, 5) else []))
    return csv_bytes(rows, data)


@FUZZ
@given(st.data())
def test_label_csv_files(data):
    labels = accepts_or_input_error(io.read_labels_csv, write_file(labels_csv_bytes(data)))
    if not isinstance(labels, InputError):
        assert labels and all(all(0 <= k < 19 for k in v) for v in labels.values())


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes(raw):
    path = write_file(raw)
    accepts_or_input_error(io.read_labels_csv, path)
    accepts_or_input_error(io.read_table, path, ("ID",))


def test_a_label_of_thousands_of_digits_is_an_input_error():
    exc = accepts_or_input_error(io.read_labels_csv, write_file(f"ID,Label\na,{'1' * 5000}\n".encode()), record=False)
    assert isinstance(exc, InputError) and "(5000 characters)" in str(exc), exc
