"""Kill and resume of the training stages on the CPU: ``train`` (torchvision Mask R-CNN),
``classify`` and ``ablation`` killed with SIGKILL at several points of one run in turn,
each time rerun with ``--resume`` (as a requeued SLURM job is), end with the checkpoint
of an uninterrupted run: every tensor of the model and the optimizer equal, bit for bit.

Exact equality holds because a checkpoint holds everything the rest of the run
depends on: the weights, optimizer, scheduler and scaler, the states of Python's,
NumPy's and torch's generators (the region-proposal and box samplers, the
augmentations draw from them), and (torchvision engine) the position in the epoch's
shuffled order; the data loaders draw their workers' seeds from generators of their
own. What cannot be equal is left out of the comparisons: timings (``train_seconds``,
``images_per_s``, ``samples_per_s``) and TensorBoard event files (one per process).
Each test runs its trainings one after another, never two at once.

On a GPU the same holds up to CUDA's nondeterministic kernels (atomic adds in the
backward passes of RoIAlign and of some convolutions): two uninterrupted GPU runs differ
already, so a resumed GPU run is as close to an uninterrupted one as two uninterrupted
runs are to each other; these tests run on the CPU, where both are exact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from .harness import after, before, file_digests, rename_of, renamed, run_here, run_killed, temp_files

pytestmark = pytest.mark.slow

#: Values that measure time, not training.
TIMINGS = ("images_per_s", "samples_per_s", "train_seconds")


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _assert_same_tensors(got, want, where: str) -> None:
    """Equal nested state (dicts, lists, tensors, numbers), tensors bit for bit."""
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.dtype == want.dtype and torch.equal(got, want), where
    elif isinstance(want, dict):
        assert set(got) == set(want), f"{where}: keys {sorted(set(got) ^ set(want))} differ"
        for key in want:
            _assert_same_tensors(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), where
        for k, (a, b) in enumerate(zip(got, want)):
            _assert_same_tensors(a, b, f"{where}[{k}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


#: What a checkpoint holds of the training (those of its kind: the descriptor network's hold no optimizer).
TRAINING_KEYS = ("model", "optimizer", "scheduler", "iteration", "rounds_done", "thresholds")


def assert_same_checkpoint(got: Path, want: Path) -> None:
    a, b = _load(got), _load(want)
    assert "model" in b, f"{want}: no model in the checkpoint"
    for key in TRAINING_KEYS:
        if key in b:
            _assert_same_tensors(a[key], b[key], f"{got.name}:{key}")


def _records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in lines]


def assert_same_run(run: Path, reference: Path, inputs: tuple[Path, Path] | None = None) -> None:
    """Same files (TensorBoard's aside), same checkpoints, same metric records (timings aside),
    same config (but for the run's folder, and ``inputs``: the run's input folder and the
    reference's), no temporary file."""
    assert temp_files(run) == [], temp_files(run)
    names, want = file_digests(run, skip=("tb/*",)), file_digests(reference, skip=("tb/*",))
    assert sorted(names) == sorted(want)
    for name in names:
        if name.endswith(".pth"):
            assert_same_checkpoint(run / name, reference / name)
    assert _records(run) == _records(reference)
    config = (run / "config.yaml").read_text().replace(str(run), "RUN")
    if inputs is not None:
        config = config.replace(*map(str, inputs))
    assert config == (reference / "config.yaml").read_text().replace(str(reference), "RUN")


# --------------------------------------------------------------------------- train (torchvision)


def _train_args(tiny: dict, out: Path) -> list:
    return [
        "--dataset",
        tiny["dataset"],
        "--data",
        tiny["train"],
        "--out",
        out,
        "--device",
        "cpu",
        "--image-size",
        "64",
        "--max-iter",
        "4",
        "--batch-size",
        "1",
        "--checkpoint-period",
        "2",
        "--eval-period",
        "0",
        "--workers",
        "0",
        "--resume",
        "--quiet",
        "--opts",
        "log_period",
        "1",
        "roi_batch_size",  # 32 RoIs an image, not 512: half the time of an iteration
        "32",
    ]


@pytest.fixture(scope="module")
def train_reference(tiny_dataset, tmp_path_factory) -> Path:
    """An uninterrupted 4-iteration run (3 training images: epochs of 3 batches)."""
    out = tmp_path_factory.mktemp("train") / "reference"
    run_here("train", *_train_args(tiny_dataset, out))
    return out


#: The kill points of one run in turn (each in a fresh process resuming the last checkpoint).
TRAIN_KILLS = [
    before("hpaseg.detection.trainer:_step", 2),  # one iteration done and logged, no checkpoint yet
    rename_of("model_0000002.pth"),  # from 0: checkpoint 2 complete, not renamed
    before("hpaseg.detection.trainer:_step", 4),  # from 0: checkpoint 2 saved (mid-epoch), iteration 3 logged
    rename_of("model_final.pth"),  # from 2: epoch 1 begun, the final checkpoint complete, not renamed
]


def test_train_killed_four_times_ends_with_the_uninterrupted_weights(tiny_dataset, train_reference, tmp_path):
    run = tmp_path / "run"
    for at in TRAIN_KILLS:
        run_killed("train", *_train_args(tiny_dataset, run), at=at)
    assert (run / ".model_final.pth.tmp").is_file() and not (run / "model_final.pth").exists()
    run_here("train", *_train_args(tiny_dataset, run))
    assert_same_run(run, train_reference)


def test_train_with_a_fixed_seed_is_deterministic(tiny_dataset, train_reference, tmp_path):
    """Two uninterrupted CPU runs with one seed: identical weights and losses; another seed differs."""
    run_here("train", *_train_args(tiny_dataset, tmp_path / "again"))
    assert_same_run(tmp_path / "again", train_reference)
    run_here("train", *_train_args(tiny_dataset, tmp_path / "seed1"), "--seed", "1")
    a, b = _load(tmp_path / "seed1" / "model_final.pth"), _load(train_reference / "model_final.pth")
    assert any(not torch.equal(a["model"][k], b["model"][k]) for k in b["model"])


# --------------------------------------------------------------------------- classify


def _classify_args(tiny: dict, out: Path, *extra) -> list:
    return [
        "--level",
        "image",
        "--backbone",
        "efficientnet_b0",
        "--augment",
        "cutmix",
        "--dataset",
        tiny["dataset"],
        "--data",
        tiny["train"],
        "--out",
        out,
        "--image-size",
        "64",
        "--epochs",
        "3",
        "--batch-size",
        "1",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--resume",
        "--quiet",
        *extra,
    ]


def _eval(run: Path, *paths: str) -> dict:
    """``eval.json`` without its timing and the config's paths (``out`` and ``paths``)."""
    result = json.loads((run / "eval.json").read_text())
    result.pop("train_seconds")
    for key in ("out", *paths):
        result["config"].pop(key)
    return result


#: The kill points of one classifier run in turn.
CLASSIFY_KILLS = [
    before("torch.optim:Adam.step", 2),  # in the first epoch (3 steps), before any checkpoint
    renamed("model_epoch002.pth"),  # epoch 2's checkpoint saved, epoch 1's not yet removed
    rename_of("model_final.pth"),  # resumed at 2: the final checkpoint complete, not renamed
    renamed("model_final.pth"),  # resumed at 2: the final checkpoint saved, eval.json not written
]


def test_classify_killed_four_times_ends_with_the_uninterrupted_weights(tiny_dataset, tmp_path):
    reference, run = tmp_path / "reference", tmp_path / "run"
    run_here("classify", *_classify_args(tiny_dataset, reference, "--opts", "log_period", "1"))
    for at in CLASSIFY_KILLS:
        run_killed("classify", *_classify_args(tiny_dataset, run, "--opts", "log_period", "1"), at=at)
    assert (run / "model_final.pth").is_file() and not (run / "eval.json").exists()
    run_here("classify", *_classify_args(tiny_dataset, run, "--opts", "log_period", "1"))
    assert_same_run(run, reference)
    assert _eval(run) == _eval(reference)


def _descriptor_args(tiny: dict, dataset: Path, out: Path) -> list:
    """The CPU defaults of ``--level cell`` (descriptors backbone, refined supervision, image
    head, refit on train + val), made small: per pass 2 rounds of 4 epochs of one step (3
    training images, 8 images a step) and an image head of 3 epochs of one step."""
    return [
        "--level",
        "cell",
        "--dataset",
        dataset,
        "--data",
        tiny["train"],
        "--masks",
        tiny["masks"],
        "--out",
        out,
        "--epochs",
        "4",
        "--refine-rounds",
        "1",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--resume",
        "--quiet",
        "--opts",
        "log_period",
        "1",
        "image_epochs",
        "3",
    ]


#: The kill points of one descriptor-network run in turn (AdamW steps counted from each start).
DESCRIPTOR_KILLS = [
    renamed("*.npy", 3),  # building the descriptor cache
    before("torch.optim:AdamW.step", 3),  # round 0, epoch 3: no checkpoint yet, 2 epochs logged
    before("torch.optim:AdamW.step", 7),  # from 0: round0.pth saved, round 1 at epoch 3
    before("torch.optim:AdamW.step", 6),  # from round 0: round1.pth saved, the image head at epoch 2
    before("torch.optim:AdamW.step", 9),  # from round 1: image_head.pth, refit_round0.pth saved, refit round 1
    before("torch.optim:AdamW.step", 6),  # from refit round 0: refit_round1.pth saved, the refit head at epoch 2
    rename_of("model_final.pth"),  # from refit round 1: refined_labels.csv written, the final checkpoint not renamed
    after("hpaseg.runtime.logger:MetricsLogger.log", 1),  # from the refit head: final validation logged, no eval.json
]


def test_classify_descriptors_killed_eight_times_ends_with_the_uninterrupted_weights(tiny_dataset, tmp_path):
    """The CPU default of the cell level: killed while describing cells, within and between
    rounds and image heads of both passes, after the final validation; rounds, heads, final
    weights, refined labels, metrics equal."""
    runs = {}
    for name in ("reference", "run"):  # a dataset each: the killed run builds its descriptor cache too
        shutil.copytree(tiny_dataset["dataset"], tmp_path / f"dataset_{name}", ignore=shutil.ignore_patterns("cache_*"))
        runs[name] = _descriptor_args(tiny_dataset, tmp_path / f"dataset_{name}", tmp_path / name)
    for at in DESCRIPTOR_KILLS:
        run_killed("classify", *runs["run"], at=at)
    run, reference = tmp_path / "run", tmp_path / "reference"
    assert (run / "model_final.pth").is_file() and not (run / "eval.json").exists()
    run_here("classify", *runs["run"])
    run_here("classify", *runs["reference"])
    assert sorted(p.name for p in run.glob("*.pth")) == [
        "image_head.pth",
        "model_final.pth",
        "refit_image_head.pth",
        "refit_round0.pth",
        "refit_round1.pth",
        "round0.pth",
        "round1.pth",
    ]
    assert_same_run(run, reference, inputs=(tmp_path / "dataset_run", tmp_path / "dataset_reference"))
    assert (run / "refined_labels.csv").read_bytes() == (reference / "refined_labels.csv").read_bytes()
    assert _eval(run, "dataset", "masks") == _eval(reference, "dataset", "masks")


# --------------------------------------------------------------------------- ablation


def _ablation_args(tiny: dict, out: Path) -> list:
    return [
        "--level",
        "image",
        "--backbones",
        "efficientnet_b0",
        "--losses",
        "bce",
        "focal",
        "--augments",
        "standard",
        "--dataset",
        tiny["dataset"],
        "--data",
        tiny["train"],
        "--out",
        out,
        "--image-size",
        "64",
        "--epochs",
        "2",
        "--batch-size",
        "1",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--quiet",
    ]


ABLATION_KILLS = [
    renamed("eval.json"),  # the first configuration finished
    before("torch.optim:Adam.step", 5),  # the second in its second epoch (its first checkpoint saved)
    rename_of("results.csv"),  # both finished, the results table complete, not renamed
    rename_of("per_class_ap.png"),  # the tables written, the last figure not
]


def _without_seconds(markdown: Path) -> list[str]:
    """The lines of ``results.md`` with the cells of its ``train_seconds`` column left out."""
    lines = markdown.read_text().splitlines()
    table = [k for k, line in enumerate(lines) if line.startswith("|")]
    column = [c.strip() for c in lines[table[0]].split("|")].index("train_seconds")
    for k in table:
        cells = lines[k].split("|")
        lines[k] = "|".join(cells[:column] + cells[column + 1 :])
    return lines


def test_ablation_killed_four_times_ends_with_the_uninterrupted_results(tiny_dataset, tmp_path):
    """Tables and figures byte for byte (``results.csv`` and ``results.md`` without their
    ``train_seconds`` column), and every configuration's final weights."""
    reference, results = tmp_path / "reference", tmp_path / "results"
    run_here("ablation", *_ablation_args(tiny_dataset, reference))
    for at in ABLATION_KILLS:
        run_killed("ablation", *_ablation_args(tiny_dataset, results), at=at)
    run_here("ablation", *_ablation_args(tiny_dataset, results))
    assert temp_files(results) == []
    for name in ("per_class_ap.csv", "confusion.csv", "metrics.png", "per_class_ap.png"):
        assert (results / name).read_bytes() == (reference / name).read_bytes(), name
    assert _without_seconds(results / "results.md") == _without_seconds(reference / "results.md")
    table, want = pd.read_csv(results / "results.csv"), pd.read_csv(reference / "results.csv")
    pd.testing.assert_frame_equal(table.drop(columns="train_seconds"), want.drop(columns="train_seconds"))
    for config in ("image-efficientnet_b0-bce-standard", "image-efficientnet_b0-focal-standard"):
        assert_same_run(results / config, reference / config)
        assert _eval(results / config) == _eval(reference / config)
