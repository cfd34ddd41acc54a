"""Losses of the classifiers: binary cross-entropy and the focal loss, on logits."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.ops import sigmoid_focal_loss

from ..errors import InputError

__all__ = ["LOSSES", "make_loss"]

#: Loss names.
LOSSES: tuple[str, ...] = ("bce", "focal")


def make_loss(
    name: str, *, alpha: float = 0.25, gamma: float = 2.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(logits (N, K), targets (N, K) float in [0, 1]) -> scalar``, mean over all elements.

    ``"bce"``: binary cross-entropy with logits. ``"focal"``: torchvision's
    ``sigmoid_focal_loss(alpha, gamma, reduction="mean")``.

    >>> x, y = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    >>> round(float(make_loss("focal")(x, y)), 6)  # (0.25 + 0.75) / 2 * 0.5**2 * ln 2
    0.086643
    """
    if name not in LOSSES:
        raise InputError(f"loss {name!r}: expected one of {', '.join(LOSSES)}", param="loss")
    if name == "bce":
        return torch.nn.BCEWithLogitsLoss()

    def focal(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="mean")

    return focal
