"""What the protein's pattern looks like inside each cell: spots at several sizes, the
size spectrum of bright structures (granulometry), bright objects, filament-like order
and fine detail."""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from .regions import EPS, CellRegions

__all__ = ["spots", "granulometry", "objects", "structure"]

#: Gaussian scales of the spot detector, px at 2048 (small dots to nuclear bodies).
SPOT_SIGMAS_PX_AT_2048: tuple[float, ...] = (2.8, 6.0, 12.0)
#: Ratio of the two Gaussians of the difference-of-Gaussians spot filter.
DOG_RATIO = 2.5
#: A spot must rise above this fraction of its cell's mean green (+1 grey level).
SPOT_MIN_CONTRAST = 0.3
#: Radii of the granulometry's openings, px at 2048.
OPENING_RADII_PX_AT_2048: tuple[float, ...] = (4.0, 8.0, 16.0, 32.0)
#: Bright objects: green (lightly smoothed) above this multiple of the cell's mean.
OBJECT_FACTOR = 1.5
#: Smoothing of the object and structure maps, px at 2048.
SMOOTH_PX_AT_2048 = 4.0
#: Window of the structure tensor, px at 2048.
STRUCTURE_WINDOW_PX_AT_2048 = 8.0
_MIN_SIGMA = 0.5


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(x, (0, 0), max(sigma, _MIN_SIGMA), borderType=cv2.BORDER_REFLECT)


def _disk(radius: float) -> np.ndarray:
    k = max(1, round(radius))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))


def spots(r: CellRegions) -> dict[str, np.ndarray]:
    """Local maxima of a difference-of-Gaussians filter at each scale: their number (log)
    and mean strength (relative to the cell's mean) in the nucleus, the perinuclear zone
    and the cytoplasm."""
    green = r.green.astype(np.float32)
    mean = r.sum(r.green) / np.maximum(r.area, 1)
    floor = SPOT_MIN_CONTRAST * (r.per_pixel(mean) + 1)
    zones = {"nucleus": r.nucleus, "perinuclear": r.perinuclear(), "cytoplasm": r.cytoplasm}
    out = {}
    for sigma_2048 in SPOT_SIGMAS_PX_AT_2048:
        sigma = sigma_2048 * r.scale
        dog = _blur(green, sigma) - _blur(green, DOG_RATIO * sigma)
        k = max(3, round(4 * sigma)) // 2 * 2 + 1
        peak = (dog >= cv2.dilate(dog, np.ones((k, k), np.uint8))) & (dog > floor) & (r.cells > 0)
        strength = np.where(peak, dog, 0)
        for zone, region in zones.items():
            count = r.sum(peak, region)
            out[f"spots_{sigma_2048:g}_{zone}_count"] = np.log1p(count)
            out[f"spots_{sigma_2048:g}_{zone}_strength"] = r.sum(strength, region) / (np.maximum(count, 1) * (mean + 1))
    return out


def granulometry(r: CellRegions) -> dict[str, np.ndarray]:
    """Share of the cell's green removed by grey openings of growing radius (structures of
    each size), and the share left after the largest."""
    total = r.sum(r.green)
    previous = r.green.astype(np.float32)
    out = {}
    for radius in OPENING_RADII_PX_AT_2048:
        opened = cv2.morphologyEx(previous, cv2.MORPH_OPEN, _disk(radius * r.scale))
        out[f"opening_{radius:g}_share"] = r.sum(previous - opened) / (total + EPS)
        previous = opened
    out["opening_rest_share"] = r.sum(previous) / (total + EPS)
    return out


def objects(r: CellRegions) -> dict[str, np.ndarray]:
    """Bright objects (connected, cut at cell borders): their number (log), number in the
    nucleus, share of the green, mean size, the largest one's share of mass and of the
    cell, and the mean distance of the cytoplasmic ones from the nucleus."""
    n = len(r.ids)
    names = ("count", "nucleus_count", "share", "mean_area", "largest_share", "largest_area", "distance")
    out = {f"objects_{k}": np.zeros(n) for k in names}
    mean = r.sum(r.green) / np.maximum(r.area, 1)
    smooth = _blur(r.green.astype(np.float32), SMOOTH_PX_AT_2048 * r.scale)
    bright = (smooth > OBJECT_FACTOR * r.per_pixel(mean) + 1) & (r.cells > 0)
    bright &= ~find_boundaries(r.cells, mode="inner")
    found, count = ndi.label(bright)
    if not count:
        return out
    index = np.arange(1, count + 1)
    owner = np.searchsorted(r.ids, ndi.maximum(r.cells, found, index).astype(np.int64))
    area = ndi.sum_labels(np.ones_like(smooth), found, index)
    mass = ndi.sum_labels(r.green, found, index)
    in_nucleus = ndi.mean(r.nucleus.astype(np.float32), found, index) > 0.5
    distance = ndi.mean(r.from_nucleus, found, index)
    per_cell = np.bincount(owner, minlength=n).astype(np.float64)
    cell_mass = np.bincount(owner, mass, n)
    largest_mass, largest_area = np.zeros(n), np.zeros(n)
    np.maximum.at(largest_mass, owner, mass)
    np.maximum.at(largest_area, owner, area)
    outside = ~in_nucleus
    out["objects_count"] = np.log1p(per_cell)
    out["objects_nucleus_count"] = np.log1p(np.bincount(owner, in_nucleus, n))
    out["objects_share"] = cell_mass / (r.sum(r.green) + EPS)
    out["objects_mean_area"] = np.log1p(np.bincount(owner, area, n) / np.maximum(per_cell, 1) / (4 * r.scale) ** 2)
    out["objects_largest_share"] = largest_mass / (cell_mass + EPS)
    out["objects_largest_area"] = largest_area / np.maximum(r.area, 1)
    out["objects_distance"] = np.bincount(owner, distance * outside, n) / np.maximum(np.bincount(owner, outside, n), 1)
    return out


def structure(r: CellRegions) -> dict[str, np.ndarray]:
    """Order and detail: green-weighted orientation coherence of the structure tensor in
    the cytoplasm (filaments and fibres are coherent), and the Laplacian's energy
    relative to the mean (fine detail)."""
    smooth = _blur(r.green.astype(np.float32), SMOOTH_PX_AT_2048 * r.scale)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    window = STRUCTURE_WINDOW_PX_AT_2048 * r.scale
    jxx, jyy, jxy = _blur(gx * gx, window), _blur(gy * gy, window), _blur(gx * gy, window)
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + EPS)
    cytoplasm = r.cytoplasm
    laplacian = cv2.Laplacian(smooth, cv2.CV_32F)
    mean = r.sum(r.green) / np.maximum(r.area, 1)
    return {
        "coherence_cytoplasm": r.sum(coherence * r.green, cytoplasm) / (r.sum(r.green, cytoplasm) + EPS),
        "laplacian_energy": np.sqrt(r.sum(laplacian * laplacian) / np.maximum(r.area, 1)) / (mean + 1),
    }
