"""Learned cell maps for the built-in segmenter: a small per-pixel model in place of the
classical interior and relief maps.

HPA-Cell-Segmentation draws its cells from two network maps (cell interior, cell
borders) by a marker watershed from the nuclei. The classical maps of
:mod:`hpaseg.segmentation.watershed` (smoothed microtubule + ER stain) put the border
between touching cells of even brightness wherever the brighter flood arrives first; on
real fields never used for a choice they agreed with HPA on 0.79 of the cells at IoU 0.6.
This module learns the two maps instead, from real fields with HPA-Cell-Segmentation
masks (and real-like synthetic fields with their true cells, for the shapes the few real
fields lack), with a model small enough to ship and to run on one core:

* **inputs** (:func:`pixel_features`, at half the segmenter's working size, 256 px:
  :func:`map_grid`; the maps come back to 512 px bilinearly, :func:`predict_maps`): each
  of red + yellow, red, yellow and blue, normalised per field (background subtracted,
  divided by the typical stained level, so 8- and 16-bit fields and dim or bright
  exposures read alike), smoothed at 5 scales, its gradient magnitude at 3 and the two
  Hessian eigenvalues at 2 scales (48 features); and three of the nuclei found in blue:
  the distance to the nearest nucleus, the distance to the Voronoi edge between nuclei
  (where a boundary between confluent cells tends to run), and inside-a-nucleus.
  Lengths are pixels of a 2048-px field of view, as everywhere in the segmenter.
* **outputs** (:meth:`CellMapModel.predict`): the probability that a pixel is cell, and
  its distance to the edge of its own cell (the nearest pixel of another cell or of the
  background), capped at :data:`DISTANCE_CAP_PX_AT_2048` and divided by it.
* **model**: a multilayer perceptron (2 hidden layers of 64 units, ReLU) on those
  features, fitted by :func:`hpaseg.segmentation.fit_cellmaps.fit_cell_map_model` (torch, AdamW, one-cycle; binary cross
  entropy on both outputs). Inference is plain numpy. The shipped weights
  (``hpaseg/segmentation/cellmaps.npz``) are written by
  ``python -m hpaseg.bench segreal FIELDS... --save-model hpaseg/segmentation/cellmaps.npz``,
  which also measures the model leave-one-field-out (``benchmarks/RESULTS.md``).

The watershed then floods the negated distance map from the nuclei inside the
probable-cell region (:func:`hpaseg.segmentation.watershed.segment_watershed` with
``WatershedParams.cell_maps="learned"``, the default).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from skimage import segmentation

from ..errors import InputError
from ..io import atomic_write
from ..transforms import resize_image, resize_labels
from .ops import blur, distance_inside, log_otsu, scaled_shape

__all__ = [
    "DEFAULT_MODEL_PATH",
    "DISTANCE_CAP_PX_AT_2048",
    "FEATURE_VERSION",
    "CellMapModel",
    "load_cell_map_model",
    "map_targets",
    "MAP_SIZE_PX",
    "map_grid",
    "n_features",
    "pixel_features",
    "predict_maps",
]

#: Longest side (px) at which the maps are computed (half the segmenter's working size:
#: the maps are smooth at that scale, and it keeps the model's cost a quarter).
MAP_SIZE_PX = 256
#: The shipped model (written by ``python -m hpaseg.bench segreal ... --save-model``).
DEFAULT_MODEL_PATH = Path(__file__).with_name("cellmaps.npz")
#: What to do about a missing or unusable model file (the end of its error messages).
_MODEL_HINT = (
    "expected an .npz written by `python -m hpaseg.bench segreal ... --save-model`, or use cell_maps='classical'"
)
#: Bumped whenever :func:`pixel_features` changes: a model of another version is refused.
FEATURE_VERSION = 1
#: Distances to the cell edge are capped here (px at 2048; ~ a nucleus diameter's half
#: plus a margin): the centre of every cell reads 1.
DISTANCE_CAP_PX_AT_2048 = 120.0
#: Gaussian scales (sigma, px at 2048) of the smoothed, gradient and Hessian features.
SMOOTH_SIGMAS_PX_AT_2048 = (4.0, 8.0, 16.0, 32.0, 64.0)
GRADIENT_SIGMAS_PX_AT_2048 = (4.0, 8.0, 16.0)
HESSIAN_SIGMAS_PX_AT_2048 = (8.0, 16.0)
#: Unit of the nucleus distances (px at 2048: about a nucleus radius); capped at 10 units.
NUCLEUS_UNIT_PX_AT_2048 = 100.0
#: Channels of the RGBY working image behind each stain feature group: red + yellow, red,
#: yellow, blue.
_STAINS = ((0, 3), (0,), (3,), (2,))


def n_features() -> int:
    """Number of features per pixel of :func:`pixel_features`.

    >>> n_features()
    51
    """
    per_stain = len(SMOOTH_SIGMAS_PX_AT_2048) + len(GRADIENT_SIGMAS_PX_AT_2048) + 2 * len(HESSIAN_SIGMAS_PX_AT_2048)
    return len(_STAINS) * per_stain + 3


def _normalised(x: np.ndarray) -> np.ndarray:
    """``x`` minus its background (2nd percentile of a light blur), divided by its typical
    stained level above it (median above Otsu's threshold of the log), clipped to [-1, 10]."""
    smooth = blur(x, 2.0)
    background = float(np.percentile(smooth, 2))
    # The log's offset scales with the field, so a gain (exposure, 8 vs 16 bit) changes nothing.
    offset = max(0.01 * float(np.percentile(smooth, 99.9)), 1e-6)
    above = smooth[smooth > log_otsu(smooth, offset=offset)]
    level = float(np.median(above)) if above.size else float(smooth.max())
    return np.clip((x - background) / max(level - background, 1e-3), -1.0, 10.0).astype(np.float32)


def _gradient(x: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(x, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(x, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    return np.sqrt(gx * gx + gy * gy)


def _hessian_eigenvalues(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xx = cv2.Sobel(x, cv2.CV_32F, 2, 0, ksize=3)
    yy = cv2.Sobel(x, cv2.CV_32F, 0, 2, ksize=3)
    xy = cv2.Sobel(x, cv2.CV_32F, 1, 1, ksize=3) * 0.25
    trace, root = xx + yy, np.sqrt((xx - yy) ** 2 + 4.0 * xy * xy)
    return 0.5 * (trace + root), 0.5 * (trace - root)


def pixel_features(work: np.ndarray, scale: float, nuclei: np.ndarray) -> np.ndarray:
    """Per-pixel inputs of the cell-map model (see the module docstring).

    Parameters
    ----------
    work : ndarray, shape (H, W, 4), float
        RGBY field at the segmenter's working size, grey levels (green is not used).
    scale : float
        Pixels of ``work`` per pixel of a 2048-px field of view.
    nuclei : ndarray, shape (H, W), int
        Nucleus labels at the same size (0 = none).

    Returns
    -------
    ndarray, shape (H, W, n_features()), float32

    Examples
    --------
    >>> work = np.zeros((64, 64, 4), np.float32); work[10:50, 10:50] = 80
    >>> nuclei = np.zeros((64, 64), np.int32); nuclei[25:35, 25:35] = 1
    >>> pixel_features(work, 0.1, nuclei).shape
    (64, 64, 51)
    """
    work = np.asarray(work, dtype=np.float32)
    if work.ndim != 3 or work.shape[2] != 4:
        raise ValueError(f"work: expected an (H, W, 4) RGBY image, got shape {work.shape}")
    feats: list[np.ndarray] = []
    for channels in _STAINS:
        stain = _normalised(sum(work[..., c] for c in channels))
        feats += [blur(stain, s * scale) for s in SMOOTH_SIGMAS_PX_AT_2048]
        feats += [_gradient(blur(stain, s * scale)) * (s * scale) for s in GRADIENT_SIGMAS_PX_AT_2048]
        for s in HESSIAN_SIGMAS_PX_AT_2048:
            feats += [v * (s * scale) ** 2 for v in _hessian_eigenvalues(blur(stain, s * scale))]
    inside = np.asarray(nuclei) > 0
    unit = NUCLEUS_UNIT_PX_AT_2048 * scale
    feats.append(np.minimum(distance_inside(~inside) / unit, 10.0))
    if int(np.max(nuclei, initial=0)) >= 2:
        voronoi = segmentation.watershed(np.zeros(inside.shape, np.float32), np.asarray(nuclei, np.int32))
        edge = np.zeros(inside.shape, bool)
        edge[:, 1:] |= voronoi[:, 1:] != voronoi[:, :-1]
        edge[1:] |= voronoi[1:] != voronoi[:-1]
        feats.append(np.minimum(distance_inside(~edge) / unit, 10.0))
    else:
        feats.append(np.full(inside.shape, 10.0, np.float32))
    feats.append(inside.astype(np.float32))
    return np.stack(feats, axis=-1).astype(np.float32)


def map_grid(work: np.ndarray, scale: float, nuclei: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """The working image, its scale and its nuclei brought to the maps' size, :data:`MAP_SIZE_PX`
    (area averaging; nuclei by nearest neighbour; never enlarged).

    >>> work = np.zeros((512, 400, 4), np.float32); nuclei = np.zeros((512, 400), np.int32)
    >>> small, small_scale, small_nuclei = map_grid(work, 0.25, nuclei)
    >>> small.shape, small_scale, small_nuclei.shape
    ((256, 200, 4), 0.125, (256, 200))
    """
    resize = min(1.0, MAP_SIZE_PX / max(work.shape[0], work.shape[1]))
    if resize == 1.0:
        return np.asarray(work, np.float32), scale, np.asarray(nuclei)
    shape = scaled_shape(work.shape, resize)
    return resize_image(np.asarray(work, np.float32), shape), scale * resize, resize_labels(np.asarray(nuclei), shape)


def predict_maps(
    model: CellMapModel, work: np.ndarray, scale: float, nuclei: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cell probability and edge distance (0-1) of every pixel of the working image.

    The features are computed and the model run on :func:`map_grid`'s smaller grid; the
    maps are brought back to ``work``'s size bilinearly.

    Parameters
    ----------
    model : CellMapModel
    work : ndarray, shape (H, W, 4), float
        RGBY field at the segmenter's working size.
    scale : float
        Pixels of ``work`` per pixel of a 2048-px field of view.
    nuclei : ndarray, shape (H, W), int
        Nucleus labels of ``work``.

    Returns
    -------
    is_cell, distance : ndarray, shape (H, W), float32
    """
    small, small_scale, small_nuclei = map_grid(work, scale, nuclei)
    is_cell, distance = model.predict(pixel_features(small, small_scale, small_nuclei))
    size = (work.shape[1], work.shape[0])
    if is_cell.shape != work.shape[:2]:
        is_cell = cv2.resize(is_cell, size, interpolation=cv2.INTER_LINEAR)
        distance = cv2.resize(distance, size, interpolation=cv2.INTER_LINEAR)
    return is_cell, distance


def map_targets(cells: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Training targets of the cell-map model from a reference cell mask.

    Parameters
    ----------
    cells : ndarray, shape (H, W), int
        Reference cells at the working size (0 = background).
    scale : float
        Pixels per pixel of a 2048-px field of view.

    Returns
    -------
    is_cell : ndarray, shape (H, W), bool
    distance : ndarray, shape (H, W), float32
        Distance to the nearest pixel of another label (cell or background), capped at
        :data:`DISTANCE_CAP_PX_AT_2048` and divided by it; 0 outside cells.

    Examples
    --------
    >>> cells = np.zeros((9, 20), np.int32); cells[:, 2:10] = 1; cells[:, 10:18] = 2
    >>> fg, d = map_targets(cells, 0.025)   # cap = 3 px
    >>> fg[4].astype(int).tolist()[:11], [round(float(v), 2) for v in d[4, 2:10]]
    ([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1], [0.0, 0.33, 0.67, 1.0, 1.0, 0.67, 0.33, 0.0])
    """
    cells = np.asarray(cells)
    edge = segmentation.find_boundaries(cells, connectivity=1, mode="thick")  # both sides of every label change
    cap = DISTANCE_CAP_PX_AT_2048 * scale
    distance = cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    is_cell = cells > 0
    return is_cell, np.where(is_cell, np.minimum(distance, cap) / max(cap, 1e-6), 0.0).astype(np.float32)


@dataclass(frozen=True)
class CellMapModel:
    """A fitted cell-map model: feature standardisation and MLP weights (numpy)."""

    #: ``(weight (n_in, n_out), bias (n_out,))`` per layer; ReLU between layers.
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    #: Per-feature mean and standard deviation of the training pixels.
    mean: np.ndarray
    std: np.ndarray
    #: Provenance: fields it was fitted on, seed, feature version.
    meta: dict = field(default_factory=dict)

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cell probability and edge distance (0-1) of every pixel.

        Parameters
        ----------
        features : ndarray, shape (..., n_features())

        Returns
        -------
        is_cell, distance : ndarray, shape (...), float32
        """
        features = np.asarray(features, dtype=np.float32)
        if features.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"features: expected {self.mean.shape[0]} per pixel, got {features.shape[-1]}")
        x = (features.reshape(-1, features.shape[-1]) - self.mean) / self.std
        for k, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if k < len(self.layers) - 1:
                np.maximum(x, 0.0, out=x)
        out = (1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0)))).astype(np.float32)
        shape = features.shape[:-1]
        return out[:, 0].reshape(shape), out[:, 1].reshape(shape)

    def save(self, path: str | os.PathLike) -> None:
        """Write the model as ``.npz`` (atomically)."""
        arrays = {"mean": self.mean, "std": self.std, "feature_version": np.array(FEATURE_VERSION)}
        for k, (w, b) in enumerate(self.layers):
            arrays[f"w{k}"], arrays[f"b{k}"] = w, b
        arrays["meta"] = np.array(repr(sorted(self.meta.items())))
        with atomic_write(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CellMapModel:
        """Read a model written by :meth:`save`; a missing, unreadable or incompatible
        file is an :class:`~hpaseg.errors.InputError` naming it."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                version = int(data["feature_version"])
                layers, k = [], 0
                while f"w{k}" in data:
                    layers.append((data[f"w{k}"].astype(np.float32), data[f"b{k}"].astype(np.float32)))
                    k += 1
                mean, std = data["mean"].astype(np.float32), data["std"].astype(np.float32)
                meta = str(data["meta"]) if "meta" in data else ""
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{path}: cannot read a cell-map model ({exc}); {_MODEL_HINT}") from None
        if version != FEATURE_VERSION:
            raise InputError(
                f"{path}: cell-map model of feature version {version}, this hpaseg computes version "
                f"{FEATURE_VERSION}; refit it with `python -m hpaseg.bench segreal ... --save-model`",
            )
        if not layers or layers[0][0].shape[0] != mean.shape[0] or layers[-1][0].shape[1] != 2:
            raise InputError(f"{path}: cell-map model layers do not fit {mean.shape[0]} features -> 2 maps")
        return cls(tuple(layers), mean, std, {"source": str(path), "fitted": meta})


def load_cell_map_model(path: str | os.PathLike | None = None) -> CellMapModel:
    """The model at ``path`` (default: the shipped :data:`DEFAULT_MODEL_PATH`), read once
    per process and file version (size and modification time)."""
    path = Path(path or DEFAULT_MODEL_PATH)
    try:
        stat = path.stat()
    except OSError:
        raise InputError(f"{path}: no cell-map model there; {_MODEL_HINT}") from None
    return _load_cached(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, size: int, mtime_ns: int) -> CellMapModel:
    return CellMapModel.load(path)
