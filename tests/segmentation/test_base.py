"""Tests of hpaseg.segmentation: quality on real and synthetic images, the methods' library parts."""

from __future__ import annotations

import numpy as np

from hpaseg import segmentation as seg


def _assert_convention(cells: np.ndarray, nuclei: np.ndarray, *, min_inside: float = 0.99) -> None:
    """Cells 1..N contiguous, nucleus ids = cell ids, nucleus k inside cell k."""
    n = int(cells.max())
    assert set(np.unique(cells)) == set(range(n + 1))
    assert set(np.unique(nuclei)) == set(range(n + 1))
    inside = nuclei > 0
    if inside.any():
        assert np.mean(cells[inside] == nuclei[inside]) >= min_inside


def test_relabel_pair_brings_any_ids_to_convention():
    cells = np.array([[9, 9, 9, 0, 4, 4], [9, 9, 9, 0, 4, 4], [0, 0, 0, 0, 7, 7]])
    nuclei = np.array([[0, 3, 0, 0, 1, 0], [0, 3, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    c, n = seg.relabel_pair(cells, nuclei, drop_cells_without_nucleus=False)
    assert c.tolist() == [[3, 3, 3, 0, 1, 1], [3, 3, 3, 0, 1, 1], [0, 0, 0, 0, 2, 2]]
    assert n.tolist() == [[0, 3, 0, 0, 1, 0], [0, 3, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]
    c, n = seg.relabel_pair(cells, nuclei, drop_cells_without_nucleus=True)
    assert sorted(np.unique(c).tolist()) == [0, 1, 2] and (c[2, 4:] == 0).all()
    _assert_convention(c, n)
