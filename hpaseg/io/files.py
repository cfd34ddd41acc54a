"""Files written atomically, and JSON and ``.npy`` files.

Every writer of hpaseg goes through :func:`atomic_write`: it writes a temporary file
in the target folder and renames it, so an interrupted run never leaves a half-written
file behind and a reader never sees one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import InputError

__all__ = ["atomic_write", "check_output_path", "read_json", "write_json", "write_npy", "TEMP_SUFFIX"]

#: Suffix of the temporary files :func:`atomic_write` creates (``.{name}.XXXX.tmp``).
TEMP_SUFFIX = ".tmp"


_DEFAULT_FILE_MODE = 0o666


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: errno values of a write that fails for lack of space or permission (reported as InputError).
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS})


def _os_error(path: Path, exc: OSError, what: str) -> InputError:
    """A one-line InputError for a failed write: names the path and what to do."""
    reason = exc.strerror or type(exc).__name__
    hint = {
        errno.ENOSPC: "free some space or write elsewhere",
        errno.EDQUOT: "free some space or write elsewhere",
        errno.EACCES: "choose a folder you may write to",
        errno.EROFS: "choose a folder you may write to",
        errno.EPERM: "choose a folder you may write to",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.EISDIR: "the path is a folder; give a file name",
    }.get(exc.errno or 0, "check the path")
    return InputError(f"{path}: cannot {what} ({reason}); {hint}")


def check_output_path(path: str | os.PathLike, *, option: str, folder: bool) -> Path:
    """Check, before any work and without creating anything, that an output can be written at ``path``.

    Parameters
    ----------
    path : path
        Where the output goes.
    option : str
        The option or parameter that named it (``--out``), for the message.
    folder : bool
        True when ``path`` is a folder to fill (created later if missing); False when it
        is a file to write.

    Returns
    -------
    Path

    Raises
    ------
    InputError
        ``path`` is a file where a folder is expected (or the reverse), a part of it is
        a file, or the nearest existing folder on the way is not writable.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     check_output_path(f.name, option="--out", folder=True)
    Traceback (most recent call last):
    ...
    hpaseg.errors.InputError: --out ...: is an existing file; expected a folder (new or existing)
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise InputError(f"{option} {path}: is an existing file; expected a folder (new or existing)")
    if not folder and path.is_dir():
        raise InputError(f"{option} {path}: is a folder; expected a file name")
    existing = path if folder and path.is_dir() else path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{option} {path}: {existing} is a file, not a folder; choose a path through folders")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: the folder {existing} is not writable; choose a folder you may write to")
    return path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file next to ``path`` and rename it to ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    Parent folders are created. ``mode`` is ``"w"`` (text, UTF-8, ``newline=""``)
    or ``"wb"``. A write that fails for lack of space or permission raises a one-line
    :class:`InputError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise _os_error(path, exc, "create the file") from exc
    try:
        if "b" in mode:
            fh = os.fdopen(fd, mode, **open_kwargs)
        else:
            open_kwargs.setdefault("encoding", "utf-8")
            open_kwargs.setdefault("newline", "")
            fh = os.fdopen(fd, mode, **open_kwargs)
        try:
            with fh:
                yield fh
            os.chmod(tmp, _DEFAULT_FILE_MODE & ~_umask())
            os.replace(tmp, path)
        except OSError as exc:
            if exc.errno not in _WRITE_ERRNOS:
                raise
            raise _os_error(path, exc, "write the file") from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, with a one-line error on a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = None) -> None:
    """Write ``obj`` as JSON (atomically)."""
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=indent)
        fh.write("\n")


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array as ``.npy`` (atomically)."""
    with atomic_write(path, "wb") as fh:
        np.save(fh, array)
