"""What every CLI does alike: each stage and benchmark accepts ``--quiet``; an output path
that is an existing file (where a folder is wanted) or an existing folder (where a file
is), a folder that cannot be written, or a disk that is full gives one line
``hpaseg <stage>: error: ...``, exit status 2, and leaves nothing half-written."""

from __future__ import annotations

import contextlib
import errno
import importlib
import io as stdio
import os
from pathlib import Path

import pytest

import hpaseg.io.files
from hpaseg import io
from hpaseg.bench import BENCHMARKS
from hpaseg.cli import STAGES


def _main(stage: str):
    if stage.startswith("bench "):
        return importlib.import_module(f"hpaseg.bench.{stage.split()[1]}").main
    return importlib.import_module(STAGES[stage][0]).main


def _run(stage: str, *argv) -> tuple[int, str]:
    err = stdio.StringIO()
    with contextlib.redirect_stdout(stdio.StringIO()), contextlib.redirect_stderr(err):
        rc = _main(stage)([str(a) for a in argv])
    return rc, err.getvalue()


def _one_line_error(rc: int, err: str, stage: str, *needles: str) -> str:
    assert rc == 2, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning: ")]  # warnings may precede
    assert len(lines) == 1, err
    assert lines[0].startswith(f"hpaseg {stage}: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- --quiet

EVERY_CLI = [s for s in STAGES if s != "bench"] + [f"bench {b}" for b in BENCHMARKS]


@pytest.mark.parametrize("stage", EVERY_CLI)
def test_every_stage_and_benchmark_accepts_quiet(stage):
    module = importlib.import_module(f"hpaseg.bench.{stage.split()[1]}" if " " in stage else STAGES[stage][0])
    options = {o for action in module.build_parser()._actions for o in action.option_strings}
    assert "--quiet" in options, f"hpaseg {stage} has no --quiet"


# --------------------------------------------------------------------------- output paths


def _argv(stage: str, tiny: dict, out: Path) -> list:
    """A command line of ``stage`` whose only problem, if any, is its output ``out``."""
    data, dataset, masks = tiny["train"], tiny["dataset"], tiny["masks"]
    cells = tiny["root"] / "no_cells.csv"  # a per-cell label table without rows
    if not cells.is_file():
        cells.write_text("ID,cell,label,confidence\n")
    return {
        "synth": [out, "--n-train", "1", "--n-test", "0", "--size", "128"],
        "segment": ["--data", data, "--out", out],
        "propagate": ["--csv", tiny["data"] / "train.csv", "--masks", masks, "--out", out],
        "train": ["--dataset", dataset, "--data", data, "--out", out, "--device", "cpu", "--max-iter", "1"],
        "classify": [
            "--level",
            "image",
            "--backbone",
            "efficientnet_b0",
            "--dataset",
            dataset,
            "--data",
            data,
            "--out",
            out,
        ],
        "ablation": [
            "--level",
            "image",
            "--backbones",
            "efficientnet_b0",
            "--dataset",
            dataset,
            "--data",
            data,
            "--out",
            out,
        ],
        "predict": ["--weights", out.parent / "missing.pth", "--data", tiny["test"], "--out", out],
        "predict --save-masks": [
            "--weights",
            out.parent / "missing.pth",
            "--data",
            tiny["test"],
            "--out",
            out.parent / "sub.csv",
            "--save-masks",
            out,
        ],
        "submit": ["--masks", masks, "--cells", cells, "--out", out],
        "relabel": ["--dataset", dataset, "--labels", tiny["root"] / "refined_labels.csv", "--out", out],
        "evaluate": [
            "--truth",
            tiny["data"] / "truth.csv",
            "--submission",
            tiny["data"] / "truth.csv",
            "--out-json",
            out,
        ],
        "visualize": ["--data", data, "--ids", "x", "--masks", masks, "--out", out],
        "demo": ["--out", out],
        "bench learn": ["--out", out],
        "bench train": ["--out-json", out],
    }[stage]


#: Stages writing into a folder, and the option that names it.
FOLDER_OUTPUTS = {
    "synth": "OUT",
    "segment": "--out",
    "propagate": "--out",
    "train": "--out",
    "classify": "--out",
    "ablation": "--out",
    "predict --save-masks": "--save-masks",
    "relabel": "--out",
    "visualize": "--out",
    "demo": "--out",
    "bench learn": "--out",
}
#: Stages writing one file, and the option that names it.
FILE_OUTPUTS = {"predict": "--out", "submit": "--out", "evaluate": "--out-json", "bench train": "--out-json"}


@pytest.mark.parametrize("stage", sorted(FOLDER_OUTPUTS))
def test_a_folder_output_that_is_an_existing_file(stage, tiny_dataset, tmp_path):
    out = tmp_path / "existing"
    out.write_text("keep me")
    rc, err = _run(stage.split(" --")[0], *_argv(stage, tiny_dataset, out))
    _one_line_error(rc, err, stage.split(" --")[0], str(out), "existing file" if stage != "synth" else "not a folder")
    assert out.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["existing"]


@pytest.mark.parametrize("stage", sorted(FILE_OUTPUTS))
def test_a_file_output_that_is_an_existing_folder(stage, tiny_dataset, tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    rc, err = _run(stage, *_argv(stage, tiny_dataset, out))
    _one_line_error(rc, err, stage, FILE_OUTPUTS[stage], str(out), "is a folder")
    assert list(out.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["existing"]


@pytest.fixture
def unwritable(tmp_path, monkeypatch) -> Path:
    """A folder this process may not write to: mode 0o555, and for root (whom permissions do
    not stop) ``os.access`` answers for it as for any other user."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode, **kw: False if Path(p) == folder and mode & os.W_OK else real(p, mode, **kw)
        )
    yield folder
    folder.chmod(0o755)


@pytest.mark.parametrize("stage", sorted(set(FOLDER_OUTPUTS) - {"synth"}) + sorted(FILE_OUTPUTS))
def test_an_output_in_a_folder_that_cannot_be_written(stage, tiny_dataset, unwritable):
    out = unwritable / ("new" if stage in FOLDER_OUTPUTS else "out.csv")
    rc, err = _run(stage.split(" --")[0], *_argv(stage, tiny_dataset, out))
    _one_line_error(rc, err, stage.split(" --")[0], "not writable", str(unwritable))
    assert list(unwritable.iterdir()) == []


# --------------------------------------------------------------------------- a full disk


class _NoSpace:
    """A file whose writes fail as on a full disk."""

    def __init__(self, fh) -> None:
        self._fh = fh

    def write(self, data) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()


class _FullDiskOS:
    """``os`` for :mod:`hpaseg.io.files`, whose files fail to write as on a full disk."""

    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def fdopen(fd, *args, **kwargs):
        return _NoSpace(os.fdopen(fd, *args, **kwargs))


@pytest.fixture
def full_disk(monkeypatch) -> None:
    """Every atomic write of hpaseg fails with ENOSPC (no space left on device)."""
    monkeypatch.setattr(hpaseg.io.files, "os", _FullDiskOS())


@pytest.mark.parametrize("stage", ["synth", "segment", "propagate", "submit", "evaluate"])
def test_a_full_disk_leaves_nothing_half_written(stage, tiny_dataset, tmp_path, full_disk):
    out = tmp_path / ("out.json" if stage == "evaluate" else "sub.csv" if stage == "submit" else "out")
    rc, err = _run(stage, *_argv(stage, tiny_dataset, out), "--quiet")
    _one_line_error(rc, err, stage, "No space left on device", "free some space or write elsewhere")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # nothing written, nothing half-written


def test_a_full_disk_while_training_stops_with_one_line(tiny_dataset, tmp_path, monkeypatch):
    """A checkpoint that cannot be written (torch.save through an atomic write), and a metrics
    line that cannot be appended (not an atomic write: the CLI reports the OSError)."""
    from hpaseg.runtime.logger import MetricsLogger

    argv = _argv("classify", tiny_dataset, tmp_path / "run") + [
        "--image-size",
        "64",
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--quiet",
    ]

    def no_space(self, iteration, values):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    with monkeypatch.context() as m:
        m.setattr(MetricsLogger, "log", no_space)
        rc, err = _run("classify", *argv)
    _one_line_error(rc, err, "classify", "metrics.jsonl: cannot write the file (No space left on device)")
    monkeypatch.setattr(hpaseg.io.files, "os", _FullDiskOS())
    rc, err = _run("classify", *argv)
    _one_line_error(rc, err, "classify", "config.yaml: cannot write the file (No space left on device)")
    assert not [p for p in (tmp_path / "run").rglob(".*.tmp")]
    assert not list((tmp_path / "run").glob("*.pth"))


def test_write_errors_read_as_one_line_with_what_to_do():
    message = str(io.write_error("out/sub.csv", OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))))
    assert message.startswith("out/sub.csv: cannot write the file (") and message.endswith(
        "free some space or write elsewhere"
    )
