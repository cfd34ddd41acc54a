"""Test helper, not part of hpaseg: SIGKILL a process (group) at an exact point of its run.

The reliability tests put this folder first on ``PYTHONPATH``, so Python imports this
module at start-up in the stage's process and in any process it spawns. When
``HPASEG_KILL_AT`` holds a JSON object, the function it names is wrapped so that the
process group is killed with SIGKILL (what SLURM does to a preempted job, and the
kernel's out-of-memory killer to a process) at one call of it::

    {"target": "os:replace", "call": 2, "when": "before", "match": "*_cellmask.png"}

* ``target``: ``module:attribute`` (``module:Class.method`` for a method), looked up when
  called, so every caller through that module or class sees the wrapper;
* ``call``: which call (1-based) of the calls that match;
* ``when``: ``"before"`` the call runs (default) or ``"after"`` it returned;
* ``match``: optional glob; only calls with a ``str``/path argument whose file name
  matches count (``os:replace`` with ``*_cellmask.png`` counts the renames of cell masks).

Calls are counted per process. Nothing happens without the variable.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import json
import os
import signal
import sys

_VARIABLE = "HPASEG_KILL_AT"
#: Exit status of a process whose hook could not be installed.
_BAD_SPEC = 97


def _kill() -> None:
    """SIGKILL the stage and its worker processes: the whole process group when the stage
    leads a session of its own (``start_new_session=True``), else only this process."""
    if os.getsid(0) == os.getpgrp():
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _matches(pattern: str | None, args: tuple) -> bool:
    if not pattern:
        return True
    names = (os.path.basename(os.fspath(a)) for a in args if isinstance(a, (str, os.PathLike)))
    return any(fnmatch.fnmatchcase(name, pattern) for name in names)


def _install(spec: dict) -> None:
    module_name, _, qualname = spec["target"].partition(":")
    owner = importlib.import_module(module_name)
    *parents, name = qualname.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    original = getattr(owner, name)
    call, when, pattern = int(spec["call"]), spec.get("when", "before"), spec.get("match")
    if when not in ("before", "after"):
        raise ValueError(f"{_VARIABLE}: when must be 'before' or 'after', got {when!r}")
    count = 0

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        nonlocal count
        if not _matches(pattern, args):
            return original(*args, **kwargs)
        count += 1
        if count == call and when == "before":
            _kill()
        result = original(*args, **kwargs)
        if count == call and when == "after":
            _kill()
        return result

    setattr(owner, name, wrapper)


if os.environ.get(_VARIABLE):
    try:
        _install(json.loads(os.environ[_VARIABLE]))
    except Exception as exc:  # a bad spec must not let the stage run unhooked
        sys.stderr.write(f"{_VARIABLE}: cannot install the kill hook: {type(exc).__name__}: {exc}\n")
        os._exit(_BAD_SPEC)
