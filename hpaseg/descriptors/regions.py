"""The regions of each cell that the descriptors measure: nucleus, cytoplasm, nuclear rim,
perinuclear zone, edge band, with per-pixel distances normalised by the cell's size.

Everything is computed at a working size (the longest side ``working_size_px``, 512 px by
default) so that a 2048-px HPA field and its downscaled copies give the same figures;
lengths are given in pixels of a 2048-px field (``*_PX_AT_2048``) and scaled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from ..classes import Channel
from ..errors import InputError
from ..segmentation import WatershedParams, segment_nuclei, working_scale
from ..segmentation.ops import scaled_shape
from ..transforms import resize_image, resize_labels

__all__ = ["EPS", "CellRegions", "cell_regions", "label_sum"]

#: Guards every ratio against an empty denominator.
EPS = 1e-6
#: Fractions of the cell radius (or of the nucleus radius for the rim) that bound the zones.
RIM_FRACTION = 0.2
PERINUCLEAR_FRACTION = 0.3
EDGE_BAND_FRACTION = 0.15


def label_sum(values: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over each label of ``ids`` (float64)."""
    return np.asarray(ndi.sum_labels(values, labels, ids), np.float64)


@dataclass
class CellRegions:
    """One image's cells at the working size, with their regions (all arrays (H, W) unless noted).

    ``green`` is the protein stain with the background (median outside cells) subtracted
    and clipped at 0, zero outside cells; ``ids`` (N,) are the cell labels in order, and
    the per-cell arrays (``area``, ``radius``, ...) follow that order.
    """

    image: np.ndarray  # (H, W, 4) float32, grey levels 0-255
    cells: np.ndarray  # int32 labels
    nucleus: np.ndarray  # bool: nucleus of its cell
    ids: np.ndarray
    scale: float  # working px per px of a 2048-px field
    background: float
    green: np.ndarray
    area: np.ndarray  # (N,) px at the working size
    nucleus_area: np.ndarray  # (N,)
    radius: np.ndarray  # (N,) sqrt(area / pi)
    from_nucleus: np.ndarray  # distance to the nucleus / cell radius (0 inside the nucleus)
    from_edge: np.ndarray  # distance to the cell edge / cell radius

    @property
    def cytoplasm(self) -> np.ndarray:
        return (self.cells > 0) & ~self.nucleus

    @property
    def nucleus_labels(self) -> np.ndarray:
        return np.where(self.nucleus, self.cells, 0)

    @property
    def cytoplasm_labels(self) -> np.ndarray:
        return np.where(self.cytoplasm, self.cells, 0)

    def per_pixel(self, values: np.ndarray) -> np.ndarray:
        """A per-cell array ``(N,)`` spread over the cells' pixels (0 outside cells)."""
        lut = np.zeros(int(self.cells.max()) + 1, np.float64)
        lut[self.ids] = values
        return lut[self.cells]

    def sum(self, values: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
        """Per-cell sum of ``values`` (within the boolean ``region`` when given)."""
        return label_sum(values if region is None else values * region, self.cells, self.ids)

    def rim(self) -> np.ndarray:
        """The outer ``RIM_FRACTION`` of each nucleus (by the nucleus radius)."""
        inside = ndi.distance_transform_edt(self.nucleus)
        nucleus_radius = np.sqrt(np.maximum(self.nucleus_area, 1.0) / np.pi)
        return self.nucleus & (inside < RIM_FRACTION * self.per_pixel(nucleus_radius))

    def perinuclear(self) -> np.ndarray:
        return self.cytoplasm & (self.from_nucleus < PERINUCLEAR_FRACTION)

    def edge_band(self) -> np.ndarray:
        return self.cytoplasm & (self.from_edge < EDGE_BAND_FRACTION)


def _nuclei_in_cells(blue: np.ndarray, cells: np.ndarray, scale: float) -> np.ndarray:
    found = segment_nuclei(blue, scale=scale, params=WatershedParams())
    return (found > 0) & (cells > 0)


def cell_regions(
    image: np.ndarray, cells: np.ndarray, nuclei: np.ndarray | None = None, *, working_size_px: int = 512
) -> CellRegions:
    """The regions of every cell of one image (module docstring).

    Parameters
    ----------
    image : ndarray, shape (H, W, 4)
        RGBY, grey levels 0-255 (uint8 or float).
    cells : ndarray, shape (H, W), int
        Cell labels, 0 = background.
    nuclei : ndarray, shape (H, W), int, optional
        Nucleus labels (nucleus k in cell k). Default: nuclei found in the blue channel
        (:func:`hpaseg.segmentation.segment_nuclei`), so that the descriptors need the
        cell mask alone (Mask R-CNN's cells have no nuclei).
    working_size_px : int
        Longest side of the working image.

    Returns
    -------
    CellRegions
    """
    if image.ndim != 3 or image.shape[2] != 4 or image.shape[:2] != cells.shape:
        raise InputError(
            f"image of shape {image.shape} and cells of shape {cells.shape}: expected (H, W, 4) and (H, W)",
            param="image",
        )
    resize, scale = working_scale(image.shape, working_size_px)
    shape = scaled_shape(image.shape, resize)
    work = resize_image(np.asarray(image, np.float32), shape)
    labels = resize_labels(np.asarray(cells), shape).astype(np.int32)
    if nuclei is None:
        nucleus = _nuclei_in_cells(work[..., Channel.BLUE], labels, scale)
    else:
        nucleus = (resize_labels(np.asarray(nuclei), shape) == labels) & (labels > 0)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    inside = labels > 0
    green = work[..., Channel.GREEN]
    background = float(np.median(green[~inside])) if (~inside).any() else float(np.percentile(green, 5))
    ones = np.ones(shape, np.float32)
    area = label_sum(ones, labels, ids)
    radius = np.sqrt(area / np.pi)
    regions = CellRegions(
        work, labels, nucleus, ids, scale, background, np.maximum(green - background, 0) * inside,
        area, label_sum(ones, np.where(nucleus, labels, 0), ids), radius, ones, ones,
    )  # fmt: skip
    cell_radius = np.maximum(regions.per_pixel(radius), 1.0)
    regions.from_nucleus = ndi.distance_transform_edt(~nucleus) / cell_radius
    edge = find_boundaries(labels, mode="inner") & inside
    regions.from_edge = ndi.distance_transform_edt(~edge) / cell_radius
    return regions
