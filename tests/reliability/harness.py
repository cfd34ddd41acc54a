"""Running a stage as a separate process, killing it at an exact point, and comparing
output folders: the tools of the reliability tests.

A stage runs as ``python -m hpaseg <stage> ...`` in a session of its own, with
``killhook/`` first on ``PYTHONPATH``: given ``kill_at``, the hook there SIGKILLs the
stage's process group at one call of a function (see ``killhook/sitecustomize.py``), so
the kill points are exact and no test sleeps or polls.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import hpaseg
from hpaseg.cli import STAGES
from hpaseg.io import TEMP_SUFFIX

#: Folder whose ``sitecustomize`` installs the kill hook.
HOOK_DIR = Path(__file__).resolve().parent / "killhook"
#: Folder holding the ``hpaseg`` package the tests import, for the stage processes.
SOURCE_ROOT = Path(hpaseg.__file__).resolve().parents[1]
#: Longest a stage process may run in these tests.
STAGE_TIMEOUT_S = 600


def stage_env(kill_at: dict | None = None) -> dict[str, str]:
    """The environment of a stage process: the kill hook and this ``hpaseg`` on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HOOK_DIR), str(SOURCE_ROOT), env.get("PYTHONPATH")) if p)
    env.pop("HPASEG_KILL_AT", None)
    if kill_at is not None:
        env["HPASEG_KILL_AT"] = json.dumps(kill_at)
    return env


def stage_command(stage: str, *args) -> list[str]:
    """``python -m hpaseg <stage> args...``."""
    return [sys.executable, "-m", "hpaseg", stage, *(str(a) for a in args)]


def start_stage(stage: str, *args, kill_at: dict | None = None) -> subprocess.Popen:
    """Start a stage in a session of its own (so a kill takes its workers and nothing else)."""
    return subprocess.Popen(
        stage_command(stage, *args),
        env=stage_env(kill_at),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    """Wait for a started stage; its exit status and output."""
    try:
        out, err = proc.communicate(timeout=STAGE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args} ran longer than {STAGE_TIMEOUT_S} s:\n{err[-3000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_stage(stage: str, *args) -> subprocess.CompletedProcess:
    """Run a stage to its end; fails the test unless it exits with 0."""
    done = finish(start_stage(stage, *args))
    assert done.returncode == 0, f"hpaseg {stage} exited with {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def run_here(stage: str, *args) -> str:
    """Run a stage in this process (``hpaseg.cli.<stage>.main``), as reruns and references
    that need no kill do (no interpreter start-up); fails the test unless it returns 0.
    Returns what it printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = importlib.import_module(STAGES[stage][0]).main([str(a) for a in args])
    assert rc == 0, f"hpaseg {stage} returned {rc}:\n{err.getvalue()[-3000:]}"
    return out.getvalue()


def run_killed(stage: str, *args, at: dict) -> None:
    """Run a stage and check that it died by SIGKILL at ``at`` (the hook's spec)."""
    done = finish(start_stage(stage, *args, kill_at=at))
    assert done.returncode == -signal.SIGKILL, (
        f"hpaseg {stage} was to be killed at {at} but exited with {done.returncode}:\n{done.stderr[-3000:]}"
    )


def before(target: str, call: int, match: str | None = None) -> dict:
    """Kill just before the ``call``-th (matching) call of ``target``."""
    return {"target": target, "call": call, "when": "before", "match": match}


def after(target: str, call: int, match: str | None = None) -> dict:
    """Kill just after the ``call``-th (matching) call of ``target`` returned."""
    return {"target": target, "call": call, "when": "after", "match": match}


def rename_of(name: str, call: int = 1) -> dict:
    """Kill when the ``call``-th file called ``name`` (a glob) is complete in its temporary
    file but not yet renamed into place (:func:`hpaseg.io.atomic_write`)."""
    return before("os:replace", call, name)


def renamed(name: str, call: int = 1) -> dict:
    """Kill right after the ``call``-th file called ``name`` (a glob) was renamed into place."""
    return after("os:replace", call, name)


def temp_files(folder: Path) -> list[Path]:
    """Temporary files of atomic writes left anywhere under ``folder``."""
    return sorted(p for p in Path(folder).rglob(f".*{TEMP_SUFFIX}"))


def file_digests(folder: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder`` (names matching a glob of
    ``skip`` left out)."""
    folder = Path(folder)
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not any(Path(rel).match(pattern) for pattern in skip):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def assert_same_files(result: Path, reference: Path, *, skip: tuple[str, ...] = ()) -> None:
    """The same files under both folders, byte for byte, and no temporary file in ``result``."""
    assert temp_files(result) == [], f"temporary files left in {result}: {temp_files(result)}"
    got, want = file_digests(result, skip=skip), file_digests(reference, skip=skip)
    assert sorted(got) == sorted(want), (
        f"files differ: only in result {sorted(set(got) - set(want))}, only in reference {sorted(set(want) - set(got))}"
    )
    differ = [name for name in want if got[name] != want[name]]
    assert not differ, f"{len(differ)} file(s) differ from the uninterrupted run: {differ[:10]}"
