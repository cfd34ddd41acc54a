"""The image head: an image's cells (their feature rows) -> one row of image logits, trained
on the image labels themselves (exact, unlike the cells' propagated ones), with bag mixing.

A second estimate of an image's labels beside the one pooled from a cell model's
probabilities (:func:`hpaseg.weak.image_estimate` mixes the two). Its inputs are whatever
describes a cell: the descriptors of the descriptors backbone, the pooled features of a CNN
cell classifier (:mod:`hpaseg.classification.cell_trainer`), or the pixel-head features of
Mask R-CNN's cells (:mod:`hpaseg.detection.heads`): one owner for all three.

Design (chosen with the score rule's image-model weight by cross-validation on the
benchmark's training images, benchmarks/RESULTS.md): the cells' standardised features are
pooled over the image (mean and maximum, ``2 D`` values), then ``depth`` x (Linear
``hidden``, ReLU, Dropout) -> Linear 19. Training: AdamW, batches of 16 images, bag mixing
(:func:`hpaseg.weak.bag_mixtures`) with chance ``mix``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..classes import NUM_CLASSES
from ..runtime.seed import seed_everything
from .bags import bag_mixtures, mixed_bag, targets_matrix

__all__ = ["IMAGE_HEAD", "StandardizedMLP", "ImageHead", "fit_image_head", "image_head_probabilities", "one_thread"]

#: The image head's network: hidden width, hidden layers, dropout.
IMAGE_HEAD: dict = {"hidden": 256, "depth": 2, "dropout": 0.2}
#: Images per step.
_BATCH = 16


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread: small networks on small matrices lose more to thread
    synchronisation than they gain (measured: ~30x slower on 2 busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class StandardizedMLP(nn.Module):
    """Per-cell feature rows standardised (``mean``, ``std`` of the training cells, part of
    the model: :meth:`set_normalization`), then ``depth`` x (Linear ``hidden``, ReLU,
    Dropout) -> Linear ``num_classes`` on ``net_inputs`` values: the networks of the
    descriptors backbone (:class:`hpaseg.classification.DescriptorNet`, per cell) and of
    :class:`ImageHead` (per image) share it."""

    def __init__(
        self,
        n_inputs: int,
        net_inputs: int,
        *,
        hidden: int,
        depth: int,
        dropout: float,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_inputs))
        self.register_buffer("std", torch.ones(n_inputs))
        layers: list[nn.Module] = []
        width = net_inputs
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def set_normalization(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Standardise inputs by ``(x - mean) / std`` (``std`` floored at 1e-6)."""
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.maximum(std, 1e-6), dtype=torch.float32))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std``."""
        return (x - self.mean) / self.std


class ImageHead(StandardizedMLP):
    """An image's cells ``(N, D)`` -> ``(num_classes,)`` logits (module docstring): the
    standardised rows' mean and maximum over the cells (``2 D`` values) through the MLP.
    :meth:`forward_bags` scores many images in one pass.
    """

    def __init__(
        self,
        n_inputs: int,
        *,
        hidden: int = 256,
        depth: int = 2,
        dropout: float = 0.2,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__(n_inputs, 2 * n_inputs, hidden=hidden, depth=depth, dropout=dropout, num_classes=num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.standardize(x)
        return self.net(torch.cat([z.mean(0), z.max(0).values]))

    def forward_bags(self, bags: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits ``(len(bags), num_classes)`` of several images, each ``(N_i, D)`` with
        N_i >= 1: the rows of :meth:`forward`, pooled per image with scatter operations
        and one pass of the network (several times faster than one call per image)."""
        lengths = torch.tensor([len(b) for b in bags], device=self.mean.device)
        z = self.standardize(torch.cat(list(bags)))
        index = torch.repeat_interleave(torch.arange(len(bags), device=z.device), lengths)
        mean = z.new_zeros(len(bags), z.shape[1]).index_add(0, index, z) / lengths[:, None].to(z.dtype)
        peak = z.new_full((len(bags), z.shape[1]), -torch.inf).scatter_reduce(
            0, index[:, None].expand_as(z), z, reduce="amax", include_self=False
        )
        return self.net(torch.cat([mean, peak], 1))


def fit_image_head(
    features: Sequence[np.ndarray],
    image_labels: Sequence[Sequence[int]],
    *,
    epochs: int,
    mix: float,
    lr: float,
    weight_decay: float,
    seed: int,
    net: dict | None = None,
) -> ImageHead:
    """An :class:`ImageHead` trained on images' labels from their cells' features.

    Parameters
    ----------
    features : sequence of ndarray, each (N_i, D) float32, N_i >= 1
        One per training image: its cells' feature rows.
    image_labels : sequence of sequence of int
        Each image's labels (as train.csv writes them).
    epochs : int
        Passes over the images (> 0).
    mix : float
        Bag-mixing chance (:func:`hpaseg.weak.bag_mixtures`).
    lr, weight_decay : float
        AdamW's.
    seed : int
        The same inputs and seed give the same weights.
    net : dict, optional
        ``hidden``, ``depth``, ``dropout`` (default :data:`IMAGE_HEAD`).

    Returns
    -------
    ImageHead
        In eval mode, on the CPU.
    """
    seed_everything(seed)
    x = np.concatenate(features)
    head = ImageHead(x.shape[1], **(net or IMAGE_HEAD))
    head.set_normalization(x.mean(0), x.std(0))
    y = torch.from_numpy(targets_matrix(image_labels))
    cells = [torch.from_numpy(np.asarray(f, np.float32)) for f in features]
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    head.train()
    with one_thread():
        for epoch in range(epochs):
            rng = np.random.default_rng((seed, 1_000_000, epoch))
            order = rng.permutation(len(cells))
            for start in range(0, len(order), _BATCH):
                groups = bag_mixtures(order[start : start + _BATCH], len(cells), rng, probability=mix)
                samples = [mixed_bag(cells, y, g) for g in groups]
                logits = head.forward_bags([c for c, _ in samples])
                loss = F.binary_cross_entropy_with_logits(logits, torch.stack([t for _, t in samples]))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    return head.eval()


@torch.no_grad()
def image_head_probabilities(head: ImageHead | None, features: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """The head's probabilities ``(19,)`` of each image's cell features (None for each without a head)."""
    if head is None:
        return [None] * len(features)
    head.eval()
    if not len(features):
        return []
    with one_thread():
        logits = head.forward_bags([torch.from_numpy(np.asarray(f, np.float32)) for f in features])
    return list(torch.sigmoid(logits).numpy().astype(np.float64))
