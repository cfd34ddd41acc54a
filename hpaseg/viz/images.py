"""Pictures as arrays: RGB composites of RGBY images, outlines, display stretching, and
figures turned into pixels.

Images are shown with each channel stretched between its 0.1st and 99.9th percentile
(:func:`stretch_contrast`): 16-bit HPA channels brought to 8 bit are far too dim to see
otherwise. The stretch is for display only; nothing is measured on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from scipy.ndimage import binary_dilation
from skimage.segmentation import find_boundaries

from ..classes import Channel

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "YELLOW_WEIGHT",
    "DISPLAY_PERCENTILES",
    "composite_rgb",
    "draw_outlines",
    "stretch_contrast",
    "display_rgb",
    "figure_to_rgb",
]

#: Percentiles between which each channel is stretched for display.
DISPLAY_PERCENTILES: tuple[float, float] = (0.1, 99.9)


#: Weight of the yellow (ER) channel added to red and green in the composite.
YELLOW_WEIGHT = 0.5


def composite_rgb(image: np.ndarray, *, yellow: bool = True) -> np.ndarray:
    """RGB composite of an RGBY image, the way HPA shows it.

    Red = microtubules, green = protein, blue = nucleus; yellow (ER), when included,
    is added at half weight to the red and green display channels (red and green light
    show yellow on screen; the stain itself is a separate one).

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


def draw_outlines(
    rgb: np.ndarray,
    labels: np.ndarray,
    color: tuple[int, int, int] | dict[int, tuple[int, int, int]] = (255, 255, 255),
    *,
    thickness_px: int = 1,
) -> np.ndarray:
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
        edges = binary_dilation(edges, iterations=thickness_px - 1) & (labels > 0)
    if isinstance(color, dict):
        for cell, col in color.items():
            out[edges & (labels == cell)] = col
    else:
        out[edges] = color
    return out


def stretch_contrast(image: np.ndarray, percentiles: tuple[float, float] = DISPLAY_PERCENTILES) -> np.ndarray:
    """Stretch each channel linearly so its ``percentiles`` map to 0 and 255 (display only).

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C), uint8
    percentiles : (low, high)
        In [0, 100]. A channel whose low and high percentiles coincide (an empty or
        flat channel) is left as it is.

    Returns
    -------
    ndarray, same shape, uint8

    Examples
    --------
    >>> stretch_contrast(np.array([[0, 10, 20]], np.uint8), (0, 100)).tolist()
    [[0, 128, 255]]
    >>> stretch_contrast(np.zeros((1, 2, 2), np.uint8)).max()
    np.uint8(0)
    """
    low, high = percentiles
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles {percentiles}; expected 0 <= low < high <= 100")
    planes = image[..., None] if image.ndim == 2 else image
    out = np.empty(planes.shape, np.uint8)
    for k in range(planes.shape[-1]):
        plane = planes[..., k]
        lo, hi = np.percentile(plane, (low, high))
        if hi <= lo:
            out[..., k] = plane
            continue
        out[..., k] = np.clip(np.rint((plane.astype(np.float32) - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)
    return out[..., 0] if image.ndim == 2 else out


def display_rgb(image: np.ndarray, *, stretch: bool = True) -> np.ndarray:
    """The composite of an RGBY image as shown in every figure: channels stretched
    (:func:`stretch_contrast`) when ``stretch``, then :func:`composite_rgb`.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    if image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"expected an (H, W, 4) RGBY image, got shape {image.shape}")
    return composite_rgb(stretch_contrast(image) if stretch else image)


def figure_to_rgb(fig: Figure, *, dpi: float | None = None) -> np.ndarray:
    """Render a figure to an ``(H, W, 3)`` uint8 picture with Agg (at ``dpi`` if given;
    the figure's own dpi is restored afterwards)."""

    canvas = FigureCanvasAgg(fig)
    own_dpi = fig.dpi
    try:
        if dpi is not None:
            fig.set_dpi(dpi)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()
    finally:
        fig.set_dpi(own_dpi)
