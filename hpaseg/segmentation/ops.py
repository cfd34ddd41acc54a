"""Small image operations shared by the built-in segmenter's modules (float32, OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["blur", "distance_inside", "log_otsu", "scaled_shape"]


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (mirrored border) of a float32 image; ``sigma`` in its own pixels (<= 0: unchanged)."""
    if sigma <= 0:
        return x
    return cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def log_otsu(x: np.ndarray, offset: float = 1.0, bins: int = 256) -> float:
    """Otsu's threshold of ``log(x + offset)``, returned on the linear scale.

    >>> x = np.r_[np.full(50, 2.0), np.full(50, 100.0)]
    >>> 2.0 < log_otsu(x) < 100.0
    True
    """
    logs = np.log(np.maximum(x, 0) + offset).ravel()
    lo, hi = float(logs.min()), float(logs.max())
    if hi - lo <= 1e-9:
        return float(x.max())
    hist, edges = np.histogram(logs, bins=bins, range=(lo, hi))
    centers = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    k = int(np.argmax(between[:-1]))
    return float(np.exp(edges[k + 1]) - offset)


def distance_inside(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of each ``mask`` pixel to the nearest non-mask pixel; the image
    frame is not a boundary (objects cut by the border keep their inner distances)."""
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def scaled_shape(shape: tuple[int, ...], resize: float) -> tuple[int, int]:
    """``(H, W)`` of ``shape`` times ``resize``, rounded, at least 1 px each.

    >>> scaled_shape((2048, 1500, 4), 0.25)
    (512, 375)
    """
    return max(1, round(shape[0] * resize)), max(1, round(shape[1] * resize))
