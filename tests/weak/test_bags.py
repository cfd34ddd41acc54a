"""hpaseg.weak.bags: targets, the multiple-instance loss and bag mixing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpaseg.errors import InputError
from hpaseg.weak import (
    MAX_MIXED_IMAGES,
    bag_loss,
    bag_mixtures,
    cell_loss,
    mixed_bag,
    pool_logits,
    propagated_targets,
    targets_matrix,
)


def test_propagated_targets_give_every_cell_the_image_labels():
    y = propagated_targets(3, (2, 7))
    assert y.shape == (3, 19) and y.dtype == np.float32
    assert (y[:, [2, 7]] == 1).all() and y.sum() == 6


def test_targets_matrix_one_row_per_cell():
    y = targets_matrix([(0,), (), (5, 18)])
    assert y[0].nonzero()[0].tolist() == [0] and not y[1].any() and y[2].nonzero()[0].tolist() == [5, 18]


@pytest.mark.parametrize("pooling", ["lse", "max", "mean"])
def test_pooling_lies_between_mean_and_max(pooling):
    x = torch.tensor([[0.0, -1.0], [3.0, 1.0], [1.0, 0.0]])
    pooled = pool_logits(x, pooling)
    assert (pooled <= x.max(0).values + 1e-6).all() and (pooled >= x.mean(0) - 1e-6).all()


def test_unknown_pooling_names_the_parameter():
    with pytest.raises(InputError, match="pooling 'attention'") as err:
        pool_logits(torch.zeros(2, 19), "attention")
    assert err.value.param == "pooling"


def test_bag_loss_pushes_absent_classes_down_in_every_cell_and_present_ones_up_in_the_best_cell():
    logits = torch.zeros(4, 19, requires_grad=True)
    bag_loss(logits, (0,), pooling="max").backward()
    grad = logits.grad
    assert (grad[:, 5] > 0).all()  # absent: every cell's logit goes down (gradient descent)
    assert grad[:, 0].lt(0).sum() == 1  # present, max pooling: one cell goes up
    # Negative not listed (Kaggle convention): not "no cell is Negative", only "some cell is
    # not": the least Negative cell (min pooling) goes down, the others are free
    assert grad[:, 18].gt(0).sum() == 1 and grad[:, 18].lt(0).sum() == 0


def test_a_cell_of_a_positive_image_may_be_negative_under_either_loss():
    """One cell confidently Negative, three clearly not, in an image labelled 0: neither
    loss pushes that cell's Negative down (were a missing 18 read as "no cell is
    Negative", both would)."""
    logits = torch.full((4, 19), -6.0)
    logits[1:, 0] = 6.0
    logits[0, 18] = 6.0
    logits.requires_grad_(True)
    bag_loss(logits, (0,)).backward()
    assert abs(float(logits.grad[0, 18])) < 1e-3
    logits.grad = None
    targets = torch.from_numpy(propagated_targets(4, (0,)))
    cell_loss(logits, targets, negative_known=False).backward()
    assert abs(float(logits.grad[0, 18])) < 1e-3
    logits.grad = None
    cell_loss(logits, targets).backward()  # a known Negative target 0 (refined or per-cell labels) does
    assert float(logits.grad[0, 18]) > 1e-3


def test_a_listed_negative_beside_other_labels_is_present():
    logits = torch.zeros(3, 19, requires_grad=True)
    bag_loss(logits, (0, 18), pooling="max").backward()
    assert logits.grad[:, 18].lt(0).sum() == 1  # some cell is Negative


def test_bag_loss_is_small_when_one_cell_carries_the_label_and_large_when_none_does():
    carried = torch.full((4, 19), -8.0)
    carried[1, 0] = 8.0
    missing = torch.full((4, 19), -8.0)
    assert float(bag_loss(carried, (0,), pooling="max")) < 0.01 < float(bag_loss(missing, (0,), pooling="max"))


def test_a_negative_image_makes_every_cell_negative():
    logits = torch.zeros(3, 19, requires_grad=True)
    bag_loss(logits, (18,)).backward()
    assert (logits.grad[:, 18] < 0).all() and (logits.grad[:, :18] > 0).all()


def test_bag_mixtures_keep_each_bag_first_and_join_one_to_three_others():
    rng = np.random.default_rng(0)
    order = list(range(40))
    alone = bag_mixtures(order, 40, rng, probability=0.0)
    assert [g.tolist() for g in alone] == [[i] for i in order]
    mixed = bag_mixtures(order, 40, rng, probability=1.0)
    assert [int(g[0]) for g in mixed] == order
    sizes = [len(g) for g in mixed]
    assert min(sizes) == 2 and max(sizes) == MAX_MIXED_IMAGES
    assert all(0 <= i < 40 for g in mixed for i in g)
    some = bag_mixtures(list(range(2000)), 2000, rng, probability=0.25)
    assert 0.2 < np.mean([len(g) > 1 for g in some]) < 0.3


@pytest.mark.parametrize("probability", [-0.1, 1.5])
def test_a_mixing_chance_outside_0_1_is_refused(probability):
    with pytest.raises(InputError, match=f"image_mix {probability}"):
        bag_mixtures([0], 1, np.random.default_rng(0), probability=probability)


def test_a_mixed_bag_holds_every_cell_of_its_images_and_the_union_of_their_labels():
    cells = [torch.full((n, 2), float(i)) for i, n in enumerate((3, 1, 2))]
    labels = torch.from_numpy(targets_matrix([(0,), (5, 18), (0, 7)]))
    x, y = mixed_bag(cells, labels, [2, 1])
    assert x[:, 0].tolist() == [2.0, 2.0, 1.0]
    assert np.flatnonzero(y.numpy()).tolist() == [0, 5, 7, 18]
    x, y = mixed_bag(cells, labels, [0])
    assert x.shape == (3, 2) and np.flatnonzero(y.numpy()).tolist() == [0]
