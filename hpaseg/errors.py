"""The one exception type for bad user input, and the CLI glue that reports it.

Every stage raises :class:`InputError` for input it cannot use (a missing channel
file, a malformed CSV row, an unknown option value). CLIs wrapped with
:func:`cli_entry` turn it into one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable, Sequence

__all__ = ["InputError", "ArgumentParser", "cli_entry", "EXIT_INPUT_ERROR"]

#: Exit code of a CLI given input it cannot use (argparse's convention).
EXIT_INPUT_ERROR = 2


class InputError(ValueError):
    """Input that cannot be used: the message names the file, row or option,
    what was expected and what arrived."""


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` that raises :class:`InputError` instead of exiting,
    so ``main(argv)`` can be called from tests and still returns 2 on a bad option."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{message} (see '{self.prog} --help')")


def cli_entry(prog: str) -> Callable[[Callable[[Sequence[str] | None], int]], Callable[[Sequence[str] | None], int]]:
    """Decorate a ``main(argv) -> int`` so an :class:`InputError` becomes a one-line
    message ``hpaseg <prog>: error: ...`` on stderr and exit code 2."""

    def decorate(fn: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
        @functools.wraps(fn)
        def wrapper(argv: Sequence[str] | None = None) -> int:
            try:
                return fn(argv)
            except InputError as exc:
                message = " ".join(str(exc).split())  # always one line
                print(f"hpaseg {prog}: error: {message}", file=sys.stderr)
                return EXIT_INPUT_ERROR

        return wrapper

    return decorate
