"""Kill and resume: a stage killed with SIGKILL part-way (a preempted SLURM job, the
out-of-memory killer) and run again with the same command ends with the files of an
uninterrupted run, byte for byte, and no temporary file.

Each kill point is exact: the kill hook (``killhook/sitecustomize.py``) kills the
stage's process group at the n-th call of a function, most often just before or just
after the rename that completes the n-th output file of a kind (``os.replace`` in
:func:`hpaseg.io.atomic_write`). The training stages have tests of their own
(``test_training_resume.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpaseg import io

from .harness import assert_same_files, before, rename_of, renamed, run_here, run_killed, temp_files

# --------------------------------------------------------------------------- segment


@pytest.mark.parametrize(
    "at",
    [
        pytest.param(renamed("*_nucleimask.png", 1), id="first-nucleus-mask-written-its-cell-mask-not"),
        pytest.param(rename_of("*_cellmask.png", 3), id="third-cell-mask-complete-but-not-renamed"),
        pytest.param(renamed("*_cellmask.png", 4), id="after-four-images"),
        pytest.param(
            before("hpaseg.segmentation.watershed:WatershedSegmenter.segment", 2), id="segmenting-the-second-image"
        ),
    ],
)
def test_segment_killed_then_rerun_equals_an_uninterrupted_run(fields, segmented, tmp_path, at):
    out = tmp_path / "masks"
    run_killed("segment", "--data", fields / "train", "--out", out, "--quiet", at=at)
    run_here("segment", "--data", fields / "train", "--out", out, "--quiet")
    assert_same_files(out, segmented)


def test_segment_kill_leaves_finished_images_and_one_temporary_file(fields, tmp_path):
    """What a killed run leaves: finished images (cell mask present) are complete and are
    skipped by the rerun; the file being written is a temporary file, never a partial mask,
    and the rerun takes it over."""
    out = tmp_path / "masks"
    ids = io.list_image_ids(fields / "train")
    run_killed("segment", "--data", fields / "train", "--out", out, "--quiet", at=rename_of("*_cellmask.png", 3))
    assert temp_files(out) == [out / f".{ids[2]}_cellmask.png.tmp"]
    assert io.mask_image_ids(out) == ids[:2]
    for image_id in ids[:2]:
        io.read_mask_pair(out, image_id)  # complete, readable
    printed = run_here("segment", "--data", fields / "train", "--out", out, "--quiet")
    assert "segmented 4 images, skipped 2 already done" in printed
    assert temp_files(out) == []


# --------------------------------------------------------------------------- propagate


def _propagate_args(fields: Path, out: Path) -> list:
    return [
        "--csv",
        fields / "train.csv",
        "--masks",
        fields / "masks",
        "--out",
        out,
        "--val-fraction",
        "0.34",
        "--quiet",
    ]


@pytest.fixture(scope="module")
def propagated(fields, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("propagate") / "dataset"
    run_here("propagate", *_propagate_args(fields, out))
    return out


@pytest.mark.parametrize(
    "at",
    [
        pytest.param(before("hpaseg.io:read_mask", 4), id="reading-the-fourth-mask"),
        pytest.param(rename_of("train.json"), id="train-json-complete-but-not-renamed"),
        pytest.param(renamed("val.json"), id="after-both-coco-files"),
        pytest.param(rename_of("propagate.json"), id="summary-complete-but-not-renamed"),
    ],
)
def test_propagate_killed_then_rerun_equals_an_uninterrupted_run(fields, propagated, tmp_path, at):
    out = tmp_path / "dataset"
    run_killed("propagate", *_propagate_args(fields, out), at=at)
    run_here("propagate", *_propagate_args(fields, out))
    assert_same_files(out, propagated)


# --------------------------------------------------------------------------- submit


def _submit_args(fields: Path, cells: Path, out: Path) -> list:
    return ["--masks", fields / "masks", "--cells", cells, "--data", fields / "train", "--out", out, "--quiet"]


@pytest.mark.parametrize(
    "at",
    [
        pytest.param(before("hpaseg.io:read_mask", 3), id="reading-the-third-mask"),
        pytest.param(rename_of("sub.csv"), id="submission-complete-but-not-renamed"),
    ],
)
def test_submit_killed_then_rerun_equals_an_uninterrupted_run(fields, cell_table, tmp_path, at):
    reference, result = tmp_path / "reference", tmp_path / "result"
    run_here("submit", *_submit_args(fields, cell_table, reference / "sub.csv"))
    result.mkdir()
    run_killed("submit", *_submit_args(fields, cell_table, result / "sub.csv"), at=at)
    assert not (result / "sub.csv").exists()  # never a partial submission
    run_here("submit", *_submit_args(fields, cell_table, result / "sub.csv"))
    assert_same_files(result, reference)


# --------------------------------------------------------------------------- synth


@pytest.mark.parametrize(
    "at",
    [
        pytest.param(renamed("*_yellow.png", 3), id="third-image-written-its-masks-not"),
        pytest.param(rename_of("truth.csv"), id="truth-complete-but-not-renamed"),
    ],
)
def test_synth_killed_then_rerun_equals_an_uninterrupted_run(tmp_path, at):
    args = ["--n-train", "3", "--n-test", "2", "--size", "128", "--seed", "5", "--style", "compact", "--quiet"]
    run_here("synth", tmp_path / "reference", *args)
    run_killed("synth", tmp_path / "result", *args, at=at)
    run_here("synth", tmp_path / "result", *args)
    assert_same_files(tmp_path / "result", tmp_path / "reference")


# --------------------------------------------------------------------------- predict


def _predict_args(trained_run: Path, tiny: dict, out: Path) -> list:
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
        "--batch-size",
        "1",
        "--workers",
        "1",
        "--quiet",
    ]


@pytest.fixture(scope="module")
def predicted(trained_run, tiny_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("predict") / "reference"
    run_here("predict", *_predict_args(trained_run, tiny_dataset, out))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    "at",
    [
        pytest.param(
            before("hpaseg.detection.predictor:MaskRCNNPredictor.__call__", 2), id="predicting-the-second-image"
        ),
        pytest.param(rename_of("sub.csv"), id="submission-complete-but-not-renamed"),
        pytest.param(renamed("*_cellmask.png", 1), id="first-mask-written-submission-not-yet"),
    ],
)
def test_predict_killed_then_rerun_equals_an_uninterrupted_run(trained_run, tiny_dataset, predicted, tmp_path, at):
    out = tmp_path / "result"
    run_killed("predict", *_predict_args(trained_run, tiny_dataset, out), at=at)
    run_here("predict", *_predict_args(trained_run, tiny_dataset, out))
    assert_same_files(out, predicted)
