"""The per-cell scores every route reports: cell and image probabilities fused, Negative
estimated from the other classes, every class ranked.

* **Image probabilities** (:func:`image_estimate`): pooled from the image's cell
  probabilities by log-sum-exp of their logits (``image_pooling="lse"``, the default: an
  image shows a label when some of its cells show it clearly, as in multiple-instance
  learning) or by their mean (``"mean"``, :func:`image_probabilities`); when an
  image-level model scored the image too (the image head of a descriptors run, or an
  image-level run of ``hpaseg classify``), ``(1 - a) * pooled + a * model`` with ``a`` =
  ``image_model_weight`` (default 0.5: two estimates of the image's labels, one from its
  cells' own evidence, one trained on the image labels themselves).
* **Fusion** (``fusion``): ``mean`` = ``w * p_cell + (1 - w) * p_image`` (the default,
  ``w`` 0.2: the image's evidence ranks the images, each cell's own evidence ranks the
  cells within one), ``product`` = ``p_cell * p_image``, ``cell`` or ``image`` alone.
* **Negative** (``negative``): ``model`` keeps the fused Negative score; ``classes``
  uses ``prod_k (1 - s_k)`` over classes 0-17 (a cell with no likely class is
  Negative); ``max`` (default) takes the larger of the two.

The default was chosen by 5-fold cross-validation on the training images of the
synthetic benchmark (per-cell truth of held-out folds; ``python -m hpaseg.bench cv``, the
CPU preset with refined supervision, the image head trained with bag mixing): the
default scores 0.731, the highest of the 25 rules compared: ``mean`` with ``w`` 0.1
0.730, 0.3 0.727, 0.5 0.719; ``product`` 0.696-0.700; ``image`` 0.689; ``cell``
0.665-0.669; image model weight 0 (pooled alone) 0.715, 0.3 0.727, 0.7 0.725, 1 (the
image model alone) 0.720; mean pooling 0.720-0.730; a score floor of 0.05 0.719.
(Before bag mixing the same default scored 0.723, also the highest, and the image model
alone 0.684.) The log-sum-exp sharpness (:data:`LSE_SHARPNESS`, 5) was fixed throughout,
not chosen by the cross-validation. Per-class AP pools the cells of all images, so how likely an image is to
hold a class matters more than which of its cells do; the cell term breaks ties within an
image. ``hpaseg.bench learn`` reports every rule on the held-out test set
(benchmarks/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from ..classes import NEGATIVE, NUM_CLASSES
from ..errors import InputError

__all__ = [
    "FUSIONS",
    "NEGATIVE_RULES",
    "IMAGE_POOLINGS",
    "ScoreRule",
    "image_probabilities",
    "image_estimate",
    "negative_from_classes",
    "fuse_scores",
]

FUSIONS: tuple[str, ...] = ("product", "mean", "cell", "image")
NEGATIVE_RULES: tuple[str, ...] = ("max", "classes", "model")
IMAGE_POOLINGS: tuple[str, ...] = ("lse", "mean")
#: Sharpness ``r`` of the log-sum-exp pooling: ``sigmoid((logsumexp(r * z) - log N) / r)``
#: over the cells' logits ``z`` (r -> 0: the mean logit; r -> inf: the maximum). Fixed, not
#: chosen by the cross-validation that chose the rest of the default rule.
LSE_SHARPNESS = 5.0


@dataclass(frozen=True)
class ScoreRule:
    """How cell and image probabilities become the reported per-cell scores (module docstring).

    Attributes
    ----------
    fusion : {"product", "mean", "cell", "image"}
    weight : float
        ``w`` of ``mean`` (1 = the cell alone).
    negative : {"max", "classes", "model"}
    image_pooling : {"lse", "mean"}
        How the image's probabilities come from its cells' (:func:`image_probabilities`).
    image_model_weight : float
        ``a`` in ``(1 - a) * pooled + a * model`` when an image-level model scored the
        image (:func:`image_estimate`; 1 = the model alone).
    border_factor : float
        In [0, 1]: every score of a cell cut by the image border is multiplied by it
        (such a cell shows part of its pattern; 1 = treated like the others).
    """

    fusion: str = "mean"
    weight: float = 0.2
    negative: str = "max"
    image_pooling: str = "lse"
    image_model_weight: float = 0.5
    border_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise InputError(f"fusion {self.fusion!r}: expected one of {', '.join(FUSIONS)}", param="fusion")
        if self.negative not in NEGATIVE_RULES:
            raise InputError(
                f"negative {self.negative!r}: expected one of {', '.join(NEGATIVE_RULES)}", param="negative"
            )
        if self.image_pooling not in IMAGE_POOLINGS:
            raise InputError(
                f"image_pooling {self.image_pooling!r}: expected one of {', '.join(IMAGE_POOLINGS)}",
                param="image_pooling",
            )
        if not 0.0 <= self.weight <= 1.0:
            raise InputError(f"fusion_weight {self.weight}: expected a number in [0, 1]", param="fusion_weight")
        if not 0.0 <= self.border_factor <= 1.0:
            raise InputError(f"border_factor {self.border_factor}: expected a number in [0, 1]", param="border_factor")
        if not 0.0 <= self.image_model_weight <= 1.0:
            raise InputError(
                f"image_model_weight {self.image_model_weight}: expected a number in [0, 1]",
                param="image_model_weight",
            )


def image_probabilities(cell_probabilities: np.ndarray, pooling: str = "lse") -> np.ndarray:
    """An image's per-class probabilities from its cells' (zeros without cells).

    ``pooling="lse"``: ``sigmoid((logsumexp(r * z) - log N) / r)`` over the N cells' logits
    ``z``, ``r`` = :data:`LSE_SHARPNESS` (between the mean logit and the maximum);
    ``"mean"``: the mean probability.

    >>> image_probabilities(np.array([[1.0, 0.0], [0.5, 0.5]]), "mean").tolist()
    [0.75, 0.25]
    >>> p = np.array([[0.9], [0.1], [0.1]])
    >>> float(image_probabilities(p, "mean")[0]) < float(image_probabilities(p)[0]) < 0.9
    True
    """
    p = np.asarray(cell_probabilities, dtype=np.float64)
    if not len(p):
        return np.zeros(p.shape[1] if p.ndim == 2 else NUM_CLASSES)
    if pooling == "mean":
        return p.mean(0)
    if pooling != "lse":
        raise InputError(
            f"image_pooling {pooling!r}: expected one of {', '.join(IMAGE_POOLINGS)}", param="image_pooling"
        )
    q = np.clip(p, 1e-6, 1.0 - 1e-6)
    z = np.log(q) - np.log1p(-q)
    r = LSE_SHARPNESS
    pooled = (logsumexp(r * z, axis=0) - np.log(len(z))) / r
    return 1.0 / (1.0 + np.exp(-pooled))


def image_estimate(
    cell_probabilities: np.ndarray, image_model_probability: np.ndarray | None = None, rule: ScoreRule = ScoreRule()
) -> np.ndarray:
    """An image's probabilities ``(19,)``: pooled from its cells by ``rule.image_pooling``,
    mixed with an image-level model's by ``rule.image_model_weight`` when one is given.

    >>> p = np.array([[0.8, 0.0], [0.4, 0.0]])
    >>> image_estimate(p, None, ScoreRule(image_pooling="mean")).tolist()
    [0.6000000000000001, 0.0]
    >>> image_estimate(p, np.array([0.2, 1.0]), ScoreRule(image_pooling="mean")).round(2).tolist()
    [0.4, 0.5]
    """
    pooled = image_probabilities(cell_probabilities, rule.image_pooling)
    if image_model_probability is None:
        return pooled
    a = rule.image_model_weight
    return (1.0 - a) * pooled + a * np.asarray(image_model_probability, dtype=np.float64)


def negative_from_classes(scores: np.ndarray) -> np.ndarray:
    """Negative estimated from classes 0-17: ``prod_k (1 - s_k)`` per cell.

    >>> negative_from_classes(np.zeros((1, 19))).tolist()
    [1.0]
    """
    s = np.asarray(scores, dtype=np.float64)
    return np.prod(1.0 - np.clip(s[:, :NEGATIVE], 0.0, 1.0), axis=1)


def fuse_scores(
    cell_probabilities: np.ndarray,
    image_probability: np.ndarray | None = None,
    rule: ScoreRule = ScoreRule(),
    *,
    on_border: np.ndarray | None = None,
) -> np.ndarray:
    """Per-cell scores of one image by ``rule``.

    Parameters
    ----------
    cell_probabilities : ndarray, shape (N, 19)
    image_probability : ndarray, shape (19,), optional
        An image-level model's probabilities of the image, mixed with those pooled from
        the cells (:func:`image_estimate`); without it, the pooled ones alone.
    rule : ScoreRule
    on_border : ndarray, shape (N,), bool, optional
        The cells cut by the image border (their scores times ``rule.border_factor``).

    Returns
    -------
    ndarray, shape (N, 19), float64
        Every class scored for every cell.

    Examples
    --------
    Two cells of one image; the second lacks class 0:

    >>> p = np.zeros((2, 19)); p[:, 0] = [0.9, 0.1]
    >>> s = fuse_scores(p)
    >>> s[:, 0].round(2).tolist(), s[:, 18].round(2).tolist()
    ([0.89, 0.73], [0.11, 0.27])
    """
    p = np.asarray(cell_probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != NUM_CLASSES:
        raise InputError(
            f"cell probabilities of shape {p.shape}: expected (cells, {NUM_CLASSES})", param="cell_probabilities"
        )
    q = image_estimate(p, image_probability, rule)
    if rule.fusion == "product":
        s = p * q[None, :]
    elif rule.fusion == "mean":
        s = rule.weight * p + (1.0 - rule.weight) * q[None, :]
    elif rule.fusion == "cell":
        s = p.copy()
    else:
        s = np.repeat(q[None, :], len(p), axis=0)
    if rule.negative != "model":
        from_classes = negative_from_classes(s)
        s[:, NEGATIVE] = from_classes if rule.negative == "classes" else np.maximum(s[:, NEGATIVE], from_classes)
    if on_border is not None and rule.border_factor != 1.0:
        s[np.asarray(on_border, dtype=bool)] *= rule.border_factor
    return s
