"""Tests of hpaseg.synth.compare, and the check that the default synthetic fields have the statistics of real HPA fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hpaseg.classes import Channel
from hpaseg.synth import compare

REAL_FIELDS = "hpa_kaggle_fields"


def test_touching_means_a_gap_of_at_most_2_px():
    mask = np.zeros((8, 20), np.int32)
    mask[2:6, 0:3] = 1
    mask[2:6, 5:8] = 2  # 2 px of background from cell 1: touching (HPA's masks separate touching cells so)
    mask[2:6, 11:14] = 3  # 3 px from cell 2: not touching
    mask[6:8, 14:20] = 4  # diagonal neighbour of cell 3, corner to corner: touching
    assert compare.touching_cells(mask).tolist() == [True, True, True, True]
    mask[6:8, 14:20] = 0
    assert compare.touching_cells(mask).tolist() == [True, True, False]


def test_field_stats_of_a_known_field():
    size = 256
    mask = np.zeros((size, size), np.int32)
    mask[0:64, 0:64] = 1  # at the border
    mask[100:164, 100:164] = 2
    mask[100:164, 165:229] = 3  # touches cell 2 (1 px gap)
    image = np.zeros((size, size, 4), np.uint8)
    image[..., Channel.RED][mask > 0] = 40
    image[..., Channel.BLUE][110:130, 110:130] = 200  # a nucleus in cell 2 only
    stats = compare.field_stats(image, mask)
    assert stats.n_cells == 3
    np.testing.assert_allclose(stats.cell_area, [64 * 64 * 64] * 3)  # px at 2048: (2048 / 256)^2 = 64
    assert stats.touching.tolist() == [False, True, True]
    assert stats.at_border.tolist() == [True, False, False]
    assert stats.coverage == pytest.approx(3 * 64 * 64 / size**2)
    np.testing.assert_allclose(stats.solidity, 1.0)
    assert stats.nucleus_ratio[1] == pytest.approx(400 / 4096, rel=0.3) and stats.nucleus_ratio[0] == 0
    assert stats.background_zero[Channel.RED] == 1.0
    assert stats.background[Channel.RED].tolist() == [0, 0, 0] and stats.cells[Channel.RED].tolist() == [40, 40, 40]


def test_check_closeness_flags_out_of_range_statistics():
    rows = [
        compare.StatRow("field covered by cells", 0.44, 0.18, 0.78, 0.5, 0.3, 0.7),
        compare.StatRow("red background p50", 0.25, 0, 1, 5.5, 4, 7),
        compare.StatRow("not a checked statistic", 1, 1, 1, 99, 99, 99),
    ]
    assert compare.check_closeness(rows) == ["red background p50: synthetic 5.5 outside -2-3 (real 0-1)"]


@pytest.mark.slow
def test_default_fields_have_the_statistics_of_real_fields(shared_data: Path):
    """Four 2048 px fields of the default style against the four real fields: every checked
    statistic (cell count, area, coverage, touching, border, shape, nucleus ratio, per-cell
    stain variation, background and cell intensity percentiles) within the real fields'
    range, widened by :data:`hpaseg.synth.compare.TOLERANCES`."""
    real = shared_data / REAL_FIELDS
    if not real.is_dir():
        pytest.skip(f"{real} not found")
    rows = compare.compare(real, n_synth=4, seed=0)
    assert compare.check_closeness(rows) == [], compare.format_table(rows)


@pytest.mark.slow
def test_compact_fields_do_not(shared_data: Path):
    """Why real-like is the default: the earlier look has a grey background and rounder cells."""
    real = shared_data / REAL_FIELDS
    if not real.is_dir():
        pytest.skip(f"{real} not found")
    failures = compare.check_closeness(compare.compare(real, n_synth=2, seed=0, style="compact"))
    for channel in ("red", "green", "yellow"):
        assert any(f.startswith(f"{channel} background p50") for f in failures), failures
        assert any(f.startswith(f"{channel} background, fraction 0") for f in failures), failures
