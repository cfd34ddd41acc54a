"""Concurrent shards: the tasks of a SLURM job array (``hpaseg segment --shard I/N``) write
into one folder at the same time and leave it complete and uncorrupted: byte for byte
the masks of one unsharded run, no temporary file. Also when a task is requeued while
its first attempt still runs (the same shard twice at once), and when one task is killed
while the other goes on and is then rerun."""

from __future__ import annotations

from .harness import assert_same_files, finish, renamed, run_here, run_killed, start_stage


def _segment(fields, out, *extra) -> list:
    return ["--data", fields / "train", "--out", out, "--quiet", *extra]


def _together(*commands: list) -> None:
    """Start every ``hpaseg segment`` command, then wait for all; each must succeed."""
    procs = [start_stage("segment", *argv) for argv in commands]
    for proc in procs:
        done = finish(proc)
        assert done.returncode == 0, done.stderr[-3000:]


def test_two_shards_at_once_fill_one_folder(fields, segmented, tmp_path):
    out = tmp_path / "masks"
    _together(_segment(fields, out, "--shard", "0/2"), _segment(fields, out, "--shard", "1/2"))
    assert_same_files(out, segmented)


def test_the_same_shard_twice_at_once(fields, segmented, tmp_path):
    """Two attempts of one task writing the same files at the same time: each file is the
    complete output of one of them (the second writer of a file uses a temporary file of
    its own), and no temporary file is left."""
    out = tmp_path / "masks"
    _together(*[_segment(fields, out, "--shard", "0/1", "--overwrite")] * 2)
    assert_same_files(out, segmented)


def test_a_shard_killed_while_the_other_runs_then_rerun(fields, segmented, tmp_path):
    out = tmp_path / "masks"
    other = start_stage("segment", *_segment(fields, out, "--shard", "1/2"))
    run_killed("segment", *_segment(fields, out, "--shard", "0/2"), at=renamed("*_nucleimask.png", 2))
    assert finish(other).returncode == 0
    run_here("segment", *_segment(fields, out, "--shard", "0/2"))
    assert_same_files(out, segmented)
