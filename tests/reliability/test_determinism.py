"""Same seed, same output: ``synth``, ``segment``, ``propagate`` and ``predict`` write
byte-identical files across runs and across worker counts (``segment --workers``,
``--read-threads``; ``predict --workers``); another seed gives other files. The CPU
training stages are in ``test_training_resume.py`` (a fixed seed gives identical weights).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import assert_same_files, file_digests, run_here, run_stage


def test_synth_same_seed_same_files_other_seed_other_files(tmp_path):
    args = ["--n-train", "2", "--n-test", "1", "--size", "128", "--quiet"]
    run_here("synth", tmp_path / "a", *args, "--seed", "7")
    run_here("synth", tmp_path / "b", *args, "--seed", "7")
    run_here("synth", tmp_path / "c", *args, "--seed", "8")
    assert_same_files(tmp_path / "b", tmp_path / "a")
    a, c = file_digests(tmp_path / "a", skip=("synth.json",)), file_digests(tmp_path / "c", skip=("synth.json",))
    assert sorted(a) == sorted(c) and all(a[name] != c[name] for name in a if name.endswith("_green.png"))


@pytest.mark.parametrize("execution", [["--workers", "2"], ["--workers", "3", "--read-threads", "1"]])
def test_segment_same_masks_for_any_worker_count(fields, segmented, tmp_path, execution):
    """The reference ran in this process with one worker; these in separate processes."""
    run_stage("segment", "--data", fields / "train", "--out", tmp_path / "masks", "--quiet", *execution)
    assert_same_files(tmp_path / "masks", segmented)


def test_propagate_same_seed_same_files(fields, tmp_path):
    def propagate(out: Path, seed: str) -> Path:
        csv, masks = fields / "train.csv", fields / "masks"
        run_here(
            "propagate",
            "--csv",
            csv,
            "--masks",
            masks,
            "--out",
            out,
            "--seed",
            seed,
            "--val-fraction",
            "0.34",
            "--quiet",
        )
        return out

    assert_same_files(propagate(tmp_path / "a", "1"), propagate(tmp_path / "b", "1"))
    other = propagate(tmp_path / "c", "2")
    assert file_digests(other)["val.json"] != file_digests(tmp_path / "a")["val.json"]  # another split


def _predict(trained_run: Path, tiny: dict, out: Path, *extra) -> list:
    return [
        "--weights",
        trained_run / "model_final.pth",
        "--data",
        tiny["test"],
        "--out",
        out / "sub.csv",
        "--save-masks",
        out / "masks",
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]


@pytest.mark.slow
def test_predict_same_files_across_runs_and_reading_threads(trained_run, tiny_dataset, tmp_path):
    run_here("predict", *_predict(trained_run, tiny_dataset, tmp_path / "a", "--workers", "1"))
    run_here("predict", *_predict(trained_run, tiny_dataset, tmp_path / "b", "--workers", "1"))
    run_stage("predict", *_predict(trained_run, tiny_dataset, tmp_path / "c", "--workers", "3"))
    assert (tmp_path / "a" / "sub.csv").read_text().count(" ") > 3  # cells were predicted
    assert_same_files(tmp_path / "b", tmp_path / "a")
    assert_same_files(tmp_path / "c", tmp_path / "a")
