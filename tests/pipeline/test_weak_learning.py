"""A short weakly supervised training on a tiny synthetic set learns which cells carry their
image's labels: it ranks cells better than propagation, which ties every cell of an image."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hpaseg import io
from hpaseg.classification import ClassifyConfig, cell_preset, load_classifier, train_classifier
from hpaseg.labels import propagate_dataset
from hpaseg.synth import generate_dataset


@pytest.fixture(scope="module")
def weak_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("weak")
    data = root / "data"
    generate_dataset(data, 40, 0, 256, 3, progress=False)
    dataset = root / "dataset"
    propagate_dataset(
        data / "train.csv", data / "masks", dataset, data_dir=data / "train", val_fraction=0.1, progress=False
    )
    cfg = ClassifyConfig(
        level="cell",
        channels="rgby",
        dataset=str(dataset),
        data=str(data / "train"),
        masks=str(data / "masks"),
        out=str(root / "run"),
        workers=0,
        **{**cell_preset("cpu"), "epochs": 60},
    )
    train_classifier(cfg, progress=False)
    return data, dataset, root / "run"


def _pairwise_order(p: np.ndarray, has: np.ndarray) -> tuple[int, int]:
    """(correctly ordered, total) pairs of a cell having the label vs one lacking it."""
    good = total = 0
    for i, j in itertools.product(np.flatnonzero(has), np.flatnonzero(~has)):
        total += 1
        good += p[i] > p[j]
    return good, total


def test_training_ranks_cells_lacking_a_label_below_those_that_have_it(weak_run):
    data, dataset, run = weak_run
    truth = io.read_cell_labels_csv(data / "cell_labels.csv")
    classifier = load_classifier(run, level="cell")
    good = total = 0
    for image_id, image in io.iter_rgby(data / "train", sorted(truth)):
        cells = io.read_mask(io.mask_paths(data / "masks", image_id)[0])
        p, ids = classifier.cell_probabilities(image, cells)
        labels = [truth[image_id][int(c)] for c in ids]
        for k in set().union(*labels) - {18, 11}:  # labels some cells lack (mitotic spindle: mitotic cells only)
            has = np.array([k in cell for cell in labels])
            if has.any() and not has.all():
                g, t = _pairwise_order(p[:, k], has)
                good, total = good + g, total + t
    assert total > 20, "the tiny set should hold images whose cells differ"
    assert good / total > 0.7, f"{good}/{total} pairs ordered; propagation ties them all (0.5)"
