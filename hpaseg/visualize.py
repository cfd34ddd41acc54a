"""Pictures of HPA images and cell masks: pure functions returning arrays.

Colours are fixed per class across all figures (see :data:`CLASS_COLORS`).
"""
from __future__ import annotations

import numpy as np
from skimage.segmentation import find_boundaries

from .classes import Channel

__all__ = ["composite_rgb", "draw_outlines"]

#: Weight of the yellow (ER) channel added to red and green in the composite.
YELLOW_WEIGHT = 0.5


def composite_rgb(image: np.ndarray, *, yellow: bool = True) -> np.ndarray:
    """RGB composite of an RGBY image, the way HPA shows it.

    Red = microtubules, green = protein, blue = nucleus; yellow (ER), when included,
    is added at half weight to red and green (red + green = yellow).

    Parameters
    ----------
    image : ndarray, shape (H, W, 4), uint8
    yellow : bool
        Add the ER channel.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8

    Examples
    --------
    >>> img = np.zeros((1, 1, 4), np.uint8); img[..., 3] = 200
    >>> composite_rgb(img)[0, 0].tolist()
    [100, 100, 0]
    """
    if image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"expected an (H, W, 4) RGBY image, got shape {image.shape}")
    rgb = image[..., [Channel.RED, Channel.GREEN, Channel.BLUE]].astype(np.float32)
    if yellow:
        rgb[..., :2] += YELLOW_WEIGHT * image[..., Channel.YELLOW, None]
    return np.clip(rgb, 0, 255).astype(np.uint8)


def draw_outlines(rgb: np.ndarray, labels: np.ndarray, color: tuple[int, int, int] | dict[int, tuple[int, int, int]] = (255, 255, 255), *, thickness_px: int = 1) -> np.ndarray:
    """Draw the outline of every labelled cell on a copy of ``rgb``.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    labels : ndarray, shape (H, W), int
        0 = background.
    color : (r, g, b) or dict
        One colour for all cells, or ``{cell id: (r, g, b)}`` (cells not in it are skipped).
    thickness_px : int
        Outline width in pixels (inner boundary grown by ``thickness_px - 1``).

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"picture is {rgb.shape[:2]} but labels are {labels.shape}")
    out = rgb.copy()
    edges = find_boundaries(labels, mode="inner")
    if thickness_px > 1:
        from scipy.ndimage import binary_dilation

        edges = binary_dilation(edges, iterations=thickness_px - 1) & (labels > 0)
    if isinstance(color, dict):
        for cell, col in color.items():
            out[edges & (labels == cell)] = col
    else:
        out[edges] = color
    return out
