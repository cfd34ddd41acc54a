"""What the property-based (hypothesis) tests of the readers share: the settings, the
check that a reader accepts a file or raises one short :class:`InputError` line, the
check of a CLI's answer, and strategies for odd CSV fields and encodings."""

from __future__ import annotations

import contextlib
import io as stdio
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

from hpaseg.errors import InputError

#: Longest error message accepted (the file's path included): one readable line.
MAX_MESSAGE_CHARS = 400

#: Examples per property, and a deadline per example that catches a hang.
FUZZ = settings(
    max_examples=300,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


def write_file(data: bytes, name: str = "table.csv") -> Path:
    """``data`` in a new file of a new temporary folder."""
    path = Path(tempfile.mkdtemp(prefix="fuzz")) / name
    path.write_bytes(data)
    return path


def check_error(exc: InputError) -> None:
    message = str(exc)
    assert "\n" not in message and "\r" not in message, repr(message)
    assert len(message) <= MAX_MESSAGE_CHARS, f"{len(message)} chars: {message[:200]}..."


def accepts_or_input_error(fn: Callable, *args, record: bool = True) -> object:
    """``fn(*args)``, or the InputError it raised (checked: one short line); any other
    exception fails the test."""
    try:
        result = fn(*args)
    except InputError as exc:
        check_error(exc)
        if record:
            event(f"{fn.__name__}: InputError")
        return exc
    if record:
        event(f"{fn.__name__}: accepted")
    return result


def check_cli(main: Callable[[Sequence[str]], int], argv: Sequence[str]) -> int:
    """Run a CLI's ``main``: exit status 0, or 2 with exactly one ``hpaseg ...`` line on stderr."""
    err = stdio.StringIO()
    with contextlib.redirect_stdout(stdio.StringIO()), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    lines = err.getvalue().splitlines()
    assert rc in (0, 2), (rc, err.getvalue())
    if rc == 2:
        assert len(lines) == 1 and lines[0].startswith("hpaseg "), err.getvalue()
        assert len(lines[0]) <= MAX_MESSAGE_CHARS + 40, lines[0][:300]
    return rc


def odd(data: st.DataObject, percent: int = 20) -> bool:
    """True in about ``percent`` % of draws: where a field goes wrong."""
    return data.draw(st.integers(0, 99)) >= 100 - percent  # hypothesis favours 0: the usual case


def number(data: st.DataObject) -> str:
    """The text of a number field gone wrong: huge, negative, thousands of digits, not decimal."""
    return data.draw(
        st.one_of(
            st.integers(-(10**30), 10**30).map(str),
            st.sampled_from(["0", "-1", "4", "3", "1e3", "0x10", "nan", "inf", "", " 4", "4 ", "+4", "٣", "1_0"]),
            st.integers(1, 6000).map(lambda n: "9" * n),
            st.integers(1, 6000).map(lambda n: "0" * n + "4"),
            st.floats(allow_nan=True, allow_infinity=True).map(repr),
        )
    )


def quoted(field: str, data: st.DataObject) -> str:
    """A CSV field as written: plain, quoted (quotes doubled), or with an unterminated quote."""
    if odd(data, 3):
        return '"' + field
    if odd(data, 30):
        return '"' + field.replace('"', '""') + '"'
    return field


def csv_bytes(rows: list[list[str]], data: st.DataObject) -> bytes:
    """``rows`` as a CSV file: LF, CRLF or CR line ends; UTF-8, with a BOM, UTF-16, Latin-1 or
    cp1252; sometimes cut short."""
    end = data.draw(st.sampled_from(["\r\n", "\r"])) if odd(data, 30) else "\n"
    text = end.join(",".join(quoted(f, data) for f in row) for row in rows) + end
    encoding = data.draw(st.sampled_from(["utf-8-sig", "utf-16", "latin-1", "cp1252"])) if odd(data) else "utf-8"
    raw = text.encode(encoding, errors="replace")
    if odd(data, 10):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    return raw


def header(columns: Sequence[str], data: st.DataObject) -> list[str]:
    """Mostly ``columns``; sometimes reordered with an extra column, or arbitrary text."""
    if odd(data, 10):
        return data.draw(st.lists(st.text(max_size=6)))
    if odd(data, 10):
        return data.draw(st.permutations([*columns, "extra"]))
    return list(columns)
