"""Losses of the classifiers: binary cross-entropy and the focal loss, on logits."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from ..errors import InputError

__all__ = ["LOSSES", "make_loss"]

#: Loss names.
LOSSES: tuple[str, ...] = ("bce", "focal")


def make_loss(
    name: str, *, alpha: float = 0.25, gamma: float = 2.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(logits (N, K), targets (N, K) float in [0, 1] or NaN) -> scalar``, mean over
    the known elements (a NaN target is unknown and left out).

    ``"bce"``: binary cross-entropy with logits. ``"focal"``: torchvision's
    ``sigmoid_focal_loss(alpha, gamma)``.

    >>> x, y = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    >>> round(float(make_loss("focal")(x, y)), 6)  # (0.25 + 0.75) / 2 * 0.5**2 * ln 2
    0.086643
    >>> round(float(make_loss("bce")(torch.tensor([[0.0, 9.0]]), torch.tensor([[1.0, float("nan")]]))), 4)
    0.6931
    """
    if name not in LOSSES:
        raise InputError(f"loss {name!r}: expected one of {', '.join(LOSSES)}", param="loss")

    def elementwise(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if name == "bce":
            return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="none")

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        known = ~torch.isnan(targets)
        if bool(known.all()):
            return elementwise(logits, targets).mean()
        return elementwise(logits[known], targets[known]).mean()

    return loss
