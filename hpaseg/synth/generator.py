"""A synthetic HPA-like dataset, with the truth the real one lacks: cell masks and
per-cell labels.

:func:`generate_dataset` (``hpaseg synth OUT --n-train N --n-test M --size S --seed K
[--bit-depth 8|16]``) writes the Kaggle layout plus the truth::

    OUT/train.csv                  ID,Label  image labels = union of the image's cell labels
    OUT/train/{ID}_{red,green,blue,yellow}.png
    OUT/test/{ID}_{red,green,blue,yellow}.png
    OUT/sample_submission.csv      ID,ImageWidth,ImageHeight,PredictionString (empty), one row per test image
    OUT/truth.csv                  the test images in submission format: every (cell, label) at confidence 1
    OUT/masks/{ID}_cellmask.png    true cell masks of all images (16-bit; nucleus k inside cell k)
    OUT/masks/{ID}_nucleimask.png
    OUT/cell_labels.csv            ID,split,cell,Label  true labels of every cell of every image
    OUT/synth.json                 the options; "complete": true once everything is written

Image IDs are ``synth_train_0000``, ``synth_test_0000``, ... Image ``i`` of a split is drawn
from its own random stream, ``SeedSequence(seed, spawn_key=(split, i))``, so the same
seed gives byte-identical files and the test images do not depend on ``--n-train``.

What an image looks like
------------------------
Sizes are set at HPA's 2048 px and scaled by ``size / 2048``: cells 220-500 px across
at 2048 (55-125 px at 512), about 10-25 of them in clustered colonies, so neighbours touch
(a multiplicatively weighted Voronoi tessellation of jittered centres with irregular,
elongated, non-convex outlines), some cells are cut by the border and some background
lies between colonies. Every cell holds one nucleus, an irregular ellipse 30-50% of the
cell's diameter, with the same id in both masks. Mitotic cells are round with a
condensed chromosome plate for a nucleus.

* blue: nuclei, textured, darker nucleoli, uneven brightness (some nuclei dim);
* red: microtubules, fibres radiating from the nucleus over the cytoplasm (a spindle
  in mitotic cells);
* yellow: endoplasmic reticulum, a reticular mesh weighted towards the nucleus;
* green: the protein, drawn per cell from that cell's own labels:

  ==  ==========================  ==================================================
  0   Nucleoplasm                 fills the nucleus, spares the nucleoli
  1   Nuclear membrane            a thin ring on the nucleus edge
  2   Nucleoli                    1-4 round blobs inside the nucleus
  3   Nucleoli fibrillar center   tiny dots inside the nucleoli
  4   Nuclear speckles            many small irregular speckles in the nucleus
  5   Nuclear bodies              1-6 distinct bright dots in the nucleus
  6   Endoplasmic reticulum       the yellow channel's perinuclear mesh
  7   Golgi apparatus             a compact perinuclear crescent on one side
  8   Intermediate filaments      long, gently curving fibres across the cell
  9   Actin filaments             straight parallel stress fibres and a cortical rim
  10  Microtubules                the red channel's radiating fibres
  11  Mitotic spindle             a bipolar spindle in a round mitotic cell
  12  Centrosome                  one or two bright dots next to the nucleus
  13  Plasma membrane             a ring along the cell outline
  14  Mitochondria                short tubules, a network denser near the nucleus
  15  Aggresome                   one large bright blob next to the nucleus
  16  Cytosol                     diffuse fill of the cytoplasm
  17  Vesicles                    many punctate dots in the cytoplasm
  18  Negative                    nothing but dim background and noise
  ==  ==========================  ==================================================

Weak supervision: each image draws 1-3 labels with HPA-like imbalance
(:data:`CLASS_FREQUENCIES`); in about 40% of images one label is missing from some
cells, and a cell left with no label is Negative (18). Mitotic spindle is carried by
the one or two mitotic cells only. The image label is the union of its cells' labels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.measure import label as connected
from skimage.segmentation import find_boundaries
from tqdm import tqdm

from .. import io
from ..classes import CLASS_NAMES, NEGATIVE, NUM_CLASSES, REFERENCE_SIZE_PX, Channel
from ..errors import InputError
from ..submission import Prediction, SubmissionRow, encode_label_image, write_submission

__all__ = [
    "MIN_SIZE_PX",
    "CLASS_FREQUENCIES",
    "SynthImage",
    "SynthSummary",
    "draw_image_labels",
    "synth_image",
    "image_id",
    "image_rng",
    "generate_dataset",
    "TABLES",
]

#: Smallest ``size`` accepted: below it cells would be a few pixels across.
MIN_SIZE_PX = 128
#: Relative image-label frequencies of classes 0-17, HPA-like: roughly the label counts of
#: the Kaggle 2021 train.csv, with Mitotic spindle, Aggresome and Nucleoli fibrillar center
#: kept rare but not vanishing. Negative (18) is drawn on its own, see :data:`NEGATIVE_IMAGE_PROBABILITY`.
CLASS_FREQUENCIES: tuple[float, ...] = (
    8800,
    1100,
    2400,
    300,
    1260,
    1950,
    880,
    2090,
    1000,
    680,
    1040,
    150,
    1540,
    2930,
    2130,
    250,
    6130,
    2130,
    0,
)
#: Probability that an image is Negative as a whole (every cell 18).
NEGATIVE_IMAGE_PROBABILITY = 0.02
#: Probabilities of 1, 2 and 3 labels per (non-negative) image.
LABEL_COUNT_PROBABILITIES: tuple[float, ...] = (0.55, 0.33, 0.12)
#: Probability that one label of the image is missing from some of its cells, for images of
#: one label and of several (about 0.4 overall).
VARY_PROBABILITY_ONE_LABEL = 0.3
VARY_PROBABILITY_SEVERAL_LABELS = 0.5

_CELL_RADIUS_PX_AT_2048 = (110.0, 250.0)  # mean radius of one cell
_TYPICAL_RADIUS_PX_AT_2048 = (150.0, 200.0)  # an image's typical cell radius
_NUCLEUS_TO_CELL_DIAMETER = (0.30, 0.50)
_CELLS_PLACED = (12, 27)  # cells placed per image, some of them then cut away by the border
_MITOTIC_RADIUS_FACTOR = 0.72  # mitotic cells are round and smaller than the image's typical cell
_MIN_VISIBLE_NUCLEUS_FRACTION = 0.4  # cells whose nucleus lies mostly outside the image are dropped
_MIN_CELL_AREA_FRACTION = 0.15  # ... and cells keeping less than this fraction of pi r^2
_LAYOUT_TRIES = 10
_NUCLEUS_CLAIM = 0.5  # inside its nucleus ellipse a cell's rho is at most this times the ellipse radius
_FIBRE_SIGMA_PX_AT_2048 = 2.5  # half-width of fibres, dots and rims
_MIN_FIBRE_SIGMA_PX = 0.55
_STEP_PX = 0.6  # sampling step of drawn fibres, in output pixels
_FINAL_BLUR_PX_AT_2048 = 2.5
_BACKGROUND_LEVEL = (0.012, 0.03)  # channel offset, fraction of full scale
_NOISE_LEVEL = 0.012  # standard deviation of the camera noise, fraction of full scale
#: Peak green level of each class's pattern before per-cell and per-image gains.
_CLASS_GAIN: tuple[float, ...] = (
    0.65,
    0.8,
    0.8,
    0.95,
    0.75,
    0.95,
    0.65,
    0.8,
    0.75,
    0.7,
    0.6,
    0.9,
    1.0,
    0.75,
    0.7,
    1.0,
    0.42,
    0.8,
    0.0,
)
_MITOTIC_SPINDLE = CLASS_NAMES.index("Mitotic spindle")  # 11: carried by the mitotic cells only
_SPLITS = ("train", "test")
_MANIFEST = "synth.json"
TABLES = ("train.csv", "sample_submission.csv", "truth.csv", "cell_labels.csv")


# --------------------------------------------------------------------------- results
@dataclass
class SynthImage:
    """One synthetic field of view and its truth.

    Attributes
    ----------
    image : ndarray, shape (H, W, 4), uint8
        RGBY channels (see :class:`hpaseg.classes.Channel`).
    cell_mask, nuclei_mask : ndarray, shape (H, W), int32
        0 = background, cells 1..N; nucleus k lies inside cell k.
    cell_labels : dict
        ``{cell id: sorted class ids}`` for cells 1..N; a cell without protein is ``(18,)``.
    """

    image: np.ndarray
    cell_mask: np.ndarray
    nuclei_mask: np.ndarray
    cell_labels: dict[int, tuple[int, ...]]

    @property
    def image_labels(self) -> tuple[int, ...]:
        """Union of the cells' labels, sorted (the image-level label of train.csv)."""
        return tuple(sorted({lab for labs in self.cell_labels.values() for lab in labs}))


@dataclass
class SynthSummary:
    """What :func:`generate_dataset` wrote."""

    out_dir: Path
    n_train: int
    n_test: int
    size: int
    bit_depth: int
    seed: int
    n_cells: int
    #: images carrying each class (index = class id), over both splits
    image_label_counts: list[int] = field(default_factory=lambda: [0] * NUM_CLASSES)
    #: cells carrying each class (index = class id), over both splits
    cell_label_counts: list[int] = field(default_factory=lambda: [0] * NUM_CLASSES)
    seconds: float = 0.0


# --------------------------------------------------------------------------- labels
def draw_image_labels(rng: np.random.Generator) -> tuple[int, ...]:
    """Draw the labels of one image: 1-3 classes with HPA-like imbalance, or Negative alone.

    Parameters
    ----------
    rng : numpy.random.Generator

    Returns
    -------
    tuple of int
        Sorted class ids; ``(18,)`` for a Negative image, else 1-3 ids from 0-17.

    Examples
    --------
    >>> labels = draw_image_labels(np.random.default_rng(0))
    >>> 1 <= len(labels) <= 3 and labels == tuple(sorted(set(labels)))
    True
    """
    if rng.random() < NEGATIVE_IMAGE_PROBABILITY:
        return (NEGATIVE,)
    weights = np.asarray(CLASS_FREQUENCIES[:NEGATIVE], dtype=float)
    n_labels = 1 + int(rng.choice(len(LABEL_COUNT_PROBABILITIES), p=LABEL_COUNT_PROBABILITIES))
    picked = rng.choice(NEGATIVE, size=n_labels, replace=False, p=weights / weights.sum())
    return tuple(sorted(int(v) for v in picked))


def _check_labels(image_labels: Sequence[int]) -> tuple[int, ...]:
    try:
        labels = tuple(sorted({int(v) for v in image_labels}))
    except (TypeError, ValueError):
        raise InputError(f"image_labels {image_labels!r}: expected class ids 0-{NUM_CLASSES - 1}") from None
    if not labels or labels[0] < 0 or labels[-1] >= NUM_CLASSES:
        raise InputError(f"image_labels {image_labels!r}: expected 1 or more class ids 0-{NUM_CLASSES - 1}")
    return labels


def _assign_cell_labels(
    rng: np.random.Generator, image_labels: tuple[int, ...], mitotic: np.ndarray, vary_cells: bool | None
) -> list[tuple[int, ...]]:
    """Labels of each cell (index 0..n-1) from the image's labels; see the module docstring."""
    n = len(mitotic)
    if image_labels == (NEGATIVE,):
        return [(NEGATIVE,)] * n
    spindle = _MITOTIC_SPINDLE
    base = [lab for lab in image_labels if lab not in (spindle, NEGATIVE)]
    interphase = np.flatnonzero(~mitotic)
    cell_sets = [set(base) for _ in range(n)]
    if vary_cells is None:
        p_vary = VARY_PROBABILITY_ONE_LABEL if len(image_labels) == 1 else VARY_PROBABILITY_SEVERAL_LABELS
        vary_cells = bool(rng.random() < p_vary)
    if vary_cells and base and len(interphase) >= 2:
        varied = base[int(rng.integers(len(base)))]
        lacks = rng.random(len(interphase)) < rng.uniform(0.25, 0.6)
        lacks[int(rng.integers(len(interphase)))] = True  # at least one cell lacks it ...
        keeps = np.flatnonzero(~lacks)
        if len(keeps) == 0:  # ... and at least one keeps it
            lacks[int(rng.integers(len(interphase)))] = False
        for idx in interphase[lacks]:
            cell_sets[idx].discard(varied)
    if NEGATIVE in image_labels and len(interphase) and not any(not cell_sets[i] for i in interphase):
        cell_sets[int(interphase[rng.integers(len(interphase))])] = set()
    for idx in np.flatnonzero(mitotic):
        cell_sets[idx] = {spindle} if spindle in image_labels else cell_sets[idx]
    return [tuple(sorted(s)) if s else (NEGATIVE,) for s in cell_sets]


# --------------------------------------------------------------------------- small helpers
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise of standard deviation 1; made at a lower resolution
    and upsampled when ``sigma`` is large, so it stays cheap."""
    factor = max(1, int(sigma // 2.5))
    low_shape = (shape[0] // factor + 3, shape[1] // factor + 3)
    low = ndimage.gaussian_filter(rng.standard_normal(low_shape, dtype=np.float32), sigma / factor, mode="wrap")
    field_ = ndimage.zoom(low, factor, order=1)[: shape[0], : shape[1]] if factor > 1 else low[: shape[0], : shape[1]]
    field_ = field_ - field_.mean()
    return (field_ / max(float(field_.std()), 1e-6)).astype(np.float32)


def _splat(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Add ``weights`` at the nearest pixels of points ``(ys, xs)``; points outside are dropped."""
    iy, ix = np.rint(ys).astype(np.intp), np.rint(xs).astype(np.intp)
    ok = (iy >= 0) & (iy < shape[0]) & (ix >= 0) & (ix < shape[1])
    flat = iy[ok] * shape[1] + ix[ok]
    acc = np.bincount(flat, weights=np.broadcast_to(weights, iy.shape)[ok], minlength=shape[0] * shape[1])
    return acc.reshape(shape).astype(np.float32)


def _dots(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian dots of peak ``weights`` and width ``sigma`` px at ``(ys, xs)``."""
    if len(np.atleast_1d(ys)) == 0:
        return np.zeros(shape, np.float32)
    impulses = _splat(shape, np.atleast_1d(ys), np.atleast_1d(xs), np.atleast_1d(weights))
    return ndimage.gaussian_filter(impulses, sigma) * np.float32(2 * np.pi * sigma**2)


def _lines(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Render points sampled every ``_STEP_PX`` along curves as lines of peak about ``weights``
    (saturating where lines cross)."""
    acc = ndimage.gaussian_filter(_splat(shape, ys, xs, weights), sigma)
    return 1.0 - np.exp(-acc * np.float32(_STEP_PX * np.sqrt(2 * np.pi) * sigma))


def _ellipse_radius(angle: np.ndarray, a: np.ndarray, b: np.ndarray, orient: np.ndarray) -> np.ndarray:
    """Distance from an ellipse's centre to its edge in direction ``angle`` (radians)."""
    rel = angle - orient
    return 1.0 / np.sqrt((np.cos(rel) / a) ** 2 + (np.sin(rel) / b) ** 2)


def _distance_to(features: np.ndarray) -> np.ndarray:
    """Distance (px) of every pixel to the nearest True pixel of ``features``.

    An octagonal approximation of the Euclidean distance, ``max(chessboard, taxicab / sqrt 2)``,
    within 8% of it and several times faster than an exact transform; ample for shading.
    """
    if not features.any():
        return np.full(features.shape, np.float32(features.shape[0] + features.shape[1]))
    chess = ndimage.distance_transform_cdt(~features, metric="chessboard")
    taxi = ndimage.distance_transform_cdt(~features, metric="taxicab")
    return np.maximum(chess, taxi * np.float32(1 / np.sqrt(2))).astype(np.float32)


def _largest_component_per_label(labels: np.ndarray) -> np.ndarray:
    """Keep, for each label value, only its largest 4-connected piece."""

    comp = connected(labels, background=0, connectivity=1)
    n_comp = int(comp.max())
    if n_comp == 0:
        return labels
    sizes = np.bincount(comp.ravel(), minlength=n_comp + 1)
    owner = np.zeros(n_comp + 1, np.int64)
    owner[comp.ravel()] = labels.ravel()
    ids = np.arange(1, n_comp + 1)
    order = ids[np.lexsort((-sizes[ids], owner[ids]))]
    first = np.ones(len(order), bool)
    first[1:] = owner[order][1:] != owner[order][:-1]
    keep = np.zeros(n_comp + 1, bool)
    keep[order[first]] = True
    return np.where(keep[comp], labels, 0).astype(labels.dtype)


# --------------------------------------------------------------------------- geometry
@dataclass
class _Cells:
    """Per-cell parameters; arrays indexed by cell id (index 0 is a background dummy)."""

    cy: np.ndarray
    cx: np.ndarray
    r: np.ndarray  # mean radius, px
    elong: np.ndarray  # aspect factor of the outline (>= 1)
    orient: np.ndarray  # orientation of the long axis, radians
    modes: np.ndarray  # (n, 3, 2) amplitude and phase of angular modes 2..4
    mitotic: np.ndarray  # bool
    ny: np.ndarray
    nx: np.ndarray
    na: np.ndarray  # nucleus semi-axes, px
    nb: np.ndarray
    norient: np.ndarray
    mix: np.ndarray  # angle mixing the two outline-noise fields

    def take(self, index: np.ndarray) -> _Cells:
        return _Cells(**{k: v[index] for k, v in self.__dict__.items()})

    def __len__(self) -> int:
        return len(self.cy)


def _place_cells(rng: np.random.Generator, size: int, scale: float, n_mitotic: int) -> _Cells:
    """Centres and shapes of the cells: colonies of touching cells, mitotic cells first and
    inside the image."""
    r_typ = rng.uniform(*_TYPICAL_RADIUS_PX_AT_2048) * scale
    n_target = int(rng.integers(_CELLS_PLACED[0], _CELLS_PLACED[1] + 1))
    centres: list[tuple[float, float]] = []
    radii: list[float] = []
    for i in range(n_target):
        mitotic = i < n_mitotic
        if mitotic:
            r = _MITOTIC_RADIUS_FACTOR * r_typ
        else:
            r = float(
                np.clip(
                    r_typ * rng.lognormal(0.0, 0.22),
                    _CELL_RADIUS_PX_AT_2048[0] * scale,
                    _CELL_RADIUS_PX_AT_2048[1] * scale,
                )
            )
        for _ in range(40):
            if mitotic:
                y, x = rng.uniform(1.2 * r, size - 1.2 * r, 2)
            elif centres and rng.random() < 0.7:  # next to a cell already placed: colonies
                j = int(rng.integers(len(centres)))
                angle = rng.uniform(0, 2 * np.pi)
                dist = (r + radii[j]) * rng.uniform(0.72, 0.92)
                y, x = centres[j][0] + dist * np.sin(angle), centres[j][1] + dist * np.cos(angle)
            else:
                y, x = rng.uniform(-0.1 * size, 1.1 * size, 2)
            if not (-0.3 * r <= y <= size + 0.3 * r and -0.3 * r <= x <= size + 0.3 * r):
                continue
            if centres:
                c = np.asarray(centres)
                d = np.hypot(c[:, 0] - y, c[:, 1] - x)
                if np.any(d < 0.7 * (r + np.asarray(radii))):
                    continue
            centres.append((float(y), float(x)))
            radii.append(r)
            break
    n = len(centres)
    c = np.asarray(centres, dtype=float).reshape(n, 2)
    r = np.asarray(radii, dtype=float)
    mitotic = np.arange(n) < n_mitotic
    elong = np.where(mitotic, 1.0, rng.uniform(1.0, 1.6, n))
    orient = rng.uniform(0, np.pi, n)
    modes = np.stack([rng.uniform(0, 0.06, (n, 3)), rng.uniform(0, 2 * np.pi, (n, 3))], axis=-1)
    modes[mitotic, :, 0] = 0.0
    # nucleus: an ellipse near the centre, its long axis roughly along the cell's
    offset = rng.uniform(0, 0.12, n) * r
    offset_angle = rng.uniform(0, 2 * np.pi, n)
    rn = r * rng.uniform(*_NUCLEUS_TO_CELL_DIAMETER, n)
    n_elong = rng.uniform(1.0, 1.35, n)
    na, nb = rn * n_elong, rn / n_elong
    norient = orient + rng.normal(0, 0.3, n)
    # mitotic cells: a condensed chromosome plate for a nucleus
    na = np.where(mitotic, 0.42 * r, na)
    nb = np.where(mitotic, 0.11 * r, nb)
    offset[mitotic] = 0.0
    cells = _Cells(
        cy=c[:, 0],
        cx=c[:, 1],
        r=r,
        elong=elong,
        orient=orient,
        modes=modes,
        mitotic=mitotic,
        ny=c[:, 0] + offset * np.sin(offset_angle),
        nx=c[:, 1] + offset * np.cos(offset_angle),
        na=na,
        nb=nb,
        norient=norient,
        mix=rng.uniform(0, 2 * np.pi, n),
    )
    return cells


def _bbox(cy: float, cx: float, extent: float, size: int) -> tuple[slice, slice] | None:
    y0, y1 = max(0, int(cy - extent)), min(size, int(cy + extent) + 2)
    x0, x1 = max(0, int(cx - extent)), min(size, int(cx + extent) + 2)
    if y0 >= y1 or x0 >= x1:
        return None
    return slice(y0, y1), slice(x0, x1)


def _nucleus_nu(
    cells: _Cells, i: int, box: tuple[slice, slice], noise_a: np.ndarray, noise_b: np.ndarray
) -> np.ndarray:
    """Normalised elliptical radius of the pixels of ``box`` about nucleus ``i`` (< 1 inside),
    with a little smooth noise for an irregular outline."""
    yy = np.arange(box[0].start, box[0].stop, dtype=np.float32)[:, None] - np.float32(cells.ny[i])
    xx = np.arange(box[1].start, box[1].stop, dtype=np.float32)[None, :] - np.float32(cells.nx[i])
    co, so = np.float32(np.cos(cells.norient[i])), np.float32(np.sin(cells.norient[i]))
    u, v = xx * co + yy * so, -xx * so + yy * co
    nu = np.hypot(u / np.float32(cells.na[i]), v / np.float32(cells.nb[i]))
    return nu + np.float32(0.04) * (
        np.float32(np.sin(cells.mix[i])) * noise_a[box] - np.float32(np.cos(cells.mix[i])) * noise_b[box]
    )


def _tessellate(rng: np.random.Generator, size: int, cells: _Cells) -> tuple[np.ndarray, np.ndarray]:
    """Cell and nucleus label images (ids = index into ``cells`` + 1).

    Each pixel goes to the cell of smallest normalised distance ``rho`` (distance in the
    cell's stretched frame over its angular radius, plus smooth per-cell noise), if below 1:
    neighbours whose outlines overlap share a boundary, others leave background between them.
    """
    r_typ = float(np.median(cells.r))
    noise_a = _smooth_noise(rng, (size, size), 0.22 * r_typ)
    noise_b = _smooth_noise(rng, (size, size), 0.22 * r_typ)
    best = np.ones((size, size), np.float32)
    owner = np.zeros((size, size), np.int32)
    for i in range(len(cells)):
        amp = 0.02 if cells.mitotic[i] else 0.09
        extent = cells.r[i] * cells.elong[i] * (1 + cells.modes[i, :, 0].sum()) * (1 + 2 * amp) + 2
        box = _bbox(cells.cy[i], cells.cx[i], extent, size)
        if box is None:
            continue
        yy = np.arange(box[0].start, box[0].stop, dtype=np.float32)[:, None] - np.float32(cells.cy[i])
        xx = np.arange(box[1].start, box[1].stop, dtype=np.float32)[None, :] - np.float32(cells.cx[i])
        co, so = np.float32(np.cos(cells.orient[i])), np.float32(np.sin(cells.orient[i]))
        u, v = xx * co + yy * so, -xx * so + yy * co
        theta = np.arctan2(v, u)
        radius = np.float32(cells.r[i]) * (
            1
            + sum(np.float32(a) * np.cos(m * theta + np.float32(p)) for m, (a, p) in enumerate(cells.modes[i], start=2))
        )
        rho = np.hypot(u / np.float32(cells.elong[i]), v * np.float32(cells.elong[i])) / radius
        rho += np.float32(amp) * (
            np.float32(np.cos(cells.mix[i])) * noise_a[box] + np.float32(np.sin(cells.mix[i])) * noise_b[box]
        )
        rho = np.minimum(
            rho, np.float32(_NUCLEUS_CLAIM) * _nucleus_nu(cells, i, box, noise_a, noise_b)
        )  # a cell keeps its nucleus
        better = rho < best[box]
        best[box] = np.where(better, rho, best[box])
        owner[box] = np.where(better, i + 1, owner[box])
    owner = _largest_component_per_label(owner)

    nuclei = np.zeros_like(owner)
    for i in range(len(cells)):
        extent = max(cells.na[i], cells.nb[i]) * 1.15 + 2
        box = _bbox(cells.ny[i], cells.nx[i], extent, size)
        if box is None:
            continue
        inside = (_nucleus_nu(cells, i, box, noise_a, noise_b) < 1) & (owner[box] == i + 1)
        nuclei[box] = np.where(inside, i + 1, nuclei[box])
    nuclei = _largest_component_per_label(nuclei)
    return owner, nuclei


def _build_geometry(rng: np.random.Generator, size: int, n_mitotic: int) -> tuple[np.ndarray, np.ndarray, _Cells]:
    """Place, tessellate, drop cells with too little left in the image, number them 1..N."""
    scale = size / REFERENCE_SIZE_PX
    cells = _place_cells(rng, size, scale, n_mitotic)
    owner, nuclei = _tessellate(rng, size, cells)
    n = len(cells)
    cell_area = np.bincount(owner.ravel(), minlength=n + 1)[1:]
    nuc_area = np.bincount(nuclei.ravel(), minlength=n + 1)[1:]
    keep = (nuc_area >= _MIN_VISIBLE_NUCLEUS_FRACTION * np.pi * cells.na * cells.nb) & (
        cell_area >= _MIN_CELL_AREA_FRACTION * np.pi * cells.r**2
    )
    new_id = np.zeros(n + 1, np.int32)
    new_id[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    kept = cells.take(np.concatenate(([0], np.flatnonzero(keep))))  # row 0: a dummy for background
    kept.mitotic[0] = False
    return new_id[owner], new_id[nuclei], kept


# --------------------------------------------------------------------------- rendering context
class _Scene:
    """Label images, per-cell parameters and derived per-pixel fields, computed on demand."""

    def __init__(self, rng: np.random.Generator, cid: np.ndarray, nuc: np.ndarray, cells: _Cells):
        self.rng = rng
        self.cid = cid
        self.nuc = nuc
        self.cells = cells
        self.size = cid.shape[0]
        self.shape = cid.shape
        self.scale = self.size / REFERENCE_SIZE_PX
        self.n = len(cells) - 1
        self.sigma = self.px(_FIBRE_SIGMA_PX_AT_2048, _MIN_FIBRE_SIGMA_PX)
        self.rn = np.sqrt(cells.na * cells.nb)
        self._draw_nucleoli()

    def px(self, at_2048: float, minimum: float = 0.0) -> float:
        """A length given at 2048 px, in this image's pixels, at least ``minimum``."""
        return max(minimum, at_2048 * self.scale)

    def noise(self, sigma: float) -> np.ndarray:
        return _smooth_noise(self.rng, self.shape, sigma)

    # ---- masks and distances
    @cached_property
    def in_cell(self) -> np.ndarray:
        return self.cid > 0

    @cached_property
    def in_nuc(self) -> np.ndarray:
        return self.nuc > 0

    @cached_property
    def cyto(self) -> np.ndarray:
        return self.in_cell & ~self.in_nuc

    @cached_property
    def d_nuc_edge(self) -> np.ndarray:
        """Distance (px) to the nearest nucleus edge, inside and outside nuclei (0.5 on the
        edge pixels on either side)."""

        edge = find_boundaries(self.nuc, mode="inner") & self.in_nuc
        d = _distance_to(edge)
        return np.where(self.in_nuc, d + np.float32(0.5), np.maximum(d - np.float32(0.5), np.float32(0.5)))

    @cached_property
    def d_out(self) -> np.ndarray:
        """Distance (px) from the nearest nucleus; 0 inside nuclei."""
        return np.where(self.in_nuc, np.float32(0), self.d_nuc_edge)

    @cached_property
    def d_edge(self) -> np.ndarray:
        """Distance (px) to the outline of the pixel's own cell (0.5 on the outline); the
        image border is not an outline."""

        outline = find_boundaries(self.cid, mode="inner") & self.in_cell
        return _distance_to(outline) + np.float32(0.5)

    @cached_property
    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column coordinates of every pixel, float32."""
        yy, xx = np.indices(self.shape, dtype=np.float32)
        return yy, xx

    @cached_property
    def thickness(self) -> np.ndarray:
        """Relative cytoplasm thickness: thin (dim) at the cell's outline, 1 deep inside."""
        return (1 - 0.55 * np.exp(-self.d_edge / (0.15 * self.r_pix))) * self.in_cell

    @cached_property
    def nuc_theta(self) -> np.ndarray:
        """Angle (radians) of each pixel around its own cell's nucleus centre."""
        yy, xx = self.grid
        return np.arctan2(
            yy - self.cells.ny[self.cid].astype(np.float32), xx - self.cells.nx[self.cid].astype(np.float32)
        )

    @cached_property
    def r_pix(self) -> np.ndarray:
        """Each pixel's own cell radius (px)."""
        return np.maximum(self.cells.r[self.cid], 1.0).astype(np.float32)

    def lut(self, values: np.ndarray) -> np.ndarray:
        """Per-cell values (index = cell id) spread over the image."""
        return np.asarray(values, dtype=np.float32)[self.cid]

    def points_in_nucleus(self, owners: np.ndarray, max_rel_radius: float) -> tuple[np.ndarray, np.ndarray]:
        """Uniform random points inside the nuclei of cells ``owners`` (within a fraction of
        the ellipse)."""
        c = self.cells
        rho = max_rel_radius * np.sqrt(self.rng.random(len(owners)))
        phi = self.rng.uniform(0, 2 * np.pi, len(owners))
        u, v = rho * c.na[owners] * np.cos(phi), rho * c.nb[owners] * np.sin(phi)
        co, so = np.cos(c.norient[owners]), np.sin(c.norient[owners])
        return c.ny[owners] + u * so + v * co, c.nx[owners] + u * co - v * so

    def point_next_to_nucleus(
        self, owners: np.ndarray, angle: np.ndarray, gap: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points ``gap`` px outside the nucleus edge of cells ``owners`` in direction ``angle``."""
        c = self.cells
        dist = _ellipse_radius(angle, c.na[owners], c.nb[owners], c.norient[owners]) + gap
        return c.ny[owners] + dist * np.sin(angle), c.nx[owners] + dist * np.cos(angle)

    def walks(
        self,
        owners: np.ndarray,
        ys: np.ndarray,
        xs: np.ndarray,
        headings: np.ndarray,
        length: np.ndarray,
        persistence: np.ndarray,
        weights: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points along random walks (persistent random curves) that stop where they leave
        their own cell.

        ``length`` and ``persistence`` are per walk, in px: the direction's variance grows
        by ``step / persistence`` per step. Returns point ``ys, xs, weights`` for :func:`_lines`.
        """
        if len(owners) == 0:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        n_steps = int(np.ceil(float(np.max(length)) / _STEP_PX))
        turn = self.rng.standard_normal((len(owners), n_steps)) * np.sqrt(_STEP_PX / persistence)[:, None]
        heading = headings[:, None] + np.cumsum(turn, axis=1)
        py = ys[:, None] + np.cumsum(_STEP_PX * np.sin(heading), axis=1)
        px_ = xs[:, None] + np.cumsum(_STEP_PX * np.cos(heading), axis=1)
        iy = np.clip(np.rint(py).astype(np.intp), 0, self.size - 1)
        ix = np.clip(np.rint(px_).astype(np.intp), 0, self.size - 1)
        inside = (py > -0.5) & (py < self.size - 0.5) & (px_ > -0.5) & (px_ < self.size - 0.5)
        ok = inside & (self.cid[iy, ix] == owners[:, None]) & (np.arange(n_steps)[None, :] * _STEP_PX < length[:, None])
        ok = np.logical_and.accumulate(ok, axis=1)
        w = np.broadcast_to(weights[:, None], ok.shape)
        return py[ok], px_[ok], w[ok]

    def random_cell_points(self, owners: np.ndarray, spread: float) -> tuple[np.ndarray, np.ndarray]:
        """Random points within ``spread`` cell radii of the centres of ``owners`` (they may
        fall outside the cell; walks starting there draw nothing)."""
        c = self.cells
        rho = spread * np.sqrt(self.rng.random(len(owners))) * c.r[owners] * c.elong[owners]
        phi = self.rng.uniform(0, 2 * np.pi, len(owners))
        return c.cy[owners] + rho * np.sin(phi), c.cx[owners] + rho * np.cos(phi)

    # ---- structures shared by several channels
    def _draw_nucleoli(self) -> None:
        """1-4 nucleoli per interphase nucleus: a soft mask (H, W) float32 in [0, 1]."""
        c = self.cells
        k_max = 4
        count = np.where(c.mitotic, 0, self.rng.integers(1, k_max + 1, len(c)))
        count[0] = 0
        owners = np.repeat(np.arange(len(c)), k_max)
        ly, lx = self.points_in_nucleus(owners, 0.5)
        lr = self.rn[owners] * self.rng.uniform(0.15, 0.27, len(owners))
        lr = np.where(np.tile(np.arange(k_max), len(c)) < np.repeat(count, k_max), lr, 0.0)
        self.nucleoli_y, self.nucleoli_x = ly.reshape(len(c), k_max), lx.reshape(len(c), k_max)
        self.nucleoli_radius = lr.reshape(len(c), k_max)
        field_ = np.zeros(self.shape, np.float32)
        ys, xs = np.nonzero(self.in_nuc)
        o = self.nuc[ys, xs]
        if len(o):
            dy = ys[:, None] - self.nucleoli_y[o]
            dx = xs[:, None] - self.nucleoli_x[o]
            r = np.maximum(self.nucleoli_radius[o], 1e-3)
            wobble = 1 + 0.15 * self.noise(self.px(10, 1.0))[ys, xs][:, None]
            val = np.exp(-((np.hypot(dy, dx) * wobble / r) ** 4)) * (self.nucleoli_radius[o] > 0)
            field_[ys, xs] = val.max(axis=1)
        self.nucleoli = field_

    @cached_property
    def er_mesh(self) -> np.ndarray:
        """A reticular mesh over the cytoplasm, weighted towards the nucleus, in [0, 1]."""
        ridges = np.exp(-((self.noise(self.px(11, 1.1)) / 0.35) ** 2))
        perinuclear = np.exp(-self.d_out / (0.35 * self.r_pix))
        fine = 0.8 + 0.2 * self.noise(self.px(4, 0.7))
        return (self.cyto * (0.25 + 0.75 * perinuclear) * ridges * fine + 0.15 * self.nuclear_rim).astype(np.float32)

    @cached_property
    def nuclear_rim(self) -> np.ndarray:
        """A thin ring on every nucleus edge, peak 1."""
        w = self.px(5, 0.75)
        d = self.d_nuc_edge - np.float32(0.5)
        return np.exp(-0.5 * (d / w) ** 2) * self.in_cell

    @cached_property
    def microtubules(self) -> np.ndarray:
        """Fibres radiating from the nucleus edge of interphase cells, in [0, 1]."""
        c = self.cells
        cells = np.flatnonzero(~c.mitotic[1:]) + 1
        per_cell = 60
        owners = np.repeat(cells, per_cell)
        angle = self.rng.uniform(0, 2 * np.pi, len(owners))
        ys, xs = self.point_next_to_nucleus(owners, angle, self.rng.uniform(-2.0, 0.5, len(owners)) * self.sigma)
        ys, xs, w = self.walks(
            owners,
            ys,
            xs,
            angle + self.rng.normal(0, 0.25, len(owners)),
            1.6 * c.r[owners] * c.elong[owners],
            1.8 * c.r[owners],
            self.rng.uniform(0.4, 1.0, len(owners)),
        )
        return _lines(self.shape, ys, xs, w, self.sigma)

    @cached_property
    def spindle(self) -> np.ndarray:
        """Bipolar spindles of the mitotic cells (poles, kinetochore and astral fibres), in [0, 1]."""
        c = self.cells
        cells = np.flatnonzero(c.mitotic[1:]) + 1
        if len(cells) == 0:
            return np.zeros(self.shape, np.float32)
        per_pole = 36
        owners = np.repeat(np.repeat(cells, 2), per_pole)
        side = np.tile(np.repeat([-1.0, 1.0], per_pole), len(cells))
        axis = c.norient[owners] + np.pi / 2  # spindle axis, across the chromosome plate
        half = 0.62 * c.r[owners]
        pole_y, pole_x = c.ny[owners] + side * half * np.sin(axis), c.nx[owners] + side * half * np.cos(axis)
        s = self.rng.uniform(-1, 1, len(owners))
        plate_dir_y, plate_dir_x = np.sin(c.norient[owners]), np.cos(c.norient[owners])
        end_y = c.ny[owners] + 0.9 * s * c.na[owners] * plate_dir_y
        end_x = c.nx[owners] + 0.9 * s * c.na[owners] * plate_dir_x
        ctrl_y = (pole_y + end_y) / 2 + 0.3 * s * c.na[owners] * plate_dir_y
        ctrl_x = (pole_x + end_x) / 2 + 0.3 * s * c.na[owners] * plate_dir_x
        n_pts = int(np.ceil(float(np.max(half)) * 1.3 / _STEP_PX))
        t = np.linspace(0, 1, n_pts)[None, :]
        by = (1 - t) ** 2 * pole_y[:, None] + 2 * t * (1 - t) * ctrl_y[:, None] + t**2 * end_y[:, None]
        bx = (1 - t) ** 2 * pole_x[:, None] + 2 * t * (1 - t) * ctrl_x[:, None] + t**2 * end_x[:, None]
        w = np.broadcast_to(self.rng.uniform(0.5, 1.0, len(owners))[:, None], by.shape)
        fibres = _lines(self.shape, by.ravel(), bx.ravel(), w.ravel(), self.sigma)
        # astral fibres: short rays from each pole away from the plate
        n_astral = 8
        a_owner = np.repeat(np.repeat(cells, 2), n_astral)
        a_side = np.tile(np.repeat([-1.0, 1.0], n_astral), len(cells))
        a_axis = c.norient[a_owner] + np.pi / 2
        a_y = c.ny[a_owner] + a_side * 0.62 * c.r[a_owner] * np.sin(a_axis)
        a_x = c.nx[a_owner] + a_side * 0.62 * c.r[a_owner] * np.cos(a_axis)
        heading = a_axis + np.where(a_side > 0, 0.0, np.pi) + self.rng.uniform(-1.2, 1.2, len(a_owner))
        ay, ax, aw = self.walks(
            a_owner, a_y, a_x, heading, 0.3 * c.r[a_owner], 5.0 * c.r[a_owner], np.full(len(a_owner), 0.5)
        )
        astral = _lines(self.shape, ay, ax, aw, self.sigma)
        pole_owner = np.repeat(cells, 2)
        p_side = np.tile([-1.0, 1.0], len(cells))
        p_axis = c.norient[pole_owner] + np.pi / 2
        poles = _dots(
            self.shape,
            c.ny[pole_owner] + p_side * 0.62 * c.r[pole_owner] * np.sin(p_axis),
            c.nx[pole_owner] + p_side * 0.62 * c.r[pole_owner] * np.cos(p_axis),
            np.ones(len(pole_owner)),
            1.6 * self.sigma,
        )
        mitotic_px = c.mitotic[self.cid] & self.in_cell
        return (np.clip(0.85 * fibres + 0.5 * astral + poles, 0, 1) * mitotic_px).astype(np.float32)


# --------------------------------------------------------------------------- green patterns
# Each takes the scene and a bool per cell id (True = the cell carries the class) and
# returns an (H, W) float32 pattern of peak about 1, zero outside those cells.


def _g_nucleoplasm(s: _Scene, has: np.ndarray) -> np.ndarray:
    tex = 0.85 + 0.15 * s.noise(s.px(6, 0.8))
    return has[s.cid] * s.in_nuc * tex * (1 - 0.6 * s.nucleoli)


def _g_nuclear_membrane(s: _Scene, has: np.ndarray) -> np.ndarray:
    return has[s.cid] * (s.nuclear_rim * (0.8 + 0.2 * s.noise(s.px(8, 1.0))) + 0.05 * s.in_nuc)


def _g_nucleoli(s: _Scene, has: np.ndarray) -> np.ndarray:
    return has[s.cid] * s.in_nuc * (s.nucleoli + 0.06)


def _g_fibrillar_center(s: _Scene, has: np.ndarray) -> np.ndarray:
    # 3-8 tiny dots scattered over each nucleolus of the cells carrying the class
    carried = (s.nucleoli_radius > 0) & has[:, None]
    per_nucleolus = s.rng.integers(3, 9, carried.shape) * carried
    radius = np.repeat(s.nucleoli_radius.ravel(), per_nucleolus.ravel())
    rho = 0.85 * radius * np.sqrt(s.rng.random(len(radius)))
    phi = s.rng.uniform(0, 2 * np.pi, len(radius))
    ys = np.repeat(s.nucleoli_y.ravel(), per_nucleolus.ravel()) + rho * np.sin(phi)
    xs = np.repeat(s.nucleoli_x.ravel(), per_nucleolus.ravel()) + rho * np.cos(phi)
    dots = _dots(s.shape, ys, xs, s.rng.uniform(0.7, 1.0, len(ys)), max(0.5, 0.7 * s.sigma))
    return has[s.cid] * s.in_nuc * np.clip(1.6 * dots + 0.2 * s.nucleoli, 0, 1)


def _g_speckles(s: _Scene, has: np.ndarray) -> np.ndarray:
    speckle = np.clip((s.noise(s.px(5, 0.75)) - 0.6) / 1.0, 0, 1)
    return has[s.cid] * s.in_nuc * (speckle * (1 - s.nucleoli) + 0.1)


def _g_nuclear_bodies(s: _Scene, has: np.ndarray) -> np.ndarray:
    owners = np.repeat(np.arange(len(has)), s.rng.integers(1, 7, len(has)) * has)
    ys, xs = s.points_in_nucleus(owners, 0.75)
    dots = _dots(s.shape, ys, xs, s.rng.uniform(0.8, 1.0, len(owners)), 2.0 * s.sigma)
    return has[s.cid] * s.in_nuc * (np.clip(1.2 * dots, 0, 1) + 0.06)


def _g_er(s: _Scene, has: np.ndarray) -> np.ndarray:
    return has[s.cid] * np.clip(s.er_mesh * 1.1, 0, 1)


def _g_golgi(s: _Scene, has: np.ndarray) -> np.ndarray:
    side = s.rng.uniform(-np.pi, np.pi, len(has))
    diff = np.angle(np.exp(1j * (s.nuc_theta - side[s.cid].astype(np.float32))))
    towards = np.exp(-0.5 * (diff / 0.45) ** 2)
    near = np.exp(-np.maximum(s.d_out - 1, 0) / (0.16 * s.rn[s.cid].astype(np.float32) + 1))
    clumps = np.clip(0.5 + 0.7 * s.noise(s.px(7, 0.8)), 0, 1.3)
    return has[s.cid] * s.cyto * np.clip(towards * near * clumps * 2.2, 0, 1)


def _g_intermediate_filaments(s: _Scene, has: np.ndarray) -> np.ndarray:
    c = s.cells
    owners = np.repeat(np.flatnonzero(has), 14)
    ys, xs = s.random_cell_points(owners, 0.6)
    heading = s.rng.uniform(0, 2 * np.pi, len(owners))
    length = 2.2 * c.r[owners] * c.elong[owners]
    persistence = 1.2 * c.r[owners]
    w = s.rng.uniform(0.5, 1.0, len(owners))
    ya, xa, wa = s.walks(owners, ys, xs, heading, length, persistence, w)
    yb, xb, wb = s.walks(owners, ys, xs, heading + np.pi, length, persistence, w)
    fibres = _lines(
        s.shape, np.concatenate([ya, yb]), np.concatenate([xa, xb]), np.concatenate([wa, wb]), 1.2 * s.sigma
    )
    return has[s.cid] * fibres * (1 - 0.5 * s.in_nuc)


def _g_actin(s: _Scene, has: np.ndarray) -> np.ndarray:
    c = s.cells
    angle = c.orient + s.rng.normal(0, 0.25, len(c))
    period = s.px(18, 3.0) * s.rng.uniform(0.8, 1.25, len(c))
    yy, xx = s.grid
    across = -(xx - c.cx[s.cid].astype(np.float32)) * s.lut(np.sin(angle)) + (
        yy - c.cy[s.cid].astype(np.float32)
    ) * s.lut(np.cos(angle))
    phase = 2 * np.pi * across / s.lut(period) + s.lut(s.rng.uniform(0, 2 * np.pi, len(c)))
    stripes = np.maximum(np.cos(phase), 0) ** 6
    broken = np.clip(0.5 + 0.6 * s.noise(s.px(20, 2.0)), 0, 1)
    rim = np.exp(-0.5 * (s.d_edge / (1.5 * s.sigma)) ** 2)
    return has[s.cid] * s.in_cell * np.clip(stripes * broken * (1 - 0.6 * s.in_nuc) + 0.8 * rim, 0, 1)


def _g_microtubules(s: _Scene, has: np.ndarray) -> np.ndarray:
    return has[s.cid] * (s.microtubules + s.spindle)


def _g_mitotic_spindle(s: _Scene, has: np.ndarray) -> np.ndarray:
    return has[s.cid] * (s.spindle + 0.08 * s.in_cell)


def _g_centrosome(s: _Scene, has: np.ndarray) -> np.ndarray:
    owners = np.flatnonzero(has)
    angle = s.rng.uniform(0, 2 * np.pi, len(owners))
    ys, xs = s.point_next_to_nucleus(owners, angle, np.full(len(owners), 2.0 * s.sigma))
    pair = s.rng.random(len(owners)) < 0.5
    tilt = s.rng.uniform(0, 2 * np.pi, int(pair.sum()))
    ys2, xs2 = ys[pair] + 2.5 * s.sigma * np.sin(tilt), xs[pair] + 2.5 * s.sigma * np.cos(tilt)
    dots = _dots(
        s.shape, np.concatenate([ys, ys2]), np.concatenate([xs, xs2]), np.ones(len(ys) + len(ys2)), 1.8 * s.sigma
    )
    return has[s.cid] * s.in_cell * np.clip(dots, 0, 1)


def _g_plasma_membrane(s: _Scene, has: np.ndarray) -> np.ndarray:
    ring = np.exp(-0.5 * ((s.d_edge - 0.5) / (1.3 * s.sigma)) ** 2)
    return has[s.cid] * s.in_cell * (ring * (0.85 + 0.15 * s.noise(s.px(10, 1.0))) + 0.04)


def _g_mitochondria(s: _Scene, has: np.ndarray) -> np.ndarray:
    c = s.cells
    density = 1.0 / (np.pi * (0.11 * s.r_pix) ** 2)  # worms per px
    weight = s.cyto * has[s.cid] * (0.35 + 0.65 * np.exp(-s.d_out / (0.45 * s.r_pix)))
    ys, xs = np.nonzero(s.rng.random(s.shape) < density * weight)
    owners = s.cid[ys, xs]
    ys, xs, w = s.walks(
        owners,
        ys.astype(float),
        xs.astype(float),
        s.rng.uniform(0, 2 * np.pi, len(owners)),
        0.35 * c.r[owners],
        0.12 * c.r[owners],
        s.rng.uniform(0.5, 1.0, len(owners)),
    )
    return has[s.cid] * s.cyto * _lines(s.shape, ys, xs, w, s.sigma)


def _g_aggresome(s: _Scene, has: np.ndarray) -> np.ndarray:
    owners = np.flatnonzero(has)
    blob_r = 0.4 * s.rn[owners]
    ys, xs = s.point_next_to_nucleus(owners, s.rng.uniform(0, 2 * np.pi, len(owners)), 0.6 * blob_r)
    dots = np.zeros(s.shape, np.float32)
    yy, xx = s.grid
    for y, x, r in zip(ys, xs, blob_r):  # few cells; a window each
        box = _bbox(y, x, 2.5 * r + 2, s.size)
        if box is not None:
            d2 = (yy[box] - y) ** 2 + (xx[box] - x) ** 2
            dots[box] = np.maximum(dots[box], np.exp(-0.5 * (np.sqrt(d2) / r) ** 4))
    return has[s.cid] * s.in_cell * np.clip(dots * (1 - 0.5 * s.in_nuc) + 0.08 * s.cyto, 0, 1)


def _g_cytosol(s: _Scene, has: np.ndarray) -> np.ndarray:
    smooth = 0.8 + 0.2 * s.noise(s.px(60, 3.0))
    return has[s.cid] * (s.cyto * smooth * s.thickness + 0.12 * s.in_nuc)


def _g_vesicles(s: _Scene, has: np.ndarray) -> np.ndarray:
    density = 1.0 / (np.pi * (0.07 * s.r_pix) ** 2)
    ys, xs = np.nonzero(s.cyto & has[s.cid] & (s.rng.random(s.shape) < density))
    dots = _dots(s.shape, ys, xs, s.rng.uniform(0.4, 1.0, len(ys)), 1.1 * s.sigma)
    return has[s.cid] * s.cyto * np.clip(dots, 0, 1)


_PATTERNS: dict[int, Callable[[_Scene, np.ndarray], np.ndarray]] = {
    0: _g_nucleoplasm,
    1: _g_nuclear_membrane,
    2: _g_nucleoli,
    3: _g_fibrillar_center,
    4: _g_speckles,
    5: _g_nuclear_bodies,
    6: _g_er,
    7: _g_golgi,
    8: _g_intermediate_filaments,
    9: _g_actin,
    10: _g_microtubules,
    11: _g_mitotic_spindle,
    12: _g_centrosome,
    13: _g_plasma_membrane,
    14: _g_mitochondria,
    15: _g_aggresome,
    16: _g_cytosol,
    17: _g_vesicles,
}


# --------------------------------------------------------------------------- channels
def _finish(rng: np.random.Generator, plane: np.ndarray, blur: float) -> np.ndarray:
    """Background, slight blur and camera noise; float in [0, 1] -> uint8."""
    plane = ndimage.gaussian_filter(plane.astype(np.float32), blur)
    plane = (
        plane
        + np.float32(rng.uniform(*_BACKGROUND_LEVEL))
        + rng.standard_normal(plane.shape, dtype=np.float32) * np.float32(_NOISE_LEVEL)
    )
    return np.rint(np.clip(plane, 0, 1) * 255).astype(np.uint8)


def _render(scene: _Scene, cell_labels: list[tuple[int, ...]]) -> np.ndarray:
    """The four channels, ``(H, W, 4)`` uint8."""
    s, rng, c = scene, scene.rng, scene.cells
    n = s.n + 1
    mitotic_px = c.mitotic[s.cid] & s.in_cell

    dim = rng.random(n) < 0.2  # some nuclei much dimmer
    gain_b = np.where(dim, rng.uniform(0.25, 0.45, n), rng.uniform(0.6, 1.0, n)) * np.where(c.mitotic, 1.25, 1.0)
    chromatin = 0.78 + 0.22 * s.noise(s.px(6, 0.8))
    blue = s.lut(gain_b) * s.in_nuc * chromatin * (1 - 0.45 * s.nucleoli)

    gain_r = rng.uniform(0.45, 1.0, n)
    red = s.lut(gain_r) * (
        s.cyto * (0.18 + 0.7 * s.microtubules) * s.thickness + 0.06 * s.in_nuc + mitotic_px * (0.15 + 0.85 * s.spindle)
    )

    gain_y = rng.uniform(0.45, 1.0, n)
    yellow = s.lut(gain_y) * ((0.1 * s.cyto + 0.75 * s.er_mesh) * s.thickness + 0.04 * s.in_nuc)

    green = np.zeros(s.shape, np.float32)
    present = sorted({lab for labs in cell_labels for lab in labs if lab != NEGATIVE})
    for lab in present:
        has = np.zeros(n, bool)
        has[1:] = [lab in labs for labs in cell_labels]
        amp = rng.uniform(0.55, 1.0, n) * has
        green += _PATTERNS[lab](s, has).astype(np.float32) * s.lut(amp) * np.float32(_CLASS_GAIN[lab])
    green *= np.float32(rng.uniform(0.8, 1.15))

    blur = s.px(_FINAL_BLUR_PX_AT_2048, 0.5)
    planes = {Channel.RED: red, Channel.GREEN: green, Channel.BLUE: blue, Channel.YELLOW: yellow}
    return np.stack([_finish(rng, planes[ch], blur) for ch in Channel], axis=-1)


def synth_image(
    rng: np.random.Generator,
    size: int,
    *,
    image_labels: Sequence[int] | None = None,
    vary_cells: bool | None = None,
) -> SynthImage:
    """Draw one synthetic HPA field of view with its true masks and cell labels (no disk I/O).

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness: the same generator state gives the same image.
    size : int
        Height and width in px, at least :data:`MIN_SIZE_PX`; cell sizes scale with ``size / 2048``.
    image_labels : sequence of int, optional
        Force the image's drawn labels (class ids 0-18) instead of :func:`draw_image_labels`.
        ``(18,)`` makes every cell Negative; 18 with other labels makes at least one cell
        Negative; 11 goes to the one or two mitotic cells only.
    vary_cells : bool, optional
        True: one label is missing from some cells; False: every interphase cell carries all
        labels (but 11); None (default): decided at random (about 40% of images).

    Returns
    -------
    SynthImage
        ``image`` (size, size, 4) uint8 RGBY; ``cell_mask`` and ``nuclei_mask`` (size, size)
        int32 with cells 1..N; ``cell_labels`` {cell: labels}. The image label is
        ``SynthImage.image_labels``, the union of the cells' labels, which may lack a forced
        label whose only cells fell outside the image (rare).

    Examples
    --------
    >>> img = synth_image(np.random.default_rng(1), 128, image_labels=[0])
    >>> img.image.shape, img.image.dtype, int(img.cell_mask.max()) == len(img.cell_labels)
    ((128, 128, 4), dtype('uint8'), True)
    >>> bool(np.all(img.cell_mask[img.nuclei_mask > 0] == img.nuclei_mask[img.nuclei_mask > 0]))
    True
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE_PX:
        raise InputError(f"size {size!r}: expected an integer of at least {MIN_SIZE_PX} px")
    size = int(size)
    labels = draw_image_labels(rng) if image_labels is None else _check_labels(image_labels)
    n_mitotic = int(rng.integers(1, 3)) if _MITOTIC_SPINDLE in labels else 0
    for _ in range(_LAYOUT_TRIES):  # a layout without any cell is redrawn (never seen in practice)
        cid, nuc, cells = _build_geometry(rng, size, n_mitotic)
        if len(cells) > 1:
            break
    else:
        raise RuntimeError(f"no cell survived {_LAYOUT_TRIES} layouts of a {size} px image")
    cell_labels = _assign_cell_labels(rng, labels, cells.mitotic[1:], vary_cells)
    scene = _Scene(rng, cid, nuc, cells)
    image = _render(scene, cell_labels)
    return SynthImage(
        image=image,
        cell_mask=cid.astype(np.int32),
        nuclei_mask=nuc.astype(np.int32),
        cell_labels={k + 1: labs for k, labs in enumerate(cell_labels)},
    )


# --------------------------------------------------------------------------- dataset
def image_id(split: str, index: int) -> str:
    """ID of image ``index`` of ``split`` (``"train"`` or ``"test"``).

    >>> image_id("test", 7)
    'synth_test_0007'
    """
    if split not in _SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(_SPLITS)}")
    return f"synth_{split}_{index:04d}"


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of one image: independent of the other images and of the counts.

    >>> a = image_rng(3, "test", 0).random(); b = image_rng(3, "test", 0).random()
    >>> a == b, a == image_rng(3, "train", 0).random()
    (True, False)
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SPLITS.index(split), index)))


def _check_options(n_train: int, n_test: int, size: int, seed: int, bit_depth: int) -> None:
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if value < 0:
            raise InputError(f"{name} {value}: expected a count of images >= 0", param=name)
    if n_train + n_test == 0:
        raise InputError(
            "n_train 0 and n_test 0: nothing to generate; ask for at least one image", param=("n_train", "n_test")
        )
    if size < MIN_SIZE_PX:
        raise InputError(
            f"size {size}: expected an image size of at least {MIN_SIZE_PX} px (HPA images are 2048 px)", param="size"
        )
    if seed < 0:
        raise InputError(f"seed {seed}: expected a non-negative integer", param="seed")
    if bit_depth not in (8, 16):
        raise InputError(f"bit_depth {bit_depth}: expected 8 or 16", param="bit_depth")


def _previous_manifest(out_dir: Path, overwrite: bool) -> dict | None:
    """The manifest of an earlier run in ``out_dir``, if any; refuse a foreign non-empty folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"out {out_dir}: exists and is not a folder; choose a folder path", param="out")
    manifest_path = out_dir / _MANIFEST
    if manifest_path.is_file():
        try:
            manifest = io.read_json(manifest_path)
        except InputError:
            manifest = None
        if isinstance(manifest, dict) and manifest.get("generator") == "hpaseg.synth":
            return manifest
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(
            f"out {out_dir}: folder is not empty and holds no {_MANIFEST} of an earlier 'hpaseg synth' run; "
            "choose a new or empty folder, or allow overwrite to write into it",
            param=("out", "overwrite"),
        )
    return None


def _remove_stale(out_dir: Path, manifest: dict, new_ids: set[str]) -> None:
    """Delete the files of images an earlier run wrote that this run does not rewrite."""
    for split in _SPLITS:
        try:
            count = int(manifest.get(f"n_{split}", 0))
        except (TypeError, ValueError):
            continue
        for index in range(count):
            old = image_id(split, index)
            if old in new_ids:
                continue
            paths = [out_dir / split / f"{old}_{ch.name.lower()}.png" for ch in Channel]
            paths += list(io.mask_paths(out_dir / "masks", old))
            for path in paths:
                path.unlink(missing_ok=True)


def generate_dataset(
    out_dir: str | Path,
    n_train: int,
    n_test: int,
    size: int,
    seed: int,
    bit_depth: int = 8,
    progress: bool = True,
    *,
    overwrite: bool = False,
) -> SynthSummary:
    """Write a synthetic dataset in the Kaggle layout plus its truth (see the module docstring).

    Parameters
    ----------
    out_dir : path
        Created if needed. A non-empty folder is written into only when it holds the
        ``synth.json`` of an earlier run (whose images not rewritten now are deleted) or
        when ``overwrite`` is True (nothing else in it is deleted).
    n_train, n_test : int
        Images per split, >= 0, not both 0.
    size : int
        Image height and width in px, >= :data:`MIN_SIZE_PX`.
    seed : int
        >= 0; the same seed gives byte-identical files.
    bit_depth : {8, 16}
        16 writes 16-bit channel PNGs holding the 8-bit values times 257.
    progress : bool
        Show a tqdm progress bar on stderr.
    overwrite : bool
        Allow writing into a non-empty folder not made by this function.

    Returns
    -------
    SynthSummary

    Raises
    ------
    InputError
        Bad counts, size, seed or bit depth, or a foreign non-empty ``out_dir``.
    """

    _check_options(n_train, n_test, size, seed, bit_depth)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    previous = _previous_manifest(out_dir, overwrite)
    manifest = {
        "generator": "hpaseg.synth",
        "seed": seed,
        "n_train": n_train,
        "n_test": n_test,
        "size": size,
        "bit_depth": bit_depth,
        "complete": False,
    }
    io.write_json(out_dir / _MANIFEST, manifest, indent=2)  # marks the folder as ours from the start
    if previous is not None:  # an interrupted rerun must not leave the old tables beside new images
        for name in TABLES:
            (out_dir / name).unlink(missing_ok=True)

    summary = SynthSummary(out_dir, n_train, n_test, size, bit_depth, seed, n_cells=0)
    train_labels: dict[str, tuple[int, ...]] = {}
    truth_rows: list[SubmissionRow] = []
    cell_rows: list[list] = []
    jobs = [(split, i) for split, count in zip(_SPLITS, (n_train, n_test)) for i in range(count)]
    for split, index in tqdm(jobs, desc="synth", unit="img", disable=not progress):
        iid = image_id(split, index)
        img = synth_image(image_rng(seed, split, index), size)
        pixels = img.image.astype(np.uint16) * np.uint16(257) if bit_depth == 16 else img.image
        io.write_rgby(out_dir / split, iid, pixels)
        io.write_mask_pair(out_dir / "masks", iid, img.cell_mask, img.nuclei_mask)
        for cell, labs in img.cell_labels.items():
            cell_rows.append([iid, split, cell, io.format_labels(labs)])
            for lab in labs:
                summary.cell_label_counts[lab] += 1
        for lab in img.image_labels:
            summary.image_label_counts[lab] += 1
        summary.n_cells += len(img.cell_labels)
        if split == "train":
            train_labels[iid] = img.image_labels
        else:
            masks = encode_label_image(img.cell_mask, sorted(img.cell_labels))
            preds = [
                Prediction(lab, 1.0, masks[cell]) for cell, labs in sorted(img.cell_labels.items()) for lab in labs
            ]
            truth_rows.append(SubmissionRow(iid, size, size, preds))

    io.write_labels_csv(out_dir / "train.csv", train_labels)
    write_submission(
        out_dir / "sample_submission.csv", [SubmissionRow(r.image_id, r.width, r.height) for r in truth_rows]
    )
    write_submission(out_dir / "truth.csv", truth_rows)
    io.write_table(out_dir / "cell_labels.csv", pd.DataFrame(cell_rows, columns=["ID", "split", "cell", "Label"]))
    if previous is not None:
        _remove_stale(out_dir, previous, {image_id(s, i) for s, i in jobs})
    io.write_json(out_dir / _MANIFEST, {**manifest, "complete": True}, indent=2)
    summary.seconds = time.perf_counter() - start
    return summary
