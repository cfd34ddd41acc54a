"""The per-cell scores every route reports: cell and image probabilities fused, Negative
estimated from the other classes, every class ranked.

* **Image probabilities** (:func:`image_probabilities`): pooled from the image's cell
  probabilities by log-sum-exp of their logits (``image_pooling="lse"``, the default: an
  image shows a label when some of its cells show it clearly, as in multiple-instance
  learning) or by their mean (``"mean"``); an image-level classifier's output can be
  given instead.
* **Fusion** (``fusion``): ``mean`` = ``w * p_cell + (1 - w) * p_image`` (the default,
  ``w`` 0.2: the image's evidence ranks the images, each cell's own evidence ranks the
  cells within one), ``product`` = ``p_cell * p_image``, ``cell`` or ``image`` alone.
* **Negative** (``negative``): ``model`` keeps the fused Negative score; ``classes``
  uses ``prod_k (1 - s_k)`` over classes 0-17 (a cell with no likely class is
  Negative); ``max`` (default) takes the larger of the two.

The default was chosen by 5-fold cross-validation on the training images of the
synthetic benchmark (per-cell truth of held-out folds, the descriptor network with
refined supervision): competition mAP 0.655-0.658 for ``mean`` with ``w`` 0.05-0.3 (a
flat optimum; 0.2 is its middle), 0.649 at 0.5, ``product`` 0.602, ``image`` 0.619,
``cell`` 0.551; with the shipped network settings ``w`` 0.2 0.669, 0.5 0.665, ``image``
0.629, ``product`` 0.582. Per-class AP pools the cells of all images, so how likely an image is
to hold a class matters more than which of its cells do; the cell term breaks ties
within an image. Image pooling, same cross-validation with the shipped network
settings: log-sum-exp (sharpness 5) 0.669 against the mean's 0.645 at ``w`` 0.2. ``hpaseg.bench learn`` reports every rule on the held-out test set
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
    "negative_from_classes",
    "fuse_scores",
]

FUSIONS: tuple[str, ...] = ("product", "mean", "cell", "image")
NEGATIVE_RULES: tuple[str, ...] = ("max", "classes", "model")
IMAGE_POOLINGS: tuple[str, ...] = ("lse", "mean")
#: Sharpness ``r`` of the log-sum-exp pooling: ``sigmoid((logsumexp(r * z) - log N) / r)``
#: over the cells' logits ``z`` (r -> 0: the mean logit; r -> inf: the maximum).
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
    """

    fusion: str = "mean"
    weight: float = 0.2
    negative: str = "max"
    image_pooling: str = "lse"

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


def negative_from_classes(scores: np.ndarray) -> np.ndarray:
    """Negative estimated from classes 0-17: ``prod_k (1 - s_k)`` per cell.

    >>> negative_from_classes(np.zeros((1, 19))).tolist()
    [1.0]
    """
    s = np.asarray(scores, dtype=np.float64)
    return np.prod(1.0 - np.clip(s[:, :NEGATIVE], 0.0, 1.0), axis=1)


def fuse_scores(
    cell_probabilities: np.ndarray, image_probability: np.ndarray | None = None, rule: ScoreRule = ScoreRule()
) -> np.ndarray:
    """Per-cell scores of one image by ``rule``.

    Parameters
    ----------
    cell_probabilities : ndarray, shape (N, 19)
    image_probability : ndarray, shape (19,), optional
        The image's probabilities; default :func:`image_probabilities` of the cells
        (``rule.image_pooling``).
    rule : ScoreRule

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
    q = (
        image_probabilities(p, rule.image_pooling)
        if image_probability is None
        else np.asarray(image_probability, dtype=np.float64)
    )
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
    return s
