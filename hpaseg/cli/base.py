"""What every CLI shares: an argument parser that raises instead of exiting, and the
wrapper that turns an :class:`~hpaseg.errors.InputError` into one line and exit code 2,
writing the flag that set a parameter where the library named the parameter. A write
that fails for lack of space, quota or permission where no writer of :mod:`hpaseg.io`
caught it (a metrics log, TensorBoard's files) is reported the same way."""

from __future__ import annotations

import argparse
import errno
import functools
import logging
import re
import sys
from collections.abc import Callable, Sequence

from ..errors import InputError
from ..io import WRITE_ERRNOS, write_error

__all__ = [
    "ArgumentParser",
    "cli_entry",
    "flag_of",
    "message_for_cli",
    "add_quiet",
    "add_shard",
    "parse_shard",
    "configure_output",
    "EXIT_INPUT_ERROR",
]

#: Exit code of a CLI given input it cannot use (argparse's convention).
EXIT_INPUT_ERROR = 2


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` that raises :class:`InputError` instead of exiting,
    so ``main(argv)`` can be called from tests and still returns 2 on a bad option."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{message} (see '{self.prog} --help')")


class _Stream(logging.StreamHandler):
    """A handler writing to whatever ``sys.stdout`` / ``sys.stderr`` is when a record is
    emitted (so output redirected after set-up, as in tests, is followed)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    @property
    def stream(self):  # type: ignore[override]
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, value) -> None:
        pass


class _Below(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def configure_output() -> None:
    """Route hpaseg's log records: information to stdout (as plain lines), warnings and
    errors to stderr (``warning: ...``). Idempotent."""
    logger = logging.getLogger("hpaseg")
    for handler in list(logger.handlers):
        if isinstance(handler, _Stream):
            logger.removeHandler(handler)
    info = _Stream("stdout")
    info.addFilter(_Below(logging.WARNING))
    info.setFormatter(logging.Formatter("%(message)s"))
    warn = _Stream("stderr")
    warn.setLevel(logging.WARNING)
    warn.setFormatter(logging.Formatter("%(levelname)s: %(message)s".replace("%(levelname)s", "warning")))
    logger.addHandler(info)
    logger.addHandler(warn)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """The ``--quiet`` option every stage has: no progress bars (for logs of batch jobs)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``--shard I/N`` (0-based shard ``I`` of ``N``), the option of every per-image
    stage (the images of a shard: :func:`hpaseg.runtime.dist.select_shard`).

    >>> parse_shard("1/4")
    (1, 4)
    >>> parse_shard("3/2")
    Traceback (most recent call last):
    ...
    hpaseg.errors.InputError: --shard: expected I/N with 0 <= I < N (e.g. 0/4 for the first of 4 shards), got '3/2'
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise InputError(f"--shard: expected I/N with 0 <= I < N (e.g. 0/4 for the first of 4 shards), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def add_shard(parser: argparse.ArgumentParser | argparse._ArgumentGroup, what: str = "image") -> None:
    """The ``--shard I/N`` option of a per-image stage (parse it with :func:`parse_shard`)."""
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help=f"do only every N-th {what} of the sorted list, starting at I (0-based): 0/4 .. 3/4 for 4 array tasks",
    )


def flag_of(parser: argparse.ArgumentParser, param: str) -> str:
    """The flag (e.g. ``--fusion-weight``) of the option whose destination is ``param``;
    when no option has it, ``--opts param`` where the parser has ``--opts`` and no option
    is named after it (a config key only ``--opts`` sets), else ``--`` + the name with
    dashes (a setting of a grid, say: ``--backbone`` for ``--backbones``).

    >>> p = ArgumentParser(prog="x"); _ = p.add_argument("--fusion-weight", type=float)
    >>> flag_of(p, "fusion_weight"), flag_of(p, "crop_size")
    ('--fusion-weight', '--crop-size')
    >>> _ = p.add_argument("--opts", nargs="+"); _ = p.add_argument("--backbones", nargs="+")
    >>> flag_of(p, "momentum"), flag_of(p, "backbone")
    ('--opts momentum', '--backbone')
    """
    dests = [action.dest for action in parser._actions]  # argparse keeps its actions here; no public accessor
    for action in parser._actions:
        if action.dest == param:
            if action.option_strings:
                return max(action.option_strings, key=len)
            return str(action.metavar or action.dest.upper())  # a positional argument
    if "opts" in dests and not any(dest.startswith(param) for dest in dests):
        return f"--opts {param}"
    return "--" + param.replace("_", "-")


def message_for_cli(exc: InputError, parser: argparse.ArgumentParser | None) -> str:
    """The one-line message of ``exc`` with each parameter it names written as its flag.

    >>> p = ArgumentParser(prog="x"); _ = p.add_argument("--level"); _ = p.add_argument("--masks")
    >>> message_for_cli(InputError("level cell needs masks", param=("level", "masks")), p)
    '--level cell needs --masks'
    """
    message = " ".join(str(exc).split())  # always one line
    if parser is None:
        return message
    for param in exc.params:
        flag = flag_of(parser, param)
        message = re.sub(rf"(?<![\w-]){re.escape(param)}(?![\w-])", flag.replace("\\", "\\\\"), message, count=1)
    return message


def _os_message(exc: OSError) -> str:
    """One line for a failed write or a denied access that no writer turned into an InputError.

    >>> _os_message(OSError(errno.ENOSPC, "No space left on device", "run/metrics.jsonl"))
    'run/metrics.jsonl: cannot write the file (No space left on device); free some space or write elsewhere'
    >>> _os_message(PermissionError(errno.EACCES, "Permission denied", "x.csv"))
    'x.csv: Permission denied; check the permissions of the file and its folder'
    """
    name = exc.filename if exc.filename is not None else "a file"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{name}: {exc.strerror}; check the permissions of the file and its folder"
    return " ".join(str(write_error(name, exc, "write the file")).split())


def cli_entry(
    prog: str, build_parser: Callable[[], argparse.ArgumentParser] | None = None
) -> Callable[[Callable[[Sequence[str] | None], int]], Callable[[Sequence[str] | None], int]]:
    """Decorate a ``main(argv) -> int`` so an :class:`InputError` becomes a one-line
    message ``hpaseg <prog>: error: ...`` on stderr and exit code 2.

    Parameters
    ----------
    prog : str
        The stage's name, as in ``hpaseg <prog>``.
    build_parser : callable, optional
        The stage's parser: an error about a library parameter then names the flag
        that set it (:func:`flag_of`).
    """

    def decorate(fn: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
        @functools.wraps(fn)
        def wrapper(argv: Sequence[str] | None = None) -> int:
            try:
                return fn(argv)
            except InputError as exc:
                parser = build_parser() if build_parser is not None and exc.param else None
                print(f"hpaseg {prog}: error: {message_for_cli(exc, parser)}", file=sys.stderr)
                return EXIT_INPUT_ERROR
            except OSError as exc:
                if exc.errno not in WRITE_ERRNOS:
                    raise
                print(f"hpaseg {prog}: error: {_os_message(exc)}", file=sys.stderr)
                return EXIT_INPUT_ERROR

        return wrapper

    return decorate
