"""The one config mechanism of hpaseg's own trainers: frozen dataclasses, overridden by
``--opts KEY VALUE`` pairs, saved as YAML next to a run's outputs.

Values are parsed to the type of the field's default (``--opts lr 1e-3 steps 0.6,0.8
amp false``); ``none`` clears an optional field. (The detectron2 engine keeps
detectron2's own config system, with the same ``--opts`` form.)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..errors import InputError
from ..io import atomic_write

__all__ = ["apply_opts", "check_numbers", "save_config", "config_dict"]

T = TypeVar("T")


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _coerce(value: str, like: Any, key: str) -> Any:
    """``value`` parsed to the type of the field's default ``like``."""
    text = str(value).strip()
    if isinstance(like, bool):
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise InputError(f"opts {key} {value!r}: expected true or false", param="opts")
    try:
        if isinstance(like, int):
            return int(text)
        if isinstance(like, float):
            return float(text)
        if isinstance(like, (tuple, list)):
            items = text.strip("[]()").replace(",", " ").split()
            return tuple(float(v) for v in items)
    except ValueError:
        raise InputError(f"opts {key} {value!r}: expected a {type(like).__name__}", param="opts") from None
    return None if text.lower() == "none" else text


def apply_opts(config: T, opts: Sequence[str]) -> T:
    """Override fields of a config dataclass from ``KEY VALUE`` pairs.

    Raises :class:`InputError` on an unknown key, naming the known ones, or a value
    of the wrong type.

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class C:
    ...     lr: float = 0.1
    ...     steps: tuple = (0.5,)
    ...     amp: bool = True
    >>> apply_opts(C(), ["lr", "1e-3", "steps", "0.6,0.8", "AMP", "false"])
    C(lr=0.001, steps=(0.6, 0.8), amp=False)
    """
    if len(opts) % 2:
        raise InputError(f"opts {' '.join(opts)}: expected KEY VALUE pairs", param="opts")
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for key, value in zip(opts[0::2], opts[1::2]):
        name = key.lower().replace("-", "_")
        if name not in fields:
            raise InputError(f"opts {key}: unknown key; expected one of {', '.join(sorted(fields))}", param="opts")
        changes[name] = _coerce(value, getattr(config, name), key)
    return dataclasses.replace(config, **changes)


def check_numbers(config: Any, *, positive: Sequence[str] = (), non_negative: Sequence[str] = ()) -> None:
    """Refuse a field of a config dataclass named in ``positive`` that is not > 0, or one
    named in ``non_negative`` that is not >= 0, with an :class:`InputError` naming the
    field; a float field (one whose default is a float) must also be finite (not nan or inf).

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class C:
    ...     lr: float = 0.1
    ...     epochs: int = 2
    >>> check_numbers(C(), positive=("lr", "epochs"))
    >>> check_numbers(C(lr=float("nan")), positive=("lr",))
    Traceback (most recent call last):
    ...
    hpaseg.errors.InputError: lr nan: expected a finite number > 0
    >>> check_numbers(C(epochs=-1), non_negative=("epochs",))
    Traceback (most recent call last):
    ...
    hpaseg.errors.InputError: epochs -1: expected an integer >= 0
    """
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for names, strict in ((positive, True), (non_negative, False)):
        for name in names:
            value = getattr(config, name)
            if type(defaults[name]) is int:  # an integer field (the type of its default, as --opts parses it)
                if value < 1 if strict else value < 0:
                    expected = "a positive integer" if strict else "an integer >= 0"
                    raise InputError(f"{name} {value}: expected {expected}", param=name)
            elif not (math.isfinite(value) and (value > 0 if strict else value >= 0)):
                raise InputError(f"{name} {value}: expected a finite number {'>' if strict else '>='} 0", param=name)


def config_dict(config: Any) -> dict:
    """A config dataclass as a plain dict (tuples as lists), ready for YAML or JSON."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}


def save_config(path: str | Path, config: Any) -> None:
    """Write a config dataclass as YAML next to the run's outputs (atomically)."""

    with atomic_write(path) as fh:
        yaml.safe_dump(config_dict(config), fh, sort_keys=False)
