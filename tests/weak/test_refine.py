"""hpaseg.weak.refine: pseudo-labels within the image's labels."""

from __future__ import annotations

import numpy as np
import pytest

from hpaseg.errors import InputError
from hpaseg.weak import refine_targets


def _probabilities(rows: dict[int, list[float]], n: int) -> np.ndarray:
    p = np.full((n, 19), 0.01)
    for k, column in rows.items():
        p[:, k] = column
    return p


def test_a_cell_far_below_the_best_loses_the_label_and_one_left_with_none_becomes_negative():
    p = _probabilities({0: [0.9, 0.8, 0.1], 16: [0.7, 0.05, 0.02]}, 3)
    t = refine_targets(p, (0, 16), keep_fraction=0.5)
    assert t[:, 0].tolist() == [1, 1, 0]
    assert t[:, 16].tolist() == [1, 0, 0]
    assert t[:, 18].tolist() == [0, 0, 1]


def test_no_cell_gets_a_label_its_image_lacks():
    p = _probabilities({0: [0.9, 0.9], 5: [0.99, 0.99]}, 2)
    t = refine_targets(p, (0,))
    assert not t[:, 5].any() and t[:, 0].all()


def test_the_best_cell_always_keeps_each_label():
    p = _probabilities({3: [0.02, 0.01, 0.015]}, 3)
    assert refine_targets(p, (3,))[:, 3].sum() >= 1


def test_a_negative_image_stays_negative_and_empty_input_is_kept():
    assert refine_targets(np.random.default_rng(0).random((4, 19)), (18,))[:, 18].all()
    assert refine_targets(np.zeros((0, 19)), (0,)).shape == (0, 19)


@pytest.mark.parametrize("keep", [0.0, 1.5])
def test_keep_fraction_out_of_range_names_the_parameter(keep):
    with pytest.raises(InputError, match="keep_fraction") as err:
        refine_targets(np.zeros((1, 19)), (0,), keep_fraction=keep)
    assert err.value.param == "keep_fraction"


def test_wrong_shape_is_refused():
    with pytest.raises(InputError, match=r"expected \(cells, 19\)"):
        refine_targets(np.zeros((2, 5)), (0,))
