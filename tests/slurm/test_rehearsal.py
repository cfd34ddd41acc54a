"""The full-scale pipeline rehearsed at toy scale through the SLURM scripts: 2048-px
synthetic images (3 training, 2 test) submitted as one chain of jobs to a private
one-node cluster, each job depending on the ones before (``--dependency=afterok``):

segment array (train, 2 tasks) and segment array (test, 2 tasks) -> propagate -> cache
array (descriptors, 2 tasks) -> classify (the CPU descriptors preset, few epochs) ->
predict array (cell-classifier route, 2 tasks) -> merge (+ validate).

The merged submission must pass the validator, hold every test image once, and equal byte
for byte one unsharded ``hpaseg predict`` of the same run; a resubmitted predict array
keeps the finished parts (``--resume``) and redoes only a missing one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hpaseg import io
from hpaseg.classification import descriptor_cache_dir
from hpaseg.classification.bags import descriptor_cache_paths
from hpaseg.cli import predict as predict_cli
from hpaseg.cli import synth as synth_cli
from hpaseg.cli import validate as validate_cli
from hpaseg.submission import read_submission

from .slurm_cluster import SlurmCluster, assert_completed, log_of

REPO = Path(__file__).resolve().parents[2]
SLURM_DIR = REPO / "slurm"
PYTHON = sys.executable

#: The rehearsal's images: full HPA size, few of them (a few minutes on 2 cores).
SIZE_PX, N_TRAIN, N_TEST = 2048, 3, 2
#: Array tasks of each per-image stage.
TASKS = 2
#: Seconds any one job may take (2 shared cores).
JOB_TIMEOUT_S = 600
#: The classifier: the CPU preset (descriptors, refined) with a budget of seconds.
CLASSIFY_ARGS = ["--backbone", "descriptors", "--device", "cpu", "--epochs", "5", "--image-epochs", "5"]
CLASSIFY_ARGS += ["--refine-rounds", "1"]
#: sbatch options replacing the GPU and many-CPU defaults of the scripts.
CPU = ["--nodes=1", "--gpus-per-node=0", "--cpus-per-task=1"]


@pytest.fixture(scope="module")
def synth_2048(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rehearsal")
    argv = [str(root / "synth"), "--n-train", str(N_TRAIN), "--n-test", str(N_TEST), "--size", str(SIZE_PX)]
    assert synth_cli.main([*argv, "--seed", "0", "--quiet"]) == 0
    return root


def _submit(cluster: SlurmCluster, root: Path, script: str, name: str, *args: str, after=(), options=(), **export):
    """sbatch ``slurm/<script>`` with the CPU options, its log ``root/logs/<name>[-<task>].out``
    and, after ``after`` (job ids), ``--dependency=afterok`` (a failed job cancels the rest)."""
    (root / "logs").mkdir(exist_ok=True)
    array = any(o.startswith("--array") for o in options)
    out = root / "logs" / (f"{name}-%a.out" if array else f"{name}.out")
    opts = [*CPU, *options, f"--chdir={root}", f"--output={out}", f"--job-name={name}"]
    if after:
        opts += [f"--dependency=afterok:{':'.join(map(str, after))}", "--kill-on-invalid-dep=yes"]
    return cluster.sbatch(
        SLURM_DIR / script, *args, options=opts, export={**{k: str(v) for k, v in export.items()}, "PYTHON": PYTHON}
    )


@pytest.fixture(scope="module")
def chain(slurm, synth_2048) -> dict:
    """The whole chain submitted at once, then each job waited for in order."""
    root = synth_2048
    data = root / "synth"
    masks_train, masks_test, dataset, run = root / "masks_train", root / "masks_test", root / "dataset", root / "run"
    parts, sub = root / "parts", root / "submission.csv"
    array = [f"--array=0-{TASKS - 1}"]
    jobs: dict[str, int] = {}
    jobs["segment-train"] = _submit(
        slurm, root, "segment-array.sbatch", "segment-train", options=array, DATA=data / "train", MASKS=masks_train
    )
    jobs["segment-test"] = _submit(
        slurm, root, "segment-array.sbatch", "segment-test", options=array, DATA=data / "test", MASKS=masks_test
    )
    jobs["propagate"] = _submit(
        slurm,
        root,
        "propagate.sbatch",
        "propagate",
        after=[jobs["segment-train"]],
        CSV=data / "train.csv",
        MASKS=masks_train,
        DATA=data / "train",
        OUT=dataset,
    )
    jobs["cache"] = _submit(
        slurm,
        root,
        "cache-array.sbatch",
        "cache",
        "--level",
        "cell",
        *CLASSIFY_ARGS,
        options=array,
        after=[jobs["propagate"]],
        STAGE="classify",
        DATASET=dataset,
        DATA=data / "train",
        MASKS=masks_train,
    )
    jobs["classify"] = _submit(
        slurm,
        root,
        "classify.sbatch",
        "classify",
        *CLASSIFY_ARGS,
        after=[jobs["cache"]],
        DATASET=dataset,
        DATA=data / "train",
        MASKS=masks_train,
        OUT=run,
    )
    jobs["predict"] = _submit(
        slurm,
        root,
        "predict-array.sbatch",
        "predict",
        "--device",
        "cpu",
        options=array,
        after=[jobs["classify"], jobs["segment-test"]],
        CLASSIFIER=run,
        MASKS=masks_test,
        DATA=data / "test",
        PARTS=parts,
    )
    jobs["merge"] = _submit(
        slurm, root, "merge.sbatch", "merge", after=[jobs["predict"]], PARTS=parts, DATA=data / "test", OUT_CSV=sub
    )
    records = {}
    for name, job in jobs.items():
        records[name] = slurm.wait(job, timeout=JOB_TIMEOUT_S, expect=None)
        assert_completed(slurm, records[name])
    return {
        "root": root,
        "data": data,
        "masks_train": masks_train,
        "masks_test": masks_test,
        "dataset": dataset,
        "run": run,
        "parts": parts,
        "submission": sub,
        "records": records,
    }


def _log(chain: dict, name: str) -> str:
    return "\n".join(log_of(r).read_text(errors="replace") for r in chain["records"][name])


@pytest.mark.slurm
@pytest.mark.slow
def test_every_per_image_stage_ran_as_an_array(chain):
    for name in ("segment-train", "segment-test", "cache", "predict"):
        records = chain["records"][name]
        assert sorted(int(r["ArrayTaskId"]) for r in records) == list(range(TASKS)), name
        for task in range(TASKS):
            assert f"--shard {task}/{TASKS}" in _log(chain, name), f"{name}: no --shard {task}/{TASKS} in its logs"
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        ids = io.list_image_ids(chain["data"] / split)
        assert len(ids) == n
        for image_id in ids:
            assert io.mask_paths(chain["masks_" + split], image_id)[0].is_file(), f"{image_id}: no cell mask"
    # The cache array described every training image; the training job then described none.
    cache = descriptor_cache_dir(chain["dataset"], chain["masks_train"])
    for image_id in io.list_image_ids(chain["data"] / "train"):
        assert all(p.is_file() for p in descriptor_cache_paths(cache, image_id)), f"{image_id}: not cached"
    assert "describe cells" not in _log(chain, "classify"), "the training job described cells the array had cached"
    assert (chain["run"] / "model_final.pth").is_file()


@pytest.mark.slurm
@pytest.mark.slow
def test_merged_submission_is_valid_and_equals_an_unsharded_predict(chain, tmp_path, capsys):
    test_images = chain["data"] / "test"
    sub = chain["submission"]
    assert "OK" in _log(chain, "merge")
    assert validate_cli.main([str(sub), "--data", str(test_images)]) == 0
    merged = [r.image_id for r in read_submission(sub)]
    assert merged == io.list_image_ids(test_images)  # every test image, once, in order
    parts = sorted(chain["parts"].glob("part-*-of-*.csv"))
    assert [p.name for p in parts] == [f"part-{i}-of-{TASKS}.csv" for i in range(TASKS)]
    in_parts = [r.image_id for p in parts for r in read_submission(p)]
    assert sorted(in_parts) == merged  # the shards cover every image exactly once
    unsharded = tmp_path / "unsharded.csv"
    argv = ["--classifier", str(chain["run"]), "--masks", str(chain["masks_test"]), "--data", str(test_images)]
    assert predict_cli.main([*argv, "--out", str(unsharded), "--device", "cpu", "--quiet"]) == 0
    assert sub.read_bytes() == unsharded.read_bytes()


@pytest.mark.slurm
@pytest.mark.slow
def test_resubmitted_predict_array_redoes_only_the_missing_part(slurm, chain):
    root, parts = chain["root"], chain["parts"]
    kept = parts / f"part-0-of-{TASKS}.csv"
    before = kept.stat().st_mtime_ns
    missing = parts / f"part-1-of-{TASKS}.csv"
    expected = missing.read_bytes()
    missing.unlink()
    job = _submit(
        slurm,
        root,
        "predict-array.sbatch",
        "predict-again",
        "--device",
        "cpu",
        options=[f"--array=0-{TASKS - 1}"],
        CLASSIFIER=chain["run"],
        MASKS=chain["masks_test"],
        DATA=chain["data"] / "test",
        PARTS=parts,
    )
    records = slurm.wait(job, timeout=JOB_TIMEOUT_S, expect=None)
    assert_completed(slurm, records)
    logs = {int(r["ArrayTaskId"]): log_of(r).read_text() for r in records}
    assert f"kept {kept}" in logs[0] and kept.stat().st_mtime_ns == before
    assert "predicted" in logs[1] and missing.read_bytes() == expected
