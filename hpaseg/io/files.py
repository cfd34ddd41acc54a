"""Files written atomically, and JSON and ``.npy`` files.

Every writer of hpaseg goes through :func:`atomic_write`: it writes a temporary file
in the target folder and renames it, so an interrupted run never leaves a half-written
file behind and a reader never sees one.

A run killed while writing (SIGKILL, the out-of-memory killer, a preempted job) leaves
its temporary file ``.{name}.tmp``; the next write of the same file takes that file
over and renames it, so rerunning the command leaves no temporary file behind. A
writer holds a lock (``flock``) on its temporary file until the rename, which the
kernel releases when the writer dies: a temporary file without a lock is stale, one
with a lock is another process writing the same file, which then keeps its own
``.{name}.XXXXXXXX.tmp``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import InputError

__all__ = [
    "atomic_write",
    "check_output_path",
    "read_json",
    "write_json",
    "write_npy",
    "write_error",
    "TEMP_SUFFIX",
    "WRITE_ERRNOS",
]

#: Suffix of the temporary files :func:`atomic_write` creates (``.{name}.tmp``, or
#: ``.{name}.XXXXXXXX.tmp`` while another process writes the same file).
TEMP_SUFFIX = ".tmp"

#: Attempts to take over the temporary file of a file before using one of a unique name.
_CLAIM_ATTEMPTS = 3


_DEFAULT_FILE_MODE = 0o666


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: errno values of a write that fails for lack of space or permission (reported as InputError).
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS})


def write_error(path: str | os.PathLike, exc: OSError, what: str = "write the file") -> InputError:
    """A one-line InputError for a failed write: names the path, the reason and what to do.

    >>> str(write_error("out/sub.csv", OSError(errno.ENOSPC, "No space left on device")))
    'out/sub.csv: cannot write the file (No space left on device); free some space or write elsewhere'
    """
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


def _lock(fd: int) -> bool:
    """Take the writer's lock on an open temporary file without waiting; False when another
    process holds it (or the file system has no locks)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _is_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the file at ``path`` (not renamed or removed)."""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (here.st_dev, here.st_ino) and mine.st_nlink > 0


def _claim_temp(path: Path) -> tuple[int, Path]:
    """An empty temporary file for ``path``, open and locked by this process: ``.{name}.tmp``,
    taken over when a dead writer left it, or a new ``.{name}.XXXXXXXX.tmp`` when a live
    process is writing ``path`` too."""
    fixed = path.parent / f".{path.name}{TEMP_SUFFIX}"
    for _ in range(_CLAIM_ATTEMPTS):
        try:
            fd = os.open(fixed, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            break
        locked = _lock(fd)
        if locked and _is_at(fd, fixed):  # ours (empty, or left by a dead writer)
            os.ftruncate(fd, 0)
            return fd, fixed
        os.close(fd)
        if not locked:  # a live writer has it
            break
        # else a writer renamed it between our open and our lock: open the new one
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    _lock(fd)
    return fd, Path(tmp)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file next to ``path`` and rename it to ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched; a
    temporary file that a killed run left is taken over (see the module docstring).
    Parent folders are created. ``mode`` is ``"w"`` (text, UTF-8, ``newline=""``)
    or ``"wb"``. A write that fails for lack of space or permission raises a one-line
    :class:`InputError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _claim_temp(path)
    except OSError as exc:
        raise write_error(path, exc, "create the file") from exc
    lock = os.dup(fd)  # keeps the lock after the file is closed, until the rename is done
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
            if exc.errno not in WRITE_ERRNOS:
                raise
            raise write_error(path, exc, "write the file") from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(lock)


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
