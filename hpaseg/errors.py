"""The one exception type for bad user input.

Every stage raises :class:`InputError` for input it cannot use (a missing channel file,
a malformed CSV row, an unknown option value). The message names the file, row or
parameter, what was expected and what arrived. Library code names *parameters*
(``fusion_weight``), never command-line flags: an error about a parameter carries it
in :attr:`InputError.param`, and the CLIs (:mod:`hpaseg.cli`) write the flag that set
it (``--fusion-weight``) in its place, as one line on stderr with exit code 2.
Values read from a file are quoted in messages with :func:`excerpt`, so a field of
thousands of characters still gives a short line.
"""

from __future__ import annotations

__all__ = ["InputError", "excerpt"]

#: Characters of a value :func:`excerpt` shows.
EXCERPT_CHARS = 40


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)`` of a value read from input, shortened to its first ``limit`` characters
    for an error message.

    >>> excerpt("4x")
    "'4x'"
    >>> excerpt("9" * 5000, 8)
    "'99999999'... (5000 characters)"
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    return f"{text[:limit]!r}... ({len(text)} characters)"


class InputError(ValueError):
    """Input that cannot be used: the message names the file, row or parameter,
    what was expected and what arrived.

    Parameters
    ----------
    message : str
        One line; starts with the parameter's name when ``param`` is given.
    param : str or tuple of str, optional
        The library parameter(s) the error is about (e.g. ``"fusion_weight"``); a CLI
        replaces the first whole-word occurrence of each in the message by the flag
        that set it.

    Examples
    --------
    >>> err = InputError("fusion_weight 1.5: expected a number in [0, 1]", param="fusion_weight")
    >>> str(err), err.param
    ('fusion_weight 1.5: expected a number in [0, 1]', 'fusion_weight')
    """

    def __init__(self, message: str, *, param: str | tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.param = param

    @property
    def params(self) -> tuple[str, ...]:
        """The parameters named by the message, as a tuple (empty when none)."""
        if self.param is None:
            return ()
        return (self.param,) if isinstance(self.param, str) else tuple(self.param)
