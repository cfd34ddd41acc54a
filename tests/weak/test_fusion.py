"""hpaseg.weak.fusion: the per-cell scores every route reports."""

from __future__ import annotations

import numpy as np
import pytest

from hpaseg.errors import InputError
from hpaseg.weak import FUSIONS, ScoreRule, fuse_scores, image_estimate, image_probabilities, negative_from_classes


def _cells() -> np.ndarray:
    p = np.full((3, 19), 0.02)
    p[:, 0] = [0.9, 0.8, 0.1]  # the third cell lacks class 0
    return p


@pytest.mark.parametrize("fusion", [f for f in FUSIONS if f != "image"])
def test_a_cell_lacking_the_label_ranks_below_those_that_have_it(fusion):
    s = fuse_scores(_cells(), None, ScoreRule(fusion=fusion))
    assert s[2, 0] < min(s[0, 0], s[1, 0])
    assert s[2, 18] > max(s[0, 18], s[1, 18])  # ... and is the most likely Negative


def test_image_fusion_gives_every_cell_the_image_scores():
    s = fuse_scores(_cells(), np.full(19, 0.3), ScoreRule(fusion="image", negative="model", image_model_weight=1))
    assert np.allclose(s, 0.3)


def test_product_with_an_image_probability_scales_the_cells():
    q = np.zeros(19)
    q[0] = 0.5
    s = fuse_scores(_cells(), q, ScoreRule(fusion="product", negative="model", image_model_weight=1))
    assert np.allclose(s[:, 0], [0.45, 0.4, 0.05]) and np.allclose(s[:, 1:], 0)


def test_an_image_model_is_mixed_with_the_pooled_cells_by_its_weight():
    p, q = _cells(), np.full(19, 0.3)
    pooled = image_probabilities(p)
    for a in (0.0, 0.5, 1.0):
        rule = ScoreRule(fusion="image", negative="model", image_model_weight=a)
        assert np.allclose(image_estimate(p, q, rule), (1 - a) * pooled + a * 0.3)
        assert np.allclose(fuse_scores(p, q, rule), (1 - a) * pooled + a * 0.3)
    assert np.allclose(image_estimate(p, None, ScoreRule()), pooled)  # no model: pooled alone
    # default: half and half, so an image model that misses a class the cells show
    # (or shows one they miss) moves the image's score only halfway
    assert ScoreRule().image_model_weight == 0.5


def test_negative_rules():
    p = np.zeros((1, 19))
    p[0, 18] = 0.2
    assert fuse_scores(p, None, ScoreRule(fusion="cell", negative="model"))[0, 18] == pytest.approx(0.2)
    assert fuse_scores(p, None, ScoreRule(fusion="cell", negative="classes"))[0, 18] == pytest.approx(1.0)
    p[0, 0] = 0.9
    assert fuse_scores(p, None, ScoreRule(fusion="cell", negative="max"))[0, 18] == pytest.approx(0.2)
    assert negative_from_classes(p)[0] == pytest.approx(0.1)


def test_image_probabilities_pool_the_cells():
    assert np.allclose(image_probabilities(_cells(), "mean")[0], 0.6)
    assert image_probabilities(np.zeros((0, 19))).shape == (19,)
    lse = image_probabilities(_cells())  # log-sum-exp: between the mean and the best cell
    assert 0.6 < lse[0] < 0.9 and np.allclose(lse[1:], 0.02)
    one = np.full((1, 19), 0.3)
    assert np.allclose(image_probabilities(one), 0.3)  # one cell: the cell itself


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"fusion": "sum"}, "fusion"),
        ({"negative": "x"}, "negative"),
        ({"weight": 2}, "fusion_weight"),
        ({"image_pooling": "max"}, "image_pooling"),
        ({"image_model_weight": -0.1}, "image_model_weight"),
    ],
)
def test_bad_rules_name_the_parameter(kwargs, param):
    with pytest.raises(InputError) as err:
        ScoreRule(**kwargs)
    assert err.value.param == param


def test_wrong_shape_is_refused():
    with pytest.raises(InputError, match="expected \\(cells, 19\\)"):
        fuse_scores(np.zeros((2, 3)))


def test_border_cells_scores_are_lowered_by_the_border_factor():
    import numpy as np

    from hpaseg.errors import InputError
    from hpaseg.labels import border_cells
    from hpaseg.weak import ScoreRule, fuse_scores

    label_image = np.array([[1, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]])
    ids = np.array([1, 2])
    on_border = np.isin(ids, list(border_cells(label_image)))
    assert on_border.tolist() == [True, False]
    p = np.full((2, 19), 0.4)
    plain = fuse_scores(p, None, ScoreRule())
    lowered = fuse_scores(p, None, ScoreRule(border_factor=0.5), on_border=on_border)
    np.testing.assert_allclose(lowered[0], 0.5 * plain[0])
    np.testing.assert_allclose(lowered[1], plain[1])
    np.testing.assert_allclose(fuse_scores(p, None, ScoreRule(), on_border=on_border), plain)  # default 1: no change
    with pytest.raises(InputError, match="border_factor 1.5") as err:
        ScoreRule(border_factor=1.5)
    assert err.value.param == "border_factor"
