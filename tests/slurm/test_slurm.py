"""The SLURM scripts in slurm/, submitted with the real ``sbatch`` to a private one-node
cluster (munged + slurmctld + slurmd started by :mod:`slurm_cluster`, one per module).

Skips when the Debian ``slurm-wlm``/``munge`` packages are missing (``.ci/install-slurm.sh``
installs them).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from skimage.draw import disk

from hpaseg import io
from hpaseg.cli import propagate as propagate_cli
from hpaseg.cli import segment as segment_cli
from hpaseg.cli import synth as synth_cli
from hpaseg.cli import validate as validate_cli

from .slurm_cluster import TERMINAL_STATES, SlurmCluster, assert_completed, log_of

REPO = Path(__file__).resolve().parents[2]
SLURM_DIR = REPO / "slurm"
SCRIPTS = sorted(SLURM_DIR.glob("*.sbatch"))
PYTHON = sys.executable

#: Seconds a job may take before the test fails (CPU-only, 2 shared cores).
SEGMENT_TIMEOUT_S = 300
TRAIN_TIMEOUT_S = 1200

#: Trainer options for a run of a few seconds on the CPU.
TINY_TRAIN_ARGS = [
    "--device",
    "cpu",
    "--image-size",
    "128",
    "--max-iter",
    "2",
    "--batch-size",
    "1",
    "--checkpoint-period",
    "1",
    "--eval-period",
    "0",
    "--workers",
    "0",
]
#: sbatch options replacing the GPU defaults of run-model.sbatch and predict.sbatch.
CPU_OPTIONS = ["--nodes=1", "--gpus-per-node=0", "--cpus-per-task=1"]


# --------------------------------------------------------------------------- static checks
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_valid_bash(script):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_passes_shellcheck(script):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    proc = subprocess.run(["shellcheck", "--shell=bash", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_all_scripts_present():
    assert {p.name for p in SCRIPTS} >= {
        "segment-array.sbatch",
        "cache-array.sbatch",
        "propagate.sbatch",
        "classify.sbatch",
        "run-model.sbatch",
        "predict.sbatch",
        "predict-array.sbatch",
        "merge.sbatch",
    }


# --------------------------------------------------------------------------- the cluster
# The ``slurm`` fixture (one private cluster per module) is in conftest.py.


@pytest.mark.slurm
def test_cluster_runs_a_two_task_step(slurm, tmp_path):
    """The cluster itself: a batch job whose srun step starts 2 tasks on this node."""
    script = tmp_path / "hello.sbatch"
    script.write_text("#!/bin/bash\nsrun bash -c 'echo \"task $SLURM_PROCID of $SLURM_NTASKS on $(hostname -s)\"'\n")
    job = slurm.sbatch(script, options=["--ntasks=2", f"--output={tmp_path}/hello.out"])
    assert_completed(slurm, slurm.wait(job, timeout=60, expect=None))
    lines = sorted((tmp_path / "hello.out").read_text().splitlines())
    assert lines == [f"task {i} of 2 on {slurm.hostname}" for i in range(2)]


# --------------------------------------------------------------------------- segment-array
def _disc_image(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """RGBY uint8 image, shape (size, size, 4): 3 cells (discs in red/yellow) with a
    bright nucleus (a smaller disc in blue) each, apart from each other."""
    image = rng.integers(0, 12, size=(size, size, 4), dtype=np.uint8)
    centres = [(32, 32), (40, 92), (92, 60)]
    for r, c in centres:
        r, c = r + int(rng.integers(-4, 5)), c + int(rng.integers(-4, 5))
        cell = disk((r, c), 22, shape=(size, size))
        nucleus = disk((r, c), 9, shape=(size, size))
        image[cell + (0,)] = 140  # red
        image[cell + (3,)] = 120  # yellow
        image[cell + (1,)] = 60  # green
        image[nucleus + (2,)] = 220  # blue
    return image


@pytest.fixture(scope="module")
def disc_images(tmp_path_factory) -> tuple[Path, list[str]]:
    data = tmp_path_factory.mktemp("discs")
    rng = np.random.default_rng(0)
    ids = [f"disc{i}" for i in range(4)]
    for image_id in ids:
        io.write_rgby(data, image_id, _disc_image(rng))
    return data, ids


@pytest.mark.slurm
def test_segment_array_two_tasks(slurm, disc_images, tmp_path):
    data, ids = disc_images
    masks = tmp_path / "masks"
    job = slurm.sbatch(
        SLURM_DIR / "segment-array.sbatch",
        options=["--array=0-1", "--cpus-per-task=1", f"--chdir={tmp_path}", f"--output={tmp_path}/seg-%A_%a.out"],
        export={"DATA": str(data), "MASKS": str(masks), "PYTHON": PYTHON},
    )
    records = slurm.wait(job, timeout=SEGMENT_TIMEOUT_S, expect=None)
    assert_completed(slurm, records)

    assert sorted(int(r["ArrayTaskId"]) for r in records) == [0, 1]
    for r in records:
        task = int(r["ArrayTaskId"])
        log = tmp_path / f"seg-{job}_{task}.out"
        assert log_of(r) == log and log.exists()
        assert f"--shard {task}/2" in log.read_text()
    for image_id in ids:
        cell_path, nuclei_path = io.mask_paths(masks, image_id)
        written = sorted(p.name for p in masks.iterdir()) if masks.is_dir() else "no folder"
        assert cell_path.exists() and nuclei_path.exists(), f"{image_id}: masks missing in {masks}: {written}"
        cells, nuclei = io.read_mask_pair(masks, image_id)
        assert cells.shape == (128, 128) and cells.max() >= 1, f"{image_id}: no cell found"
        assert set(np.unique(nuclei)) <= set(np.unique(cells)), f"{image_id}: nucleus ids not in the cell mask"


@pytest.mark.slurm
def test_segment_array_requires_data(slurm, tmp_path):
    """A missing variable fails the job at once, with the variable named in the log."""
    job = slurm.sbatch(
        SLURM_DIR / "segment-array.sbatch",
        options=["--array=0", "--cpus-per-task=1", f"--chdir={tmp_path}", f"--output={tmp_path}/seg-%A_%a.out"],
        export={"MASKS": str(tmp_path / "masks"), "PYTHON": PYTHON},
    )
    (record,) = slurm.wait(job, timeout=SEGMENT_TIMEOUT_S, expect=None)
    assert record["JobState"] == "FAILED"
    assert "set DATA" in log_of(record).read_text()


# --------------------------------------------------------------------------- train / predict
@pytest.fixture(scope="module")
def coco_dataset(tmp_path_factory) -> Path:
    """synth (4 train + 2 test images, 128 px) -> segment -> propagate, via the CLIs."""
    root = tmp_path_factory.mktemp("tiny")
    out = root / "synth"
    assert synth_cli.main([str(out), "--n-train", "4", "--n-test", "2", "--size", "128", "--seed", "0", "--quiet"]) == 0
    masks = root / "masks"
    assert segment_cli.main(["--data", str(out / "train"), "--out", str(masks), "--workers", "1"]) == 0
    dataset = root / "dataset"
    assert (
        propagate_cli.main(
            [
                "--csv",
                str(out / "train.csv"),
                "--masks",
                str(masks),
                "--data",
                str(out / "train"),
                "--out",
                str(dataset),
            ]
        )
        == 0
    )
    return root


def _train(cluster: SlurmCluster, root: Path, run: Path, tasks: int) -> tuple[list[dict[str, str]], str]:
    job = cluster.sbatch(
        SLURM_DIR / "run-model.sbatch",
        *TINY_TRAIN_ARGS,
        options=[*CPU_OPTIONS, f"--ntasks-per-node={tasks}", f"--chdir={root}", f"--output={run}.log"],
        export={
            "ENGINE": "torchvision",
            "BACKBONE": "densenet121",
            "DATASET": str(root / "dataset"),
            "DATA": str(root / "synth" / "train"),
            "OUT": str(run),
            "PYTHON": PYTHON,
        },
    )
    records = cluster.wait(job, timeout=TRAIN_TIMEOUT_S, expect=None)
    assert_completed(cluster, records)
    return records, Path(f"{run}.log").read_text(errors="replace")


def _assert_run_folder(run: Path, log: str) -> None:
    assert (run / "model_final.pth").is_file(), f"no model_final.pth in {run}: {sorted(run.iterdir())}\n{log}"
    metrics = run / "metrics.jsonl"
    assert metrics.is_file(), f"no metrics.jsonl in {run}\n{log}"
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    assert rows, f"{metrics} is empty\n{log}"


@pytest.fixture(scope="module")
def trained_run(slurm, coco_dataset) -> Path:
    """One-task CPU training run: the run folder."""
    run = coco_dataset / "run1"
    _, log = _train(slurm, coco_dataset, run, tasks=1)
    _assert_run_folder(run, log)
    return run


@pytest.mark.slurm
@pytest.mark.slow
def test_run_model_one_task(trained_run):
    log = Path(f"{trained_run}.log").read_text()
    assert "1 tasks on 1 node(s)" in log
    assert "--resume" in log


@pytest.mark.slurm
@pytest.mark.slow
def test_run_model_two_tasks_gloo(slurm, coco_dataset):
    run = coco_dataset / "run2"
    _, log = _train(slurm, coco_dataset, run, tasks=2)
    _assert_run_folder(run, log)
    assert "2 tasks on 1 node(s)" in log
    assert re.search(r"rank \d of 2\b|world[ _]size[ =:]+2\b|\b2 process", log, re.IGNORECASE), (
        f"world size 2 not in the log:\n{log}"
    )


@pytest.mark.slurm
@pytest.mark.slow
def test_run_model_requeued_resumes(slurm, coco_dataset):
    """A requeued job (what preemption does) restarts, appends to its log and continues
    from the last checkpoint in OUT instead of iteration 0."""
    run = coco_dataset / "run-requeue"
    job = slurm.sbatch(
        SLURM_DIR / "run-model.sbatch",
        *TINY_TRAIN_ARGS,
        "--max-iter",
        "4",
        options=[*CPU_OPTIONS, "--ntasks-per-node=1", f"--chdir={coco_dataset}", f"--output={run}.log"],
        export={
            "DATASET": str(coco_dataset / "dataset"),
            "DATA": str(coco_dataset / "synth" / "train"),
            "OUT": str(run),
            "PYTHON": PYTHON,
        },
    )
    # Requeue once a checkpoint is marked as the one to resume from (or the job ended early:
    # its log then tells why). The marker is written just after the .pth file: a requeue
    # between the two resumes from the checkpoint before, here from iteration 0.
    _poll(
        lambda: (run / "last_checkpoint").is_file() or _ended(slurm, job),
        f"a checkpoint in {run}",
        slurm,
        TRAIN_TIMEOUT_S,
    )
    slurm.run(["scontrol", "requeue", str(job)])
    _poll(lambda: all(int(r.get("Restarts", 0)) >= 1 for r in slurm.jobs(job)), f"job {job} requeued", slurm, 60)
    assert_completed(slurm, slurm.wait(job, timeout=TRAIN_TIMEOUT_S, expect=None))
    log = Path(f"{run}.log").read_text(errors="replace")
    assert "(restart 0)" in log and "(restart 1)" in log, f"one log with both runs expected:\n{log}"
    assert re.search(r"resum\w* from .* iteration [1-9]", log), f"the requeued run did not resume:\n{log}"
    assert (run / "model_final.pth").is_file()


def _ended(cluster: SlurmCluster, job: int) -> bool:
    records = cluster.jobs(job)
    return bool(records) and all(r.get("JobState") in TERMINAL_STATES for r in records)


def _poll(predicate, what: str, cluster: SlurmCluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f} s\n{cluster.logs()}")
        time.sleep(0.5)


@pytest.mark.slurm
@pytest.mark.slow
def test_predict_writes_valid_submission(slurm, trained_run, coco_dataset):

    test_images = coco_dataset / "synth" / "test"
    out_csv = coco_dataset / "submission.csv"
    job = slurm.sbatch(
        SLURM_DIR / "predict.sbatch",
        "--device",
        "cpu",
        options=[*CPU_OPTIONS, f"--chdir={coco_dataset}", f"--output={coco_dataset}/predict.log"],
        export={
            "ENGINE": "torchvision",
            "BACKBONE": "densenet121",
            "WEIGHTS": str(trained_run / "model_final.pth"),
            "DATA": str(test_images),
            "OUT_CSV": str(out_csv),
            "PYTHON": PYTHON,
        },
    )
    assert_completed(slurm, slurm.wait(job, timeout=TRAIN_TIMEOUT_S, expect=None))
    assert out_csv.is_file()
    assert validate_cli.main([str(out_csv), "--data", str(test_images)]) == 0
