"""Tests of hpaseg.evaluation.segmentation: agreement of label images with reference masks."""

from __future__ import annotations

import numpy as np
import pytest

from hpaseg import io
from hpaseg.errors import InputError
from hpaseg.evaluation.segmentation import compare_to_reference, pool_scores, score_segmentation


def _grid() -> np.ndarray:
    """Four 10x10 cells in a 20x20 image."""
    lab = np.zeros((20, 20), np.int32)
    lab[:10, :10], lab[:10, 10:], lab[10:, :10], lab[10:, 10:] = 1, 2, 3, 4
    return lab


def test_identical_masks_score_one_and_relabelling_does_not_matter():
    ref = _grid()
    s = score_segmentation(ref, (5 - ref) * 7)
    assert (s.n_true, s.n_pred, s.matched_05, s.matched_06, s.splits, s.merges) == (4, 4, 4, 4, 0, 0)
    assert s.f1_06 == 1.0 and s.mean_best_iou == 1.0


def test_a_merge_and_a_split_are_counted_and_cost_matches():
    ref = _grid()
    pred = ref.copy()
    pred[pred == 2] = 1  # cells 1 and 2 merged into one predicted cell
    pred[10:, :5] = 9  # cell 3 split in two halves
    s = score_segmentation(ref, pred)
    assert (s.merges, s.splits) == (1, 1)
    assert s.matched_06 == 1  # only cell 4 is matched at IoU >= 0.6 (the halves of cell 3 have IoU 0.5)
    assert s.matched_05 == 3 and s.f1_06 == pytest.approx(2 * 1 / (4 + 4))  # at 0.5: cell 1, one half of 3, cell 4
    assert s.best_ious == pytest.approx([0.5, 0.5, 0.5, 1.0])


def test_pooled_counts_and_mean_over_all_cells():
    ref = _grid()
    a = score_segmentation(ref, ref)
    b = score_segmentation(ref, np.where(ref == 4, 0, ref))  # one cell missed
    pooled = pool_scores([a, b])
    assert (pooled.n_true, pooled.n_pred, pooled.matched_06) == (8, 7, 7)
    assert pooled.mean_best_iou == pytest.approx(7 / 8)


def test_compare_to_reference_reads_png_and_npz_and_names_bad_input(tmp_path):
    masks, ref = tmp_path / "masks", tmp_path / "ref"
    io.write_mask_pair(masks, "a", _grid(), _grid())
    io.write_mask_pair(masks, "b", _grid(), _grid())
    io.write_mask_png(ref / "a_cellmask.png", _grid())
    np.savez(ref / "b.npz", cellmask=np.where(_grid() == 4, 0, _grid()))
    table = compare_to_reference(masks, ref)
    assert table["ID"].tolist() == ["a", "b", "pooled"]
    assert table["f1_iou06"].tolist() == [1.0, pytest.approx(6 / 7, abs=1e-4), pytest.approx(14 / 15, abs=1e-4)]
    with pytest.raises(InputError, match="no reference mask for any image"):
        compare_to_reference(masks, tmp_path)  # a folder without reference masks
    np.savez(ref / "b.npz", cellmask=np.zeros((5, 5), np.int32))
    with pytest.raises(InputError, match="b.npz: reference is 5x5 px"):
        compare_to_reference(masks, ref)
