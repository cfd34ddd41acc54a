"""A simple HPA-like field with known masks, for segmentation tests and benchmarks:
nuclei in blue, microtubules in red, ER in yellow, touching cells of uneven brightness,
with explicit control of centres and brightness (:func:`synthetic_field`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from ..classes import REFERENCE_SIZE_PX, Channel

__all__ = ["FieldTruth", "synthetic_field"]

#: Nucleus semi-axes, cytoplasm thickness beyond the nucleus, and the spacing of
#: nucleus centres, in pixels of a 2048-px HPA field of view.
_NUCLEUS_SEMI_AXES_PX_AT_2048 = (55.0, 95.0)
_CYTOPLASM_THICKNESS_PX_AT_2048 = (60.0, 150.0)
_MIN_NUCLEUS_SPACING_PX_AT_2048 = 260.0
#: Smoothness of the random cell outline and of the filament texture, and the optical blur.
_OUTLINE_NOISE_SIGMA_PX_AT_2048 = 40.0
_OUTLINE_NOISE_AMPLITUDE_PX_AT_2048 = 25.0
_TEXTURE_SIGMA_PX_AT_2048 = 3.0
_BLUR_SIGMA_PX_AT_2048 = 4.0
#: Grey levels (0-255): background offset and noise, and the brightness ranges drawn per cell.
_BACKGROUND_U8 = 4.0
_NOISE_U8 = 3.0
_NUCLEUS_BRIGHTNESS_U8 = (90.0, 200.0)
_CYTOPLASM_BRIGHTNESS_U8 = (25.0, 110.0)
#: Cytoplasm is brighter next to the nucleus: edge intensity as a fraction of the perinuclear one.
_CYTOPLASM_EDGE_FRACTION = 0.45
_POISSON_TRIES = 60
#: Filament/chromatin texture: a multiplicative factor base + contrast x unit noise (clipped at 0).
_TEXTURE_BASE, _TEXTURE_CONTRAST = 0.6, 0.4
_NUCLEUS_TEXTURE_CONTRAST = 0.15
#: Fraction of cells whose protein (green) is nuclear, and its brightness relative to the nucleus stain.
_NUCLEAR_PROTEIN_FRACTION = 0.5
_NUCLEAR_PROTEIN_BRIGHTNESS = 0.5


class FieldTruth:
    """True label images of a synthetic field.

    Attributes
    ----------
    cell_mask, nuclei_mask : ndarray, shape (H, W), int32
        Cells 1..N, the nucleus of cell k labelled k.
    """

    def __init__(self, cell_mask: np.ndarray, nuclei_mask: np.ndarray) -> None:
        self.cell_mask = cell_mask
        self.nuclei_mask = nuclei_mask


def _poisson_centres(rng: np.random.Generator, shape: tuple[int, int], spacing: float) -> np.ndarray:
    """Dart-throwing centres at least ``spacing`` px apart (centres may lie near borders)."""
    height, width = shape
    centres: list[tuple[float, float]] = []
    misses = 0
    while misses < _POISSON_TRIES:
        c = (rng.uniform(0, height), rng.uniform(0, width))
        if all((c[0] - y) ** 2 + (c[1] - x) ** 2 >= spacing**2 for y, x in centres):
            centres.append(c)
            misses = 0
        else:
            misses += 1
    return np.array(centres, dtype=np.float64).reshape(-1, 2)


def synthetic_field(
    rng: np.random.Generator,
    shape: tuple[int, int] | int = 512,
    *,
    scale: float | None = None,
    centres: np.ndarray | None = None,
    nucleus_brightness_u8: Sequence[float] | None = None,
    cytoplasm_brightness_u8: Sequence[float] | None = None,
) -> tuple[np.ndarray, FieldTruth]:
    """Render an HPA-like field of touching cells with known masks.

    Nuclei are ellipses (blue); each cell is the part of the Voronoi territory of its
    nucleus within a random, smoothly varying distance of it, so neighbouring cells
    touch along their territory border; microtubules (red) and ER (yellow) fill the
    cell with a filament texture that is brightest next to the nucleus; green is the
    protein, nuclear in some cells and cytoplasmic in others. Brightness varies per
    cell; the channels are blurred and noisy.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : (int, int) or int
        Image size in px.
    scale : float, optional
        Pixels of this image per pixel of a 2048-px field of view; by default the
        image is a whole field of view, ``max(shape) / 2048``.
    centres : ndarray, shape (N, 2), optional
        Nucleus centres ``(row, col)`` in px; by default random, ``260 * scale`` px apart.
    nucleus_brightness_u8, cytoplasm_brightness_u8 : sequence of float, optional
        Per-cell peak grey levels (0-255); by default uniform random.

    Returns
    -------
    image : ndarray, shape (H, W, 4), uint8
        RGBY.
    truth : FieldTruth
        True cell and nucleus masks, cells cut by the image border included.
    """
    shape = (shape, shape) if isinstance(shape, int) else tuple(shape)
    scale = max(shape) / REFERENCE_SIZE_PX if scale is None else float(scale)
    if centres is None:
        centres = _poisson_centres(rng, shape, _MIN_NUCLEUS_SPACING_PX_AT_2048 * scale)
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    n = len(centres)
    if nucleus_brightness_u8 is None:
        nucleus_brightness_u8 = rng.uniform(*_NUCLEUS_BRIGHTNESS_U8, n)
    if cytoplasm_brightness_u8 is None:
        cytoplasm_brightness_u8 = rng.uniform(*_CYTOPLASM_BRIGHTNESS_U8, n)
    nuc_b = np.asarray(nucleus_brightness_u8, dtype=np.float64)
    cyt_b = np.asarray(cytoplasm_brightness_u8, dtype=np.float64)

    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    nuclei = np.zeros(shape, np.int32)
    for k, (cy, cx) in enumerate(centres, start=1):
        a, b = rng.uniform(*_NUCLEUS_SEMI_AXES_PX_AT_2048, 2) * scale
        theta = rng.uniform(0, np.pi)
        dy, dx = rows - cy, cols - cx
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        nuclei[((u / a) ** 2 + (v / b) ** 2 <= 1.0) & (nuclei == 0)] = k

    # Territory = nearest nucleus; cell = territory within a random distance of its nucleus.
    dist, (iy, ix) = ndi.distance_transform_edt(nuclei == 0, return_indices=True)
    territory = nuclei[iy, ix] if n else np.zeros(shape, np.int32)
    thickness = np.concatenate([[0.0], rng.uniform(*_CYTOPLASM_THICKNESS_PX_AT_2048, n) * scale])
    wobble = ndi.gaussian_filter(rng.standard_normal(shape), _OUTLINE_NOISE_SIGMA_PX_AT_2048 * scale)
    wobble *= _OUTLINE_NOISE_AMPLITUDE_PX_AT_2048 * scale / max(float(wobble.std()), 1e-9)
    cells = np.where(dist <= thickness[territory] + wobble, territory, 0).astype(np.int32)
    cells[nuclei > 0] = nuclei[nuclei > 0]

    def texture() -> np.ndarray:
        t = ndi.gaussian_filter(rng.standard_normal(shape), max(_TEXTURE_SIGMA_PX_AT_2048 * scale, 0.5))
        return np.clip(_TEXTURE_BASE + _TEXTURE_CONTRAST * t / max(float(t.std()), 1e-9), 0.0, None)

    radial = 1.0 - (1.0 - _CYTOPLASM_EDGE_FRACTION) * np.clip(dist / np.maximum(thickness[territory], 1.0), 0.0, 1.0)
    cyt_level = np.concatenate([[0.0], cyt_b])[cells] * radial
    nuc_level = np.concatenate([[0.0], nuc_b])[nuclei]
    protein_in_nucleus = np.concatenate([[False], rng.random(n) < _NUCLEAR_PROTEIN_FRACTION])
    image = np.zeros((*shape, 4), np.float32)
    image[..., Channel.RED] = cyt_level * texture()
    image[..., Channel.YELLOW] = cyt_level * texture() * radial
    image[..., Channel.BLUE] = nuc_level * (1.0 - _NUCLEUS_TEXTURE_CONTRAST + _NUCLEUS_TEXTURE_CONTRAST * texture())
    image[..., Channel.GREEN] = (
        np.where(protein_in_nucleus[cells], nuc_level * _NUCLEAR_PROTEIN_BRIGHTNESS, cyt_level) * texture()
    )
    blur = _BLUR_SIGMA_PX_AT_2048 * scale
    for c in range(4):
        image[..., c] = ndi.gaussian_filter(image[..., c], blur)
    image += _BACKGROUND_U8 + _NOISE_U8 * rng.standard_normal(image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), FieldTruth(cells, nuclei)
