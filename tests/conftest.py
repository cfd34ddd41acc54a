"""Shared fixtures: the real sample data in ../shared/data (read-only), a tiny synthetic
dataset and a tiny trained Mask R-CNN, all made with library calls."""

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
    """A tiny synthetic dataset (4 train + 2 test images, 128 px, the compact style) with
    COCO files made from the synthetic true masks, so model tests do not depend on the
    segmenter."""
    from hpaseg.labels import propagate_dataset
    from hpaseg.synth import generate_dataset

    root = tmp_path_factory.mktemp("tiny")
    data = root / "data"
    generate_dataset(data, 4, 2, 128, 1, progress=False, style="compact")
    dataset = root / "dataset"
    propagate_dataset(
        data / "train.csv", data / "masks", dataset, data_dir=data / "train", val_fraction=0.25, progress=False
    )
    return {
        "root": root,
        "data": data,
        "train": data / "train",
        "test": data / "test",
        "dataset": dataset,
        "masks": data / "masks",
    }


@pytest.fixture(scope="session")
def trained_run(tiny_dataset, tmp_path_factory) -> Path:
    """A torchvision DenseNet121-FPN Mask R-CNN trained for 2 iterations on ``tiny_dataset``."""
    from hpaseg.detection import TrainConfig, train_torchvision

    run = tmp_path_factory.mktemp("run") / "densenet121"
    cfg = TrainConfig(
        dataset=str(tiny_dataset["dataset"]),
        data=str(tiny_dataset["train"]),
        out=str(run),
        device="cpu",
        image_size=128,
        max_iter=2,
        batch_size=1,
        checkpoint_period=1,
        eval_period=0,
        workers=0,
        log_period=1,
        warmup_iters=1,
    )
    train_torchvision(cfg, progress=False)
    return run


#: Input sizes of the tiny classifier runs.
IMAGE_PX, CROP_PX = 64, 32


def _classifier_run(tiny_dataset: dict[str, Path], out: Path, **settings) -> Path:
    from hpaseg.classification import ClassifyConfig, train_classifier

    cfg = ClassifyConfig(
        backbone="efficientnet_b0",
        dataset=str(tiny_dataset["dataset"]),
        data=str(tiny_dataset["train"]),
        out=str(out),
        image_size=IMAGE_PX,
        crop_size=CROP_PX,
        epochs=1,
        device="cpu",
        workers=0,
        **settings,
    )
    train_classifier(cfg, progress=False)
    return out


@pytest.fixture(scope="session")
def image_run(tiny_dataset, tmp_path_factory) -> Path:
    """Image level, green channel, BCE, standard augmentation, 1 epoch."""
    return _classifier_run(
        tiny_dataset, tmp_path_factory.mktemp("cls") / "image", level="image", channels="green", batch_size=2
    )


@pytest.fixture(scope="session")
def cell_run(tiny_dataset, tmp_path_factory) -> Path:
    """Cell level, RGBY crops, focal loss, CutMix, 1 epoch."""
    return _classifier_run(
        tiny_dataset,
        tmp_path_factory.mktemp("cls") / "cell",
        level="cell",
        channels="rgby",
        masks=str(tiny_dataset["masks"]),
        batch_size=8,
        loss="focal",
        augment="cutmix",
    )
