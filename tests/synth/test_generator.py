"""Tests of hpaseg.synth: layout, truth, determinism, labels and green patterns of the synthetic generator."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from skimage.segmentation import find_boundaries

from hpaseg import io, synth
from hpaseg.classes import NEGATIVE, NUM_CLASSES, Channel
from hpaseg.errors import InputError
from hpaseg.submission import decode_mask, read_submission

SIZE = 256


N_TRAIN, N_TEST, SEED = 3, 2, 7


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    synth.generate_dataset(out, N_TRAIN, N_TEST, SIZE, SEED, progress=False)
    return out


def _cell_label_table(out: Path) -> dict[str, dict[int, tuple[int, ...]]]:
    table: dict[str, dict[int, tuple[int, ...]]] = collections.defaultdict(dict)
    for row in io.read_table(out / "cell_labels.csv", ["ID", "split", "cell", "Label"]).to_dict("records"):
        table[row["ID"]][int(row["cell"])] = io.parse_labels(row["Label"])
    return table


def _all_ids() -> list[tuple[str, str]]:
    return [("train", synth.image_id("train", i)) for i in range(N_TRAIN)] + [
        ("test", synth.image_id("test", i)) for i in range(N_TEST)
    ]


def test_workers_write_the_same_files(dataset, tmp_path):
    """Images drawn by two processes: the same files, byte for byte, as one process writes."""
    out = tmp_path / "data"
    synth.generate_dataset(out, N_TRAIN, N_TEST, SIZE, SEED, progress=False, workers=2)
    ours = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != "synth.json")
    theirs = sorted(p.relative_to(dataset) for p in dataset.rglob("*") if p.is_file() and p.name != "synth.json")
    assert ours == theirs and len(ours) > 4 * (N_TRAIN + N_TEST)
    for rel in ours:
        assert (out / rel).read_bytes() == (dataset / rel).read_bytes(), rel
    with pytest.raises(InputError, match="workers: expected a count >= 1"):
        synth.generate_dataset(tmp_path / "other", 1, 0, SIZE, SEED, progress=False, workers=0)


def test_layout_and_csvs(dataset):
    labels = io.read_labels_csv(dataset / "train.csv")
    assert list(labels) == [f"synth_train_{i:04d}" for i in range(N_TRAIN)]
    for split, iid in _all_ids():
        image = io.read_rgby(dataset / split, iid)
        assert image.shape == (SIZE, SIZE, 4) and image.dtype == np.uint8
        cell, nuclei = io.read_mask_pair(dataset / "masks", iid)
        assert cell.shape == nuclei.shape == (SIZE, SIZE)
    assert io.list_image_ids(dataset / "test") == [f"synth_test_{i:04d}" for i in range(N_TEST)]
    sample = read_submission(dataset / "sample_submission.csv")
    assert [(r.image_id, r.width, r.height, r.predictions) for r in sample] == [
        (f"synth_test_{i:04d}", SIZE, SIZE, []) for i in range(N_TEST)
    ]
    assert set(_cell_label_table(dataset)) == {iid for _, iid in _all_ids()}
    assert io.read_json(dataset / "synth.json")["complete"] is True
    assert not list(dataset.rglob(".*.tmp"))  # no leftovers of atomic writes


def test_image_label_is_written_as_kaggle_writes_it(dataset):
    """train.csv lists the classes 0-17 of an image's cells; Negative (18) only for an
    image with no other class, never beside another label (the real train.csv's
    convention), although negative cells occur in positive images."""
    train = io.read_labels_csv(dataset / "train.csv")
    table = _cell_label_table(dataset)
    for split, iid in _all_ids():
        cell, _ = io.read_mask_pair(dataset / "masks", iid)
        assert sorted(table[iid]) == list(range(1, int(cell.max()) + 1)) == sorted(set(np.unique(cell)) - {0})
        for labs in table[iid].values():
            assert labs and (NEGATIVE not in labs or labs == (NEGATIVE,))
        if split == "train":
            union = {lab for labs in table[iid].values() for lab in labs}
            expected = sorted(union - {NEGATIVE}) or [NEGATIVE]
            assert list(train[iid]) == expected
    mixed = [iid for split, iid in _all_ids() if split == "train" and len(set(table[iid].values()) - {(NEGATIVE,)})]
    assert not any(NEGATIVE in train[iid] and len(train[iid]) > 1 for iid in train)
    assert any((NEGATIVE,) in table[iid].values() for iid in mixed)  # negative cells in positive images


def test_masks_geometry(dataset):
    touching = border = 0
    for _, iid in _all_ids():
        cell, nuclei = io.read_mask_pair(dataset / "masks", iid)
        n = int(cell.max())
        assert 5 <= n <= 30
        # nucleus k lies inside cell k, and every cell has one
        assert np.array_equal(cell[nuclei > 0], nuclei[nuclei > 0])
        assert set(np.unique(nuclei)) == set(np.unique(cell))
        # nucleus diameter 30-50% of the cell's (area ratio ~0.09-0.25, looser for cut cells)
        ratio = np.bincount(nuclei.ravel(), minlength=n + 1)[1:] / np.bincount(cell.ravel(), minlength=n + 1)[1:]
        assert 0.05 < np.median(ratio) < 0.35
        # distinct cells that share a boundary (4-neighbours with different non-zero labels)
        pairs = [(cell[:, 1:], cell[:, :-1]), (cell[1:], cell[:-1])]
        touching += any(((a != b) & (a > 0) & (b > 0)).any() for a, b in pairs)
        border += bool(np.concatenate([cell[0], cell[-1], cell[:, 0], cell[:, -1]]).any())
        assert (cell == 0).mean() > 0.05  # some background
    assert touching == N_TRAIN + N_TEST
    assert border >= 1


def test_truth_decodes_to_true_masks(dataset):
    table = _cell_label_table(dataset)
    rows = read_submission(dataset / "truth.csv")
    assert [r.image_id for r in rows] == [synth.image_id("test", i) for i in range(N_TEST)]
    for row in rows:
        cell, _ = io.read_mask_pair(dataset / "masks", row.image_id)
        found: dict[int, list[int]] = collections.defaultdict(list)
        decoded: dict[str, int] = {}
        for pred in row.predictions:
            assert pred.confidence == 1.0
            if pred.mask not in decoded:
                mask = decode_mask(pred.mask, row.height, row.width)
                ids = np.unique(cell[mask])
                assert len(ids) == 1 and ids[0] > 0
                assert np.array_equal(mask, cell == ids[0])
                decoded[pred.mask] = int(ids[0])
            found[decoded[pred.mask]].append(pred.label)
        assert {k: tuple(sorted(v)) for k, v in found.items()} == table[row.image_id]


def test_draw_image_labels_is_imbalanced_like_hpa():
    rng = np.random.default_rng(0)
    draws = [synth.draw_image_labels(rng) for _ in range(200)]
    for labels in draws:
        assert labels == tuple(sorted(set(labels))) and 1 <= len(labels) <= 3
        assert all(0 <= lab < NUM_CLASSES for lab in labels)
        assert NEGATIVE not in labels or labels == (NEGATIVE,)
    counts = np.bincount([lab for labels in draws for lab in labels], minlength=NUM_CLASSES)
    assert set(np.argsort(counts)[-2:]) == {0, 16}  # Nucleoplasm and Cytosol most common
    for mid in (2, 13, 14, 17):  # Nucleoli, Plasma membrane, Mitochondria, Vesicles
        assert counts[mid] > 2 * max(counts[11], counts[15], counts[3], counts[NEGATIVE])
    assert counts[0] > 10 * max(counts[11], counts[15], counts[3], counts[NEGATIVE])
    assert 1.2 < np.mean([len(labels) for labels in draws]) < 2.0


def test_some_cells_lack_a_label_and_are_negative():
    img = synth.synth_image(np.random.default_rng(2), SIZE, image_labels=[16], vary_cells=True)
    kinds = set(img.cell_labels.values())
    assert kinds == {(16,), (NEGATIVE,)}
    assert img.image_labels == (16,)  # as train.csv writes it: Negative never beside another label
    green = img.image[..., Channel.GREEN].astype(float)
    cyto = (img.cell_mask > 0) & (img.nuclei_mask == 0)
    pos = np.isin(img.cell_mask, [k for k, v in img.cell_labels.items() if v == (16,)]) & cyto
    neg = np.isin(img.cell_mask, [k for k, v in img.cell_labels.items() if v == (NEGATIVE,)]) & cyto
    assert green[pos].mean() > green[neg].mean() + 20


def test_mitotic_spindle_in_one_or_two_round_cells():
    img = synth.synth_image(np.random.default_rng(4), SIZE, image_labels=[0, 11], vary_cells=False)
    spindle = [k for k, v in img.cell_labels.items() if 11 in v]
    assert 1 <= len(spindle) <= 2
    assert img.image_labels == (0, 11)
    assert all(v == (0,) for k, v in img.cell_labels.items() if k not in spindle)
    green = img.image[..., Channel.GREEN].astype(float)
    in_spindle = np.isin(img.cell_mask, spindle)
    others_cyto = (img.cell_mask > 0) & ~in_spindle & (img.nuclei_mask == 0)
    assert green[in_spindle].mean() > 3 * green[others_cyto].mean()


def test_forced_negative_image_is_dark_in_green():
    img = synth.synth_image(np.random.default_rng(0), SIZE, image_labels=[NEGATIVE])
    assert set(img.cell_labels.values()) == {(NEGATIVE,)}
    green = img.image[..., Channel.GREEN].astype(float)
    assert green[img.cell_mask > 0].mean() - np.median(green[img.cell_mask == 0]) < 2
    assert green.max() < 40


def _regions(img: synth.SynthImage, label: int) -> dict[str, np.ndarray]:
    cell, nuclei = img.cell_mask, img.nuclei_mask
    carry = np.isin(cell, [k for k, v in img.cell_labels.items() if label in v])
    nuc = carry & (nuclei > 0)
    cyto = carry & (nuclei == 0)
    to_nucleus = ndimage.distance_transform_edt(nuclei == 0)
    outline = find_boundaries(cell, mode="inner") & carry
    outline[[0, -1], :] = outline[:, [0, -1]] = False  # the image border is no membrane
    return {
        "nuc": nuc,
        "cyto": cyto,
        "nuc_core": ndimage.binary_erosion(nuclei > 0, iterations=2) & carry,
        "nuc_rim": find_boundaries(nuclei, mode="inner") & carry,
        "near_nuc": cyto & (to_nucleus <= 3),
        "far_cyto": cyto & (to_nucleus > 6),
        "outline": outline,
        "interior": ndimage.binary_erosion(cell > 0, iterations=4) & cyto,
    }


def _ratio(strong: float, weak: float) -> float:
    return strong / max(weak, 1.0)


# label -> (stronger region, weaker region, minimal ratio of background-subtracted means)
_EXPECTED = {
    0: ("nuc", "cyto", 8),
    2: ("nuc", "cyto", 5),
    3: ("nuc", "cyto", 4),
    4: ("nuc", "cyto", 8),
    5: ("nuc", "cyto", 8),
    1: ("nuc_rim", "nuc_core", 3),
    6: ("cyto", "nuc_core", 4),
    7: ("near_nuc", "far_cyto", 5),
    8: ("cyto", "nuc_core", 1.2),
    9: ("outline", "interior", 2),
    10: ("cyto", "nuc_core", 4),
    12: ("near_nuc", "far_cyto", 3),
    13: ("outline", "interior", 3),
    14: ("cyto", "nuc_core", 5),
    15: ("near_nuc", "far_cyto", 1.5),
    16: ("cyto", "nuc_core", 3),
    17: ("cyto", "nuc_core", 8),
}


@pytest.mark.parametrize("label", sorted(_EXPECTED))
def test_green_pattern_lies_where_the_class_says(label):
    img = synth.synth_image(np.random.default_rng(10 + label), SIZE, image_labels=[label], vary_cells=False)
    assert all(v == (label,) for v in img.cell_labels.values())
    green = img.image[..., Channel.GREEN].astype(float)
    background = np.median(green[img.cell_mask == 0])
    regions = _regions(img, label)
    strong, weak, min_ratio = _EXPECTED[label]
    signal = {name: green[mask].mean() - background for name, mask in regions.items() if mask.any()}
    assert signal[strong] > 5, signal
    assert _ratio(signal[strong], signal[weak]) > min_ratio, signal


@pytest.mark.parametrize("label, channel", [(6, Channel.YELLOW), (10, Channel.RED)])
def test_er_and_microtubules_follow_their_reference_channels(label, channel):
    img = synth.synth_image(np.random.default_rng(30 + label), SIZE, image_labels=[label], vary_cells=False)
    inside = img.cell_mask > 0
    corr = np.corrcoef(img.image[..., Channel.GREEN][inside], img.image[..., channel][inside])[0, 1]
    assert corr > 0.6


@pytest.mark.parametrize("label", [2, 5, 12, 15, 17])
def test_spotty_classes_are_spotty(label):
    """Nucleoli, nuclear bodies, centrosome, aggresome, vesicles: a few bright pixels, not a fill."""
    img = synth.synth_image(np.random.default_rng(50 + label), SIZE, image_labels=[label], vary_cells=False)
    green = img.image[..., Channel.GREEN].astype(float)
    values = green[img.cell_mask > 0] - np.median(green[img.cell_mask == 0])
    assert np.percentile(values, 99.5) > 4 * max(np.median(values), 2.0)


_FILL = {
    0: ("nuc", True),
    2: ("nuc", False),
    3: ("nuc", False),
    4: ("nuc", False),
    5: ("nuc", False),
    16: ("cyto", True),
    14: ("cyto", False),
    17: ("cyto", False),
    15: ("cyto", False),
    7: ("cyto", False),
}


@pytest.mark.parametrize("label", sorted(_FILL))
def test_fills_and_textures_differ(label):
    """A fill (Nucleoplasm, Cytosol) lights most of its compartment; nucleoli, speckles,
    bodies, mitochondria, vesicles, aggresome and Golgi light a small part of it.

    Field-wide, in the compact style: in real-like fields (and real ones) cells differ in
    stain, so half the field's brightest is more than some whole cells reach; the real
    Nucleoplasm fields of shared/data/hpa_kaggle_fields light 0.28 of their nuclei so. See
    the per-cell test below for the default style."""
    img = synth.synth_image(
        np.random.default_rng(10 + label), SIZE, image_labels=[label], vary_cells=False, style="compact"
    )
    green = img.image[..., Channel.GREEN].astype(float)
    region, is_fill = _FILL[label]
    values = green[_regions(img, label)[region]] - np.median(green[img.cell_mask == 0])
    lit = (values > 0.5 * np.percentile(values, 99)).mean()
    assert (lit > 0.3) if is_fill else (lit < 0.2), lit


@pytest.mark.parametrize("label", sorted(_FILL))
def test_fills_and_textures_differ_per_cell(label):
    """The same, cell by cell (median over cells of the lit fraction of each cell's
    compartment, against half that cell's brightest), in the default style."""
    img = synth.synth_image(np.random.default_rng(10 + label), SIZE, image_labels=[label], vary_cells=False)
    green = img.image[..., Channel.GREEN].astype(float)
    background = np.median(green[img.cell_mask == 0])
    region, is_fill = _FILL[label]
    compartment = _regions(img, label)[region]
    lit = []
    for cell in np.unique(img.cell_mask[compartment]):
        values = green[compartment & (img.cell_mask == cell)] - background
        if values.size >= 50:  # cells cut by the border to a sliver say little
            lit.append((values > 0.5 * np.percentile(values, 99)).mean())
    assert (np.median(lit) > 0.3) if is_fill else (np.median(lit) < 0.2), lit


@pytest.mark.parametrize("label", [6, 8, 10, 14, 16, 17])
def test_only_membrane_classes_outline_the_cell(label):
    img = synth.synth_image(np.random.default_rng(10 + label), SIZE, image_labels=[label], vary_cells=False)
    green = img.image[..., Channel.GREEN].astype(float)
    background = np.median(green[img.cell_mask == 0])
    regions = _regions(img, label)
    assert green[regions["outline"]].mean() - background < 1.5 * (green[regions["interior"]].mean() - background)


def test_synth_image_rejects_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="size"):
        synth.synth_image(rng, 64)
    with pytest.raises(InputError, match="image_labels"):
        synth.synth_image(rng, 128, image_labels=[19])
