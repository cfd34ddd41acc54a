"""Small array helpers of the synthetic generator: smooth noise, points rendered as dots
and lines, distances, connected pieces and boxes. Lengths are in output pixels."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.measure import label as connected

__all__ = [
    "STEP_PX",
    "smooth_noise",
    "upsample_linear",
    "splat",
    "dots",
    "lines",
    "ellipse_radius",
    "distance_to",
    "largest_component_per_label",
    "bbox",
    "blur_large",
]

#: Sampling step of drawn fibres, in output pixels.
STEP_PX = 0.6
#: Noise and blurs wider than this many px are computed at a lower resolution and upsampled.
_LOW_RES_SIGMA_PX = 2.5
#: :func:`blur_large` averages blocks of this fraction of its smallest blur width.
_BLOCK_PER_SIGMA = 2.0


def upsample_linear(low: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """``low`` enlarged ``factor`` times by bilinear interpolation (sample ``i`` of ``low`` at
    output pixel ``i * factor``), cropped to ``shape``; several times faster than
    :func:`scipy.ndimage.zoom`. ``low`` needs ``shape[k] // factor + 2`` samples per axis.

    >>> upsample_linear(np.array([[0.0, 2.0, 4.0]]).repeat(3, 0), 2, (1, 4)).tolist()
    [[0.0, 1.0, 2.0, 3.0]]
    """
    out = low
    for axis, n in enumerate(shape):
        pos = np.arange(n, dtype=np.float32) / np.float32(factor)
        i0 = pos.astype(np.intp)
        t = (pos - i0).reshape([-1 if k == axis else 1 for k in range(2)])
        out = np.take(out, i0, axis=axis) * (1 - t) + np.take(out, i0 + 1, axis=axis) * t
    return out.astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float, *, fast: bool = False) -> np.ndarray:
    """Gaussian-filtered white noise of standard deviation 1; made at a lower resolution
    and upsampled when ``sigma`` is large, so it stays cheap. ``fast`` upsamples with
    :func:`upsample_linear` (the compact style keeps :func:`scipy.ndimage.zoom`, whose
    output it is pinned to)."""
    factor = max(1, int(sigma // _LOW_RES_SIGMA_PX))
    low_shape = (shape[0] // factor + 3, shape[1] // factor + 3)
    low = ndimage.gaussian_filter(rng.standard_normal(low_shape, dtype=np.float32), sigma / factor, mode="wrap")
    if factor == 1:
        field_ = low[: shape[0], : shape[1]]
    elif fast:
        field_ = upsample_linear(low, factor, shape)
    else:
        field_ = ndimage.zoom(low, factor, order=1)[: shape[0], : shape[1]]
    field_ = field_ - field_.mean()
    return (field_ / max(float(field_.std()), 1e-6)).astype(np.float32)


def blur_large(plane: np.ndarray, sigmas: tuple[float, ...], weights: tuple[float, ...]) -> np.ndarray:
    """Weighted sum of Gaussian blurs of ``plane`` of widths ``sigmas`` px, computed on one
    block-averaged copy (blocks of about half the smallest width) and upsampled once: for
    hazes, where the lost detail does not matter.

    >>> blur_large(np.ones((64, 64), np.float32), (8.0, 20.0), (0.5, 0.25)).mean().round(3)
    np.float32(0.75)
    """
    factor = max(1, int(min(sigmas) // _BLOCK_PER_SIGMA))
    h, w = plane.shape
    padded = np.pad(plane.astype(np.float32), ((0, -h % factor), (0, -w % factor)), mode="edge")
    low = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).mean(axis=(1, 3))
    low = sum(
        np.float32(wt) * ndimage.gaussian_filter(low, sg / factor, mode="nearest") for sg, wt in zip(sigmas, weights)
    )
    if factor == 1:
        return low[:h, :w].astype(np.float32)
    return ndimage.zoom(low, factor, order=1, grid_mode=True, mode="nearest")[:h, :w].astype(np.float32)


def splat(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Add ``weights`` at the nearest pixels of points ``(ys, xs)``; points outside are dropped."""
    iy, ix = np.rint(ys).astype(np.intp), np.rint(xs).astype(np.intp)
    ok = (iy >= 0) & (iy < shape[0]) & (ix >= 0) & (ix < shape[1])
    flat = iy[ok] * shape[1] + ix[ok]
    acc = np.bincount(flat, weights=np.broadcast_to(weights, iy.shape)[ok], minlength=shape[0] * shape[1])
    return acc.reshape(shape).astype(np.float32)


def dots(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian dots of peak ``weights`` and width ``sigma`` px at ``(ys, xs)``."""
    if len(np.atleast_1d(ys)) == 0:
        return np.zeros(shape, np.float32)
    impulses = splat(shape, np.atleast_1d(ys), np.atleast_1d(xs), np.atleast_1d(weights))
    return ndimage.gaussian_filter(impulses, sigma) * np.float32(2 * np.pi * sigma**2)


def lines(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Render points sampled every :data:`STEP_PX` along curves as lines of peak about
    ``weights`` (saturating where lines cross)."""
    acc = ndimage.gaussian_filter(splat(shape, ys, xs, weights), sigma)
    return 1.0 - np.exp(-acc * np.float32(STEP_PX * np.sqrt(2 * np.pi) * sigma))


def ellipse_radius(angle: np.ndarray, a: np.ndarray, b: np.ndarray, orient: np.ndarray) -> np.ndarray:
    """Distance from an ellipse's centre to its edge in direction ``angle`` (radians)."""
    rel = angle - orient
    return 1.0 / np.sqrt((np.cos(rel) / a) ** 2 + (np.sin(rel) / b) ** 2)


def distance_to(features: np.ndarray) -> np.ndarray:
    """Distance (px) of every pixel to the nearest True pixel of ``features``.

    An octagonal approximation of the Euclidean distance, ``max(chessboard, taxicab / sqrt 2)``,
    within 8% of it and several times faster than an exact transform; ample for shading.
    """
    if not features.any():
        return np.full(features.shape, np.float32(features.shape[0] + features.shape[1]))
    chess = ndimage.distance_transform_cdt(~features, metric="chessboard")
    taxi = ndimage.distance_transform_cdt(~features, metric="taxicab")
    return np.maximum(chess, taxi * np.float32(1 / np.sqrt(2))).astype(np.float32)


def largest_component_per_label(labels: np.ndarray) -> np.ndarray:
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


def bbox(cy: float, cx: float, extent: float, size: int) -> tuple[slice, slice] | None:
    """The square window of half-width ``extent`` px about ``(cy, cx)``, clipped to the image;
    None when it lies wholly outside."""
    y0, y1 = max(0, int(cy - extent)), min(size, int(cy + extent) + 2)
    x0, x1 = max(0, int(cx - extent)), min(size, int(cx + extent) + 2)
    if y0 >= y1 or x0 >= x1:
        return None
    return slice(y0, y1), slice(x0, x1)
