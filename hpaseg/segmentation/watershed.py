"""The built-in segmenter (``method="watershed"``): classical nuclei and marker-watershed
cells, no trained weights.

Computed at a working size of 512 px like HPA-Cell-Segmentation (a quarter of
2048 px). The pure steps :func:`segment_nuclei` and :func:`grow_cells` work on arrays
of any resolution given ``scale``, the pixels of the array per pixel of a 2048-px
field of view (all sizes in :class:`WatershedParams` are given at that reference,
:data:`~hpaseg.classes.REFERENCE_SIZE_PX`). An input of ``max(H, W)`` px is taken to
show the same field of view as a 2048-px HPA image, so it is resized to the working
size and every ``*_px_at_2048`` size scales with the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage import filters, measure, morphology, segmentation

from ..classes import REFERENCE_SIZE_PX, Channel
from ..errors import InputError
from ..transforms import resize_image, resize_labels
from .base import check_rgby, relabel_pair

__all__ = [
    "WatershedParams",
    "WatershedSegmenter",
    "working_scale",
    "segment_nuclei",
    "grow_cells",
    "segment_watershed",
]

#: Percentiles (of smoothed intensities) that stand for "the bright level" of the nuclei
#: as a whole (splitting), of one nucleus (its edge), and for the cytoplasm background.
_NUCLEI_BRIGHT_PERCENTILE = 90


_NUCLEUS_BRIGHT_PERCENTILE = 95


_CYTOPLASM_BACKGROUND_PERCENTILE = 1


#: Smoothing (working px) of the distance transform before its maxima are taken.
_DISTANCE_SMOOTHING_SIGMA_PX = 1.0


@dataclass(frozen=True)
class WatershedParams:
    """Parameters of :func:`segment_watershed`. Sizes are in pixels of a 2048-px
    field of view (``*_px_at_2048``; areas in px², lengths in px); intensities are
    grey levels of the uint8 channels (``*_u8``)."""

    #: Side (px) of the working image: the input is resized so that max(H, W) equals
    #: it (never enlarged); masks are computed there and resized back.
    working_size_px: int = 512
    # ---- nuclei (blue)
    #: Gaussian smoothing of the blue channel before thresholding.
    nucleus_smoothing_sigma_px_at_2048: float = 8.0
    #: Nuclei are found above this fraction of the way from the median blue level to
    #: the Otsu threshold of the log blue (1 = at that threshold; lower finds dimmer nuclei).
    nucleus_threshold_fraction: float = 1.0
    #: Nuclei must be this much brighter than the image's median blue level.
    min_nucleus_contrast_u8: float = 5.0
    #: Each nucleus is cut at this fraction of the way from the background level up to
    #: its own bright level (0.5 = half maximum), so bright and dim nuclei get true edges.
    nucleus_edge_fraction: float = 0.5
    #: Touching nuclei are split at maxima of (distance to the edge x brightness) that
    #: stand out by at least this height.
    nucleus_split_height_px_at_2048: float = 10.0
    #: Extra smoothing of the brightness used for splitting, so that texture inside a
    #: nucleus (dark nucleoli) does not split it.
    nucleus_split_smoothing_sigma_px_at_2048: float = 16.0
    #: Nuclei (and nucleus fragments) smaller than this are dropped.
    min_nucleus_area_px_at_2048: float = 3000.0
    # ---- cells (red + yellow + a little blue)
    #: Weight of the blue channel in the cytoplasm signal (red and yellow weigh 1).
    cytoplasm_blue_weight: float = 0.25
    #: Gaussian smoothing of the cytoplasm signal.
    cytoplasm_smoothing_sigma_px_at_2048: float = 12.0
    #: Cytoplasm foreground starts this fraction of the way from the background level
    #: to the Otsu threshold of the log stain (1 = at that threshold).
    cytoplasm_threshold_fraction: float = 0.5
    #: Cytoplasm must be this much brighter than the background level.
    min_cytoplasm_contrast_u8: float = 0.5
    #: Each cell is cut where its cytoplasm falls below this fraction of the way from
    #: the background level to the cell's own level (the median within the ring below).
    cell_edge_fraction: float = 0.4
    #: Width of the ring of cytoplasm around the nucleus that sets a cell's own level.
    perinuclear_ring_px_at_2048: float = 60.0
    #: Cells reach at most this far from their nucleus.
    max_cytoplasm_thickness_px_at_2048: float = 400.0
    #: Protrusions and bridges thinner than twice this radius are cut off a cell.
    cell_opening_radius_px_at_2048: float = 16.0
    #: Cells (nucleus included) smaller than this are dropped with their nucleus.
    min_cell_area_px_at_2048: float = 8000.0
    # ---- shared
    #: Offset (grey levels) added before taking logarithms of intensities.
    log_offset_u8: float = 1.0

    def __post_init__(self) -> None:
        if self.working_size_px < 1:
            raise InputError(
                f"working_size_px: expected a positive number of pixels, got {self.working_size_px}",
                param="working_size_px",
            )
        for name in ("nucleus_edge_fraction", "cell_edge_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(f"{name}: expected a fraction in [0, 1), got {getattr(self, name)}", param=name)


def working_scale(shape: tuple[int, ...], working_size_px: int) -> tuple[float, float]:
    """Resize factor to the working size, and the size scale there.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W, ...)`` of the input image.
    working_size_px : int
        Target of ``max(H, W)``; images are never enlarged.

    Returns
    -------
    resize : float
        Working pixels per input pixel, ``min(1, working_size_px / max(H, W))``.
    scale : float
        Working pixels per pixel of a 2048-px field of view showing the same field.

    Examples
    --------
    >>> working_scale((2048, 2048, 4), 512)
    (0.25, 0.25)
    >>> working_scale((3072, 3072, 4), 512)
    (0.16666666666666666, 0.25)
    >>> working_scale((256, 300), 512)
    (1.0, 0.146484375)
    """
    longest = max(shape[0], shape[1])
    resize = min(1.0, working_size_px / longest)
    return resize, resize * longest / REFERENCE_SIZE_PX


def _area(area_px_at_2048: float, scale: float) -> int:
    return max(1, int(round(area_px_at_2048 * scale * scale)))


def _log_otsu(x: np.ndarray, offset: float) -> float:
    """Otsu threshold of ``log(x + offset)``, back on the linear scale (robust to
    objects whose brightness varies several-fold)."""
    logs = np.log(x + offset)
    if float(logs.max() - logs.min()) <= 0.0:
        return float(x.max())
    return float(np.exp(filters.threshold_otsu(logs)) - offset)


def segment_nuclei(blue: np.ndarray, *, scale: float, params: WatershedParams = WatershedParams()) -> np.ndarray:
    """Segment nuclei in a nucleus-stain image.

    Smooth; threshold by Otsu on log intensity (so dim nuclei are kept next to bright
    ones), at least ``min_nucleus_contrast`` above the median; fill holes; split
    touching nuclei by a watershed from the maxima of (distance to the edge x broadly
    smoothed brightness) that stand out by ``nucleus_split_height`` (every blob keeps
    at least one); cut each nucleus half way (``nucleus_edge_fraction``) between the
    background and its own bright level, so bright nuclei lose their blur halo and dim
    ones keep their extent; drop small objects.

    Parameters
    ----------
    blue : ndarray, shape (H, W)
        Nucleus stain, grey levels 0-255 (any real or integer dtype).
    scale : float
        Pixels of ``blue`` per pixel of a 2048-px field of view (0.25 for a 2048-px
        image worked at 512 px).
    params : WatershedParams

    Returns
    -------
    ndarray, shape (H, W), int32
        Nuclei 1..N (0 = background).

    Examples
    --------
    >>> blue = np.zeros((64, 64)); blue[20:40, 10:30] = 120; blue[20:40, 40:60] = 60
    >>> labels = segment_nuclei(blue, scale=0.1)
    >>> int(labels.max()), bool(labels[30, 20] != labels[30, 50])
    (2, True)
    """
    p = params
    smooth = filters.gaussian(
        np.asarray(blue, dtype=np.float32), sigma=p.nucleus_smoothing_sigma_px_at_2048 * scale, preserve_range=True
    )
    background = float(np.median(smooth))
    otsu = _log_otsu(smooth, p.log_offset_u8)
    threshold = max(
        background + p.nucleus_threshold_fraction * (otsu - background), background + p.min_nucleus_contrast_u8
    )
    min_area = _area(p.min_nucleus_area_px_at_2048, scale)
    fg = ndi.binary_fill_holes(smooth > threshold)
    fg = morphology.remove_small_objects(fg, max_size=min_area - 1)
    if not fg.any():
        return np.zeros(blue.shape, np.int32)

    # Split: peaks of distance-to-edge weighted by brightness above the threshold.
    blobs, n_blobs = ndi.label(fg)
    bright = float(np.percentile(smooth[fg], _NUCLEI_BRIGHT_PERCENTILE))
    broad = filters.gaussian(smooth, sigma=p.nucleus_split_smoothing_sigma_px_at_2048 * scale, preserve_range=True)
    weight = np.clip((broad - threshold) / max(bright - threshold, np.finfo(np.float32).eps), 0.0, 1.0)
    relief = filters.gaussian(ndi.distance_transform_edt(fg), sigma=_DISTANCE_SMOOTHING_SIGMA_PX) * weight
    peaks = morphology.h_maxima(relief, p.nucleus_split_height_px_at_2048 * scale).astype(bool) & fg
    # Every blob gets at least one marker (at its highest point).
    unmarked = np.setdiff1d(np.arange(1, n_blobs + 1), blobs[peaks])
    if len(unmarked):
        tops = ndi.maximum_position(relief, blobs, unmarked)
        peaks[tuple(np.array(tops, dtype=np.intp).reshape(-1, 2).T)] = True
    markers = measure.label(peaks)
    labels = segmentation.watershed(-relief, markers, mask=fg)

    # Edge of each nucleus at a fixed fraction of its own brightness above background.
    background = float(np.median(smooth[~fg])) if (~fg).any() else background
    out = np.zeros(labels.shape, np.int32)
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        own = labels[sl] == k
        level = float(np.percentile(smooth[sl][own], _NUCLEUS_BRIGHT_PERCENTILE))
        edge = background + p.nucleus_edge_fraction * (level - background)
        keep = ndi.binary_fill_holes(own & (smooth[sl] > edge))
        out[sl][keep] = k
    out = morphology.remove_small_objects(out, max_size=min_area - 1)
    return segmentation.relabel_sequential(out)[0].astype(np.int32)


def grow_cells(
    nuclei: np.ndarray, cytoplasm: np.ndarray, *, scale: float, params: WatershedParams = WatershedParams()
) -> np.ndarray:
    """Grow cells from their nuclei over a cytoplasm stain.

    A generous foreground, ``cytoplasm_threshold_fraction`` of the way from the
    background to the Otsu threshold of the log stain (robust to cells of very
    different brightness) and within ``max_cytoplasm_thickness`` of a nucleus, is
    split by a marker watershed of the inverted stain from the nuclei. Each cell is
    then cut where the stain falls below ``cell_edge_fraction`` of the way from the
    background to the cell's own level (median of the ring next to its nucleus), so
    dim and bright cells both get their own edge; opened to cut thin bridges; reduced
    to the piece holding its nucleus; hole-filled. Regions no nucleus reaches stay
    background, so cells without a nucleus do not arise.

    Parameters
    ----------
    nuclei : ndarray, shape (H, W), int
        Nucleus labels (0 = background); they become the cells' markers.
    cytoplasm : ndarray, shape (H, W)
        Cytoplasm stain, grey levels 0-255 (any real or integer dtype).
    scale : float
        Pixels of the arrays per pixel of a 2048-px field of view.
    params : WatershedParams

    Returns
    -------
    ndarray, shape (H, W), int32
        Cell k grown from nucleus k (same ids as ``nuclei``; 0 = background); every
        nucleus pixel lies in its cell. Cells smaller than ``min_cell_area`` are 0.

    Examples
    --------
    >>> nuc = np.zeros((60, 60), np.int32); nuc[25:35, 10:20] = 1; nuc[25:35, 40:50] = 2
    >>> cyto = np.zeros((60, 60)); cyto[15:45, 3:57] = 80
    >>> cells = grow_cells(nuc, cyto, scale=0.1)
    >>> sorted(np.unique(cells).tolist()), bool(cells[30, 5] == 1), bool(cells[30, 55] == 2)
    ([0, 1, 2], True, True)
    """
    p = params
    nuclei = np.asarray(nuclei, dtype=np.int32)
    if nuclei.shape != cytoplasm.shape:
        raise ValueError(f"nuclei {nuclei.shape} and cytoplasm {cytoplasm.shape} differ in shape")
    if not nuclei.any():
        return np.zeros(nuclei.shape, np.int32)
    smooth = filters.gaussian(
        np.asarray(cytoplasm, dtype=np.float32),
        sigma=p.cytoplasm_smoothing_sigma_px_at_2048 * scale,
        preserve_range=True,
    )
    has_nucleus = nuclei > 0
    background = float(np.percentile(smooth, _CYTOPLASM_BACKGROUND_PERCENTILE))
    otsu = _log_otsu(smooth, p.log_offset_u8)
    threshold = max(
        background + p.cytoplasm_threshold_fraction * (otsu - background), background + p.min_cytoplasm_contrast_u8
    )
    distance = ndi.distance_transform_edt(~has_nucleus)
    reach = distance <= p.max_cytoplasm_thickness_px_at_2048 * scale
    fg = ((smooth > threshold) & reach) | has_nucleus
    cells = segmentation.watershed(-smooth, nuclei, mask=fg)

    # Per-cell edge, relative to the cell's own cytoplasm level next to its nucleus.
    outside = ~fg
    if outside.any():
        background = float(np.median(smooth[outside]))
    near_nucleus = distance <= p.perinuclear_ring_px_at_2048 * scale
    radius = max(1, int(round(p.cell_opening_radius_px_at_2048 * scale)))
    opening = morphology.disk(radius)
    min_area = _area(p.min_cell_area_px_at_2048, scale)
    out = np.zeros(cells.shape, np.int32)
    for k, sl in enumerate(ndi.find_objects(cells), start=1):
        if sl is None:
            continue
        own = cells[sl] == k
        nucleus = nuclei[sl] == k
        ring = own & ~nucleus & near_nucleus[sl]
        level = float(np.median(smooth[sl][ring])) if ring.any() else threshold
        edge = background + p.cell_edge_fraction * (level - background)
        body = (own & (smooth[sl] > edge)) | nucleus
        # Pad by edge replication so cells cut by the image border keep their border pixels.
        padded = np.pad(body, radius, mode="edge")
        body = ndi.binary_opening(padded, structure=opening)[radius:-radius, radius:-radius] | nucleus
        pieces, _ = ndi.label(body)
        keep = np.isin(pieces, np.unique(pieces[nucleus]))
        keep = ndi.binary_fill_holes(keep & own) | nucleus
        if keep.sum() >= min_area:
            out[sl][keep] = k
    return out


def segment_watershed(
    image: np.ndarray, *, params: WatershedParams = WatershedParams()
) -> tuple[np.ndarray, np.ndarray]:
    """Segment cells and nuclei of one RGBY image without trained weights.

    The image is resized to ``params.working_size_px`` (longest side; never enlarged),
    nuclei are found in blue (:func:`segment_nuclei`), cells grown from them over red
    + yellow + a little blue (:func:`grow_cells`), cells without a nucleus and tiny
    ones dropped, and the masks renumbered and resized back (nearest neighbour).

    Parameters
    ----------
    image : ndarray, shape (H, W, 4), uint8
        RGBY.
    params : WatershedParams

    Returns
    -------
    cell_mask, nuclei_mask : ndarray, shape (H, W), int32
        Cells 1..N, the nucleus of cell k labelled k; all zero when nothing is found.
    """
    image = check_rgby(image, "segment_watershed")
    full_shape = image.shape[:2]
    resize, scale = working_scale(full_shape, params.working_size_px)
    work_shape = (max(1, int(round(full_shape[0] * resize))), max(1, int(round(full_shape[1] * resize))))
    channels = image[..., [Channel.RED, Channel.YELLOW, Channel.BLUE]].astype(np.float32)
    red_yellow = channels[..., 0] + channels[..., 1]
    blue = resize_image(channels[..., 2], work_shape)
    cytoplasm = resize_image(red_yellow, work_shape) + params.cytoplasm_blue_weight * blue
    nuclei = segment_nuclei(blue, scale=scale, params=params)
    cells = grow_cells(nuclei, cytoplasm, scale=scale, params=params)
    cells, nuclei = relabel_pair(cells, np.where(cells == nuclei, nuclei, 0), drop_cells_without_nucleus=True)
    return resize_labels(cells, full_shape), resize_labels(nuclei, full_shape)


@dataclass(frozen=True)
class WatershedSegmenter:
    """The ``watershed`` method: :func:`segment_watershed` with fixed parameters."""

    params: WatershedParams = WatershedParams()
    needs_pixels: bool = True

    def segment(self, image: np.ndarray, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`Segmenter`."""
        return segment_watershed(check_rgby(image, image_id), params=self.params)
