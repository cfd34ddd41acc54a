"""Which (class, confidence) pairs a predicted cell is reported with: the rule every route
(Mask R-CNN, cell classifier, hybrid) applies to a cell's per-class scores."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..classes import NEGATIVE
from ..errors import InputError

__all__ = ["LabelRule", "cell_labels"]


@dataclass(frozen=True)
class LabelRule:
    """How per-class scores become reported labels.

    Attributes
    ----------
    min_score : float
        Classes scoring below this are not reported. Default 0: every class of every
        cell is reported, as per-class AP rewards every ranked (cell, class) pair and a
        floor only loses recall (``hpaseg.bench learn`` measures it).
    negative_threshold : float
        A cell whose best class 0-17 scores below this is also reported as Negative
        (18) with confidence ``1 - best``, unless its own Negative score is higher.
        Default 0 (off): the score rule already estimates Negative from the other
        classes (:class:`hpaseg.weak.ScoreRule`).
    """

    min_score: float = 0.0
    negative_threshold: float = 0.0

    def __post_init__(self) -> None:
        for name in ("min_score", "negative_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name} {getattr(self, name)}: expected a number in [0, 1]", param=name)


def cell_labels(scores: Mapping[int, float], rule: LabelRule = LabelRule()) -> list[tuple[int, float]]:
    """The (class, confidence) pairs reported for one cell, best first.

    >>> cell_labels({0: 0.9, 16: 0.2, 5: 0.01})
    [(0, 0.9), (16, 0.2), (5, 0.01)]
    >>> cell_labels({0: 0.9, 16: 0.2, 5: 0.01}, LabelRule(min_score=0.05))
    [(0, 0.9), (16, 0.2)]
    >>> cell_labels({16: 0.2}, LabelRule(negative_threshold=0.3))
    [(18, 0.8), (16, 0.2)]
    """
    out = {k: s for k, s in scores.items() if s >= rule.min_score}
    positive = max((s for k, s in scores.items() if k != NEGATIVE), default=0.0)
    if positive < rule.negative_threshold:
        out[NEGATIVE] = max(out.get(NEGATIVE, 0.0), 1.0 - positive)
    return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))
