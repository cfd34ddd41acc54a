"""Shared fixtures: the real sample data in ../shared/data (read-only)."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real HPA/StarDist samples; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA} (see shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> dict[str, Path]:
    """A tiny synthetic dataset (4 train + 2 test images, 128 px) with COCO files made
    from the synthetic true masks, so model tests do not depend on the segmenter."""
    from hpaseg import propagate, synth

    root = tmp_path_factory.mktemp("tiny")
    data = root / "data"
    assert synth.main([str(data), "--n-train", "4", "--n-test", "2", "--size", "128", "--seed", "1"]) == 0
    dataset = root / "dataset"
    assert propagate.main(["--csv", str(data / "train.csv"), "--masks", str(data / "masks"), "--data", str(data / "train"), "--out", str(dataset), "--val-fraction", "0.25", "--quiet"]) == 0
    return {"root": root, "data": data, "train": data / "train", "test": data / "test", "dataset": dataset, "masks": data / "masks"}


@pytest.fixture(scope="session")
def trained_run(tiny_dataset, tmp_path_factory) -> Path:
    """A torchvision DenseNet121-FPN Mask R-CNN trained for 2 iterations on ``tiny_dataset``."""
    from hpaseg import train

    run = tmp_path_factory.mktemp("run") / "densenet121"
    argv = ["--dataset", str(tiny_dataset["dataset"]), "--data", str(tiny_dataset["train"]), "--out", str(run), "--device", "cpu",
            "--image-size", "128", "--max-iter", "2", "--batch-size", "1", "--checkpoint-period", "1", "--eval-period", "0", "--workers", "0", "--quiet", "--opts", "log_period", "1"]
    assert train.main(argv) == 0
    return run
