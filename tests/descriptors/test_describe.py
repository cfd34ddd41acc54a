"""hpaseg.descriptors: per-cell descriptors respond to where the protein sits and how it looks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hpaseg import io
from hpaseg.descriptors import cell_regions, describe_cells, descriptor_names
from hpaseg.errors import InputError

SIDE = 256


def _field(pattern: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four round cells (2 x 2) with central nuclei; green drawn by ``pattern``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((SIDE, SIDE))
    cells = np.zeros((SIDE, SIDE), np.int32)
    nuclei = np.zeros_like(cells)
    image = np.zeros((SIDE, SIDE, 4), np.float32)
    image[..., :] = 5
    for k, (cy, cx) in enumerate([(64, 64), (64, 192), (192, 64), (192, 192)], start=1):
        r = np.hypot(yy - cy, xx - cx)
        cells[r < 56] = k
        nuclei[r < 22] = k
        image[..., 0][r < 56] = 60  # microtubules
        image[..., 3][r < 56] = 50  # ER
        image[..., 2][r < 22] = 200  # DNA
        cell, nucleus = r < 56, r < 22
        green = image[..., 1]
        if pattern == "nucleus":
            green[nucleus] = 150
        elif pattern == "cytoplasm":
            green[cell & ~nucleus] = 150
        elif pattern == "membrane":
            green[cell & (r > 48)] = 200
        elif pattern == "spots":
            for _ in range(25):
                a, d = rng.uniform(0, 2 * np.pi), rng.uniform(26, 50)
                green[np.hypot(yy - cy - d * np.sin(a), xx - cx - d * np.cos(a)) < 2.5] = 220
        elif pattern == "uniform":
            green[cell] = 120
    image += rng.normal(0, 2, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), cells, nuclei


def _column(x: np.ndarray, name: str) -> np.ndarray:
    return x[:, descriptor_names().index(name)]


def test_one_finite_row_per_cell_with_named_columns():
    image, cells, nuclei = _field("uniform")
    x, ids = describe_cells(image, cells, nuclei)
    assert ids.tolist() == [1, 2, 3, 4]
    assert x.shape == (4, len(descriptor_names())) and x.dtype == np.float32 and np.isfinite(x).all()
    assert len(set(descriptor_names())) == len(descriptor_names())


def test_nuclear_and_cytoplasmic_proteins_are_told_apart():
    nuclear, _ = describe_cells(*_field("nucleus"))
    cytoplasmic, _ = describe_cells(*_field("cytoplasm"))
    assert _column(nuclear, "nucleus_share").min() > 0.9 > 0.1 > _column(cytoplasmic, "nucleus_share").max()


def test_a_membrane_stain_fills_the_edge_band():
    membrane, _ = describe_cells(*_field("membrane"))
    cytoplasmic, _ = describe_cells(*_field("cytoplasm"))
    assert _column(membrane, "edge_band_share").min() > 2 * _column(cytoplasmic, "edge_band_share").max()


def test_spots_are_counted_and_a_uniform_stain_has_none():
    spotted, _ = describe_cells(*_field("spots"))
    uniform, _ = describe_cells(*_field("uniform"))
    name = "spots_2.8_cytoplasm_count"
    assert _column(spotted, name).min() > np.log1p(10) and _column(uniform, name).max() < np.log1p(3)
    assert _column(spotted, "objects_count").min() > _column(uniform, "objects_count").max()


def test_the_nuclei_found_in_the_blue_channel_match_given_nuclei():
    image, cells, nuclei = _field("nucleus")
    given, _ = describe_cells(image, cells, nuclei)
    found, _ = describe_cells(image, cells)
    assert np.allclose(_column(given, "nucleus_share"), _column(found, "nucleus_share"), atol=0.05)


def test_the_same_field_at_twice_the_pixels_gives_the_same_descriptors():
    image, cells, nuclei = _field("spots")
    big = cv2.resize(image, (2 * SIDE, 2 * SIDE), interpolation=cv2.INTER_LINEAR)
    big_cells = cv2.resize(cells, (2 * SIDE, 2 * SIDE), interpolation=cv2.INTER_NEAREST)
    small_x, _ = describe_cells(image, cells, working_size_px=SIDE)
    big_x, _ = describe_cells(big, big_cells, working_size_px=SIDE)
    for name in ("nucleus_share", "edge_band_share", "expression_log", "pearson_red_cytoplasm"):
        assert np.allclose(_column(small_x, name), _column(big_x, name), atol=0.1, rtol=0.1), name


def test_no_cells_gives_an_empty_matrix():
    image, cells, _ = _field("uniform")
    x, ids = describe_cells(image, np.zeros_like(cells))
    assert x.shape == (0, len(descriptor_names())) and len(ids) == 0


def test_mismatched_shapes_are_refused():
    image, cells, _ = _field("uniform")
    with pytest.raises(InputError, match="expected \\(H, W, 4\\) and \\(H, W\\)"):
        describe_cells(image[:100], cells)


def test_regions_split_each_cell_into_nucleus_and_cytoplasm():
    image, cells, nuclei = _field("uniform")
    r = cell_regions(image, cells, nuclei, working_size_px=SIDE)
    assert (r.nucleus_area > 0).all() and (r.area > r.nucleus_area).all()
    assert not (r.nucleus & r.cytoplasm).any() and ((r.nucleus | r.cytoplasm) == (r.cells > 0)).all()


def test_real_fields_are_described(shared_data):
    folder = shared_data / "hpa_kaggle_fields"
    image_id = io.list_image_ids(folder)[0]
    image = io.read_rgby(folder, image_id)
    cells = io.read_mask(folder / f"{image_id}_cellmask.png")
    x, ids = describe_cells(image, cells)
    assert len(ids) == len(np.unique(cells)) - 1 and np.isfinite(x).all()
