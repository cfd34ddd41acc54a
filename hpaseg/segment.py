"""Cell and nucleus segmentation: stage ``hpaseg segment``.

Writes ``{ID}_cellmask.png`` and ``{ID}_nucleimask.png`` for every image: 16-bit PNG
label images at the image's original resolution, 0 = background, cells 1..N, the
nucleus of cell k labelled k (HPA-Cell-Segmentation's format).

Three methods share one interface, :class:`Segmenter` (``segment(image, image_id)
-> (cell_mask, nuclei_mask)``), built by :func:`make_segmenter`:

``watershed`` (default, no weights)
    :func:`segment_watershed`: classical nuclei + marker-watershed cells, computed at
    a working size of 512 px like HPA-Cell-Segmentation (a quarter of 2048 px). Its
    pure steps :func:`segment_nuclei` and :func:`grow_cells` work on arrays of any
    resolution given ``scale``, the pixels of the array per pixel of a 2048-px field
    of view (all sizes in :class:`WatershedParams` are given at that reference).
``hpacellseg``
    :class:`HpaCellSegSegmenter`: the DPN-UNet models of HPA-Cell-Segmentation
    (``pip install 'hpaseg[hpacellseg]'``) followed by its deterministic
    post-processing ``hpacellseg.utils.label_cell``.
``precomputed``
    :class:`PrecomputedSegmenter`: masks made elsewhere, as ``{ID}_cellmask.png`` +
    ``{ID}_nucleimask.png`` or ``{ID}.npz``, checked and renumbered to the convention.

Sizes of other images: an input of ``max(H, W)`` px is taken to show the same field of
view as a 2048-px HPA image (the competition's 1728-3072 px images do), so it is
resized to the working size and every ``*_px_at_2048`` size scales with the image.

:func:`segment_images` runs a segmenter over a folder (skipping finished images,
``--shard I/N`` for job arrays, ``--workers`` processes); :func:`main` is the CLI.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np
from scipy import ndimage as ndi
from skimage import filters, measure, morphology, segmentation, transform

from . import io
from .classes import CHANNEL_NAMES, Channel
from .errors import ArgumentParser, InputError, cli_entry

__all__ = [
    "resize_labels",
    "REFERENCE_SIZE_PX",
    "METHODS",
    "WatershedParams",
    "Segmenter",
    "WatershedSegmenter",
    "HpaCellSegSegmenter",
    "PrecomputedSegmenter",
    "NPZ_CELL_KEYS",
    "NPZ_NUCLEI_KEYS",
    "SegmentSummary",
    "make_segmenter",
    "working_scale",
    "segment_nuclei",
    "grow_cells",
    "segment_watershed",
    "relabel_pair",
    "parse_shard",
    "select_shard",
    "segment_images",
    "build_parser",
    "main",
]

log = logging.getLogger(__name__)

#: Pixels across the field of view that every ``*_px_at_2048`` size refers to.
REFERENCE_SIZE_PX = 2048
#: Segmentation methods, in the order ``--method`` lists them.
METHODS: tuple[str, ...] = ("watershed", "hpacellseg", "precomputed")
#: The largest label a 16-bit PNG mask can hold.
_MAX_LABEL = np.iinfo(np.uint16).max
#: Percentiles (of smoothed intensities) that stand for "the bright level" of the nuclei
#: as a whole (splitting), of one nucleus (its edge), and for the cytoplasm background.
_NUCLEI_BRIGHT_PERCENTILE = 90
_NUCLEUS_BRIGHT_PERCENTILE = 95
_CYTOPLASM_BACKGROUND_PERCENTILE = 1
#: Smoothing (working px) of the distance transform before its maxima are taken.
_DISTANCE_SMOOTHING_SIGMA_PX = 1.0


# =========================================================================== watershed
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
            raise InputError(f"working_size_px: expected a positive number of pixels, got {self.working_size_px}")
        for name in ("nucleus_edge_fraction", "cell_edge_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(f"{name}: expected a fraction in [0, 1), got {getattr(self, name)}")


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
    smooth = filters.gaussian(np.asarray(blue, dtype=np.float32), sigma=p.nucleus_smoothing_sigma_px_at_2048 * scale, preserve_range=True)
    background = float(np.median(smooth))
    otsu = _log_otsu(smooth, p.log_offset_u8)
    threshold = max(background + p.nucleus_threshold_fraction * (otsu - background), background + p.min_nucleus_contrast_u8)
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


def grow_cells(nuclei: np.ndarray, cytoplasm: np.ndarray, *, scale: float, params: WatershedParams = WatershedParams()) -> np.ndarray:
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
    smooth = filters.gaussian(np.asarray(cytoplasm, dtype=np.float32), sigma=p.cytoplasm_smoothing_sigma_px_at_2048 * scale, preserve_range=True)
    has_nucleus = nuclei > 0
    background = float(np.percentile(smooth, _CYTOPLASM_BACKGROUND_PERCENTILE))
    otsu = _log_otsu(smooth, p.log_offset_u8)
    threshold = max(background + p.cytoplasm_threshold_fraction * (otsu - background), background + p.min_cytoplasm_contrast_u8)
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


def relabel_pair(cell_mask: np.ndarray, nuclei_mask: np.ndarray, *, drop_cells_without_nucleus: bool) -> tuple[np.ndarray, np.ndarray]:
    """Bring a cell/nucleus mask pair to the convention: cells 1..N in order of their
    old ids, the nucleus of cell k labelled k and lying inside it.

    Every nucleus object (a connected part of one nucleus label) is given to the
    cell it overlaps most and clipped to it; nucleus pixels outside all cells are
    dropped.

    Parameters
    ----------
    cell_mask, nuclei_mask : ndarray, shape (H, W), int
        Label images with ids of their own (0 = background).
    drop_cells_without_nucleus : bool
        Drop cells that hold no nucleus (else they keep an empty nucleus).

    Returns
    -------
    cell_mask, nuclei_mask : ndarray, shape (H, W), int32

    Examples
    --------
    >>> cells = np.array([[7, 7, 0, 9, 9, 4]]); nuc = np.array([[0, 2, 0, 5, 0, 0]])
    >>> c, n = relabel_pair(cells, nuc, drop_cells_without_nucleus=True)
    >>> c.tolist(), n.tolist()
    ([[1, 1, 0, 2, 2, 0]], [[0, 1, 0, 2, 0, 0]])
    """
    cell_mask = np.asarray(cell_mask)
    nuclei_mask = np.asarray(nuclei_mask)
    if cell_mask.shape != nuclei_mask.shape:
        raise ValueError(f"cell mask {cell_mask.shape} and nucleus mask {nuclei_mask.shape} differ in shape")
    nuc_objects = measure.label(nuclei_mask, background=0)  # connected parts of each nucleus id
    n_objects = int(nuc_objects.max())
    owner = np.zeros(n_objects + 1, np.int64)
    if n_objects:
        inside = (nuc_objects > 0) & (cell_mask > 0)
        pairs, counts = np.unique(np.stack([nuc_objects[inside], cell_mask[inside]]), axis=1, return_counts=True)
        order = np.lexsort((-counts, pairs[0]))  # per object, largest overlap first
        pairs = pairs[:, order]
        first = np.unique(pairs[0], return_index=True)[1]
        owner[pairs[0, first]] = pairs[1, first]
    nucleus_cell = np.where(nuc_objects > 0, owner[nuc_objects], 0)
    nucleus_cell = np.where(nucleus_cell == cell_mask, nucleus_cell, 0)
    cell_ids = np.unique(cell_mask)
    cell_ids = cell_ids[cell_ids > 0]
    if drop_cells_without_nucleus:
        cell_ids = np.intersect1d(cell_ids, np.unique(nucleus_cell))
    if len(cell_ids) > _MAX_LABEL:
        raise InputError(f"{len(cell_ids)} cells: more than a 16-bit mask can number ({_MAX_LABEL})")
    if not len(cell_ids):
        return np.zeros(cell_mask.shape, np.int32), np.zeros(cell_mask.shape, np.int32)
    index = np.minimum(np.searchsorted(cell_ids, cell_mask), len(cell_ids) - 1)
    new_cells = np.where(cell_ids[index] == cell_mask, index + 1, 0).astype(np.int32)
    new_nuclei = np.where(nucleus_cell > 0, new_cells, 0).astype(np.int32)
    return new_cells, new_nuclei


def _resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area-average (anti-aliased) resize of a float image to ``shape``."""
    if image.shape[:2] == tuple(shape):
        return image.astype(np.float32)
    return transform.resize(image.astype(np.float32), shape, order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label image to ``shape`` (pixel centres mapped back; no new label values).

    >>> resize_labels(np.array([[1, 2], [3, 4]]), (4, 4))[0].tolist()
    [1, 1, 2, 2]
    """
    if labels.shape == tuple(shape):
        return labels
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * labels.shape[0] / shape[0]).astype(np.int64), labels.shape[0] - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * labels.shape[1] / shape[1]).astype(np.int64), labels.shape[1] - 1)
    return labels[rows[:, None], cols[None, :]]


def _check_rgby(image: np.ndarray, source: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != len(Channel) or image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{source}: expected an (H, W, 4) RGBY image, got shape {image.shape}")
    return image


def segment_watershed(image: np.ndarray, *, params: WatershedParams = WatershedParams()) -> tuple[np.ndarray, np.ndarray]:
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
    image = _check_rgby(image, "segment_watershed")
    full_shape = image.shape[:2]
    resize, scale = working_scale(full_shape, params.working_size_px)
    work_shape = (max(1, int(round(full_shape[0] * resize))), max(1, int(round(full_shape[1] * resize))))
    channels = image[..., [Channel.RED, Channel.YELLOW, Channel.BLUE]].astype(np.float32)
    red_yellow = channels[..., 0] + channels[..., 1]
    blue = _resize_image(channels[..., 2], work_shape)
    cytoplasm = _resize_image(red_yellow, work_shape) + params.cytoplasm_blue_weight * blue
    nuclei = segment_nuclei(blue, scale=scale, params=params)
    cells = grow_cells(nuclei, cytoplasm, scale=scale, params=params)
    cells, nuclei = relabel_pair(cells, np.where(cells == nuclei, nuclei, 0), drop_cells_without_nucleus=True)
    return resize_labels(cells, full_shape), resize_labels(nuclei, full_shape)


# =========================================================================== segmenters
@runtime_checkable
class Segmenter(Protocol):
    """What :func:`segment_images` runs on each image.

    ``needs_pixels`` is False for segmenters that use only the image's size (then the
    runner passes a zero-copy ``(H, W, 4)`` view instead of decoding the image).
    """

    needs_pixels: bool

    def segment(self, image: np.ndarray, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(cell_mask, nuclei_mask)``, ``(H, W)`` int32 each, for an ``(H, W, 4)``
        uint8 RGBY image: cells 1..N, the nucleus of cell k labelled k."""
        ...


@dataclass(frozen=True)
class WatershedSegmenter:
    """The ``watershed`` method: :func:`segment_watershed` with fixed parameters."""

    params: WatershedParams = WatershedParams()
    needs_pixels: bool = True

    def segment(self, image: np.ndarray, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`Segmenter`."""
        return segment_watershed(_check_rgby(image, image_id), params=self.params)


# ---- hpacellseg
#: Input normalisation the HPA-Cell-Segmentation models were trained with
#: (``hpacellseg.cellsegmentator.NORMALIZE``): per-channel mean and one std, on 0-1 values.
_HPA_NORMALIZE_MEAN: tuple[float, float, float] = (124 / 255, 117 / 255, 104 / 255)
_HPA_NORMALIZE_STD: float = 1 / (0.0167 * 255)
#: ``padding=True`` pads the scaled image by reflection to a multiple of this size (as the package does).
_HPA_PAD_MULTIPLE_PX = 32
_HPA_INSTALL_HINT = "pip install 'hpaseg[hpacellseg]' (or pip install git+https://github.com/CellProfiling/HPA-Cell-Segmentation.git)"
#: Zenodo addresses of the published weights, as named in ``hpacellseg.constants``.
_HPA_WEIGHTS_HINT = "the published weights are dpn_unet_nuclei_v1.pth and dpn_unet_cell_3ch_v1.pth at https://zenodo.org/record/4665863"


def _import_label_cell() -> Any:
    try:
        from hpacellseg.utils import label_cell
    except ImportError as exc:
        raise InputError(
            "--method hpacellseg needs the hpacellseg package (HPA-Cell-Segmentation), "
            f"which cannot be imported ({exc}); install it with {_HPA_INSTALL_HINT}"
        ) from exc
    return label_cell


def _load_model(model: Any, option: str, device: str) -> Any:
    """A torch module as given, or loaded from a file holding a whole pickled model."""
    import torch

    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise InputError(f"{option} {path}: no such weight file; {_HPA_WEIGHTS_HINT}")
        try:
            # The published files are whole pickled modules, not state dicts: only load trusted files.
            model = torch.load(path, map_location=torch.device(device), weights_only=False)
        except ModuleNotFoundError as exc:
            raise InputError(
                f"{option} {path}: unpickling the model needs module {exc.name!r}; the HPA models need pytorch_zoo "
                "(pip install https://github.com/haoxusci/pytorch_zoo/archive/master.zip)"
            ) from exc
        except Exception as exc:  # torch raises many types for a bad file
            raise InputError(f"{option} {path}: cannot load a torch model ({type(exc).__name__}: {exc})") from exc
    if isinstance(model, torch.nn.DataParallel):
        model = model.module
    if not isinstance(model, torch.nn.Module):
        raise InputError(
            f"{option}: expected a whole torch model (an nn.Module, "
            f"as HPA-Cell-Segmentation publishes), got {type(model).__name__}"
        )
    return model.to(device).eval()


class HpaCellSegSegmenter:
    """The ``hpacellseg`` method: HPA-Cell-Segmentation's U-Nets and its ``label_cell``.

    The networks are run here, following ``CellSegmentator.pred_nuclei`` /
    ``pred_cells`` (scale by ``scale_factor`` with anti-aliasing, normalise with the
    package's constants, softmax, background channel zeroed, resize back to the
    original size, uint8), because the package's own runner calls
    ``skimage.transform.rescale(multichannel=True)``, removed from scikit-image, and
    needs OpenCV. Its deterministic post-processing, ``hpacellseg.utils.label_cell``
    (which works at the original resolution), is used as it is; its output is
    renumbered so that cell k holds nucleus k (cells left without a nucleus dropped).

    Parameters
    ----------
    nuclei_model, cell_model : path or torch.nn.Module
        The nucleus model (input: blue three times) and the 3-channel cell model
        (input: red, yellow, blue), as files holding whole pickled models (the
        published ``.pth`` files) or as loaded modules.
    device : str
        ``"cpu"`` or ``"cuda"`` (``"cuda:N"``).
    scale_factor : float
        Images are scaled by this before the networks (0.25 for HPA images).
    padding : bool
        Pad the scaled image by reflection to a multiple of 32 px first (needed for
        sizes the networks cannot take, e.g. 1728 px at scale 0.25).

    Raises
    ------
    InputError
        Package not installed, weight file missing or unreadable, bad device.
    """

    needs_pixels = True

    def __init__(self, nuclei_model: Any, cell_model: Any, *, device: str = "cpu", scale_factor: float = 0.25, padding: bool = False) -> None:
        import torch

        self._label_cell = _import_label_cell()
        if not (device == "cpu" or device.startswith("cuda")):
            raise InputError(f"--device: expected 'cpu' or 'cuda[:N]', got {device!r}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"--device {device}: no CUDA device is available here; use --device cpu")
        if not 0.0 < scale_factor <= 1.0:
            raise InputError(f"--scale-factor: expected a value in (0, 1], got {scale_factor}")
        self.device = device
        self.scale_factor = float(scale_factor)
        self.padding = bool(padding)
        self.nuclei_model = _load_model(nuclei_model, "--nuclei-model", device)
        self.cell_model = _load_model(cell_model, "--cell-model", device)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_label_cell"]  # re-imported in worker processes
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._label_cell = _import_label_cell()

    def predict(self, model: Any, rgb: np.ndarray) -> np.ndarray:
        """Run one network on an ``(H, W, 3)`` uint8 image.

        Returns
        -------
        ndarray, shape (H, W, 3), uint8
            Class probabilities x 255 (background, border, interior), background zeroed,
            at the input's size: what ``CellSegmentator.pred_*`` return.
        """
        import torch

        height, width = rgb.shape[:2]
        scaled = transform.rescale(rgb, self.scale_factor, channel_axis=-1)  # float64 in [0, 1]
        rows, cols = scaled.shape[:2]
        top = left = 0
        if self.padding:
            top = left = _HPA_PAD_MULTIPLE_PX
            pad = ((top, _HPA_PAD_MULTIPLE_PX - rows % _HPA_PAD_MULTIPLE_PX), (left, _HPA_PAD_MULTIPLE_PX - cols % _HPA_PAD_MULTIPLE_PX), (0, 0))
            scaled = np.pad(scaled, pad, mode="symmetric")
        x = torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1), dtype=np.float32))[None].to(self.device)
        mean = torch.tensor(_HPA_NORMALIZE_MEAN, dtype=torch.float32, device=self.device)[:, None, None]
        x = (x - mean) / _HPA_NORMALIZE_STD
        with torch.no_grad():
            prob = torch.softmax(model(x), dim=1)[0].cpu().numpy()
        prob = prob[:, top : top + rows, left : left + cols].transpose(1, 2, 0).copy()
        prob[..., 0] = 0.0
        prob = transform.resize(prob, (height, width), order=0, anti_aliasing=False)  # nearest, as cv2 INTER_AREA enlarging
        return np.rint(np.clip(prob, 0.0, 1.0) * 255).astype(np.uint8)

    def segment(self, image: np.ndarray, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`Segmenter`."""
        import warnings

        image = _check_rgby(image, image_id)
        blue = image[..., Channel.BLUE]
        nuclei_pred = self.predict(self.nuclei_model, np.dstack([blue, blue, blue]))
        cell_pred = self.predict(self.cell_model, np.dstack([image[..., Channel.RED], image[..., Channel.YELLOW], blue]))
        with warnings.catch_warnings():  # label_cell uses skimage arguments deprecated since 0.26
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            nuclei_label, cell_label = self._label_cell(nuclei_pred, cell_pred)
        return relabel_pair(np.asarray(cell_label), np.asarray(nuclei_label), drop_cells_without_nucleus=True)


# ---- precomputed
#: Accepted names of the two arrays in a precomputed ``{ID}.npz``.
NPZ_CELL_KEYS: tuple[str, ...] = ("cell_mask", "cellmask")
NPZ_NUCLEI_KEYS: tuple[str, ...] = ("nuclei_mask", "nucleimask")


@dataclass(frozen=True)
class PrecomputedSegmenter:
    """The ``precomputed`` method: masks made elsewhere, read from ``mask_dir``.

    For image ``ID`` it reads ``{ID}_cellmask.png`` + ``{ID}_nucleimask.png`` or
    ``{ID}.npz`` (arrays ``cell_mask``/``cellmask`` and ``nuclei_mask``/``nucleimask``),
    checks they have the image's size, and renumbers them with :func:`relabel_pair`
    (cells kept even without a nucleus). A cell mask alone is an error: nothing is
    derived from it.
    """

    mask_dir: Path
    needs_pixels: bool = False

    def __post_init__(self) -> None:
        if not Path(self.mask_dir).is_dir():
            raise InputError(
                f"--precomputed {self.mask_dir}: no such folder; "
                f"expected a folder of {{ID}}_cellmask.png + {{ID}}_nucleimask.png or {{ID}}.npz files"
            )

    def read(self, image_id: str) -> tuple[np.ndarray, np.ndarray, Path]:
        """Read the mask pair of one image as stored; returns ``(cell, nuclei, source file)``."""
        mask_dir = Path(self.mask_dir)
        cell_path, nuc_path = io.mask_paths(mask_dir, image_id)
        npz_path = mask_dir / f"{image_id}.npz"
        if cell_path.is_file() or nuc_path.is_file():
            for present, absent in ((cell_path, nuc_path), (nuc_path, cell_path)):
                if present.is_file() and not absent.is_file():
                    raise InputError(
                        f"{absent}: missing; found {present.name} but precomputed masks need both the cell and the nucleus mask "
                        "(nothing is derived from one alone)"
                    )
            cell, nuclei = io.read_mask_pair(mask_dir, image_id)
            return cell, nuclei, cell_path
        if not npz_path.is_file():
            raise InputError(
                f"{mask_dir}: no precomputed masks for image {image_id!r}; "
                f"expected {cell_path.name} + {nuc_path.name} or {npz_path.name}"
            )
        try:
            with np.load(npz_path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except Exception as exc:  # zipfile/numpy raise many types for a bad archive
            raise InputError(f"{npz_path}: cannot read as .npz ({type(exc).__name__}: {exc})") from exc
        cell_key = next((k for k in NPZ_CELL_KEYS if k in arrays), None)
        nuc_key = next((k for k in NPZ_NUCLEI_KEYS if k in arrays), None)
        if cell_key is None or nuc_key is None:
            raise InputError(
                f"{npz_path}: has arrays {sorted(arrays) or 'none'}; expected a cell mask under {' or '.join(map(repr, NPZ_CELL_KEYS))} "
                f"and a nucleus mask under {' or '.join(map(repr, NPZ_NUCLEI_KEYS))} (nothing is derived from a cell mask alone)"
            )
        cell, nuclei = arrays[cell_key], arrays[nuc_key]
        for key, array in ((cell_key, cell), (nuc_key, nuclei)):
            if array.ndim != 2 or not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
                raise InputError(
                    f"{npz_path}: array {key!r} has shape {array.shape} dtype {array.dtype}; "
                    "expected a 2-D integer label image"
                )
        if cell.shape != nuclei.shape:
            raise InputError(f"{npz_path}: {cell_key!r} is {cell.shape} but {nuc_key!r} is {nuclei.shape}; they must match")
        return cell.astype(np.int64), nuclei.astype(np.int64), npz_path

    def segment(self, image: np.ndarray, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`Segmenter`; only ``image.shape`` is used."""
        cell, nuclei, source = self.read(image_id)
        height, width = image.shape[:2]
        if cell.shape != (height, width):
            raise InputError(
                f"{source}: mask is {cell.shape[1]}x{cell.shape[0]} px (WxH) but image {image_id!r} is {width}x{height} px; "
                "precomputed masks must be at the image's original resolution"
            )
        if (cell < 0).any() or (nuclei < 0).any():
            raise InputError(f"{source}: negative labels; expected 0 = background and positive cell ids")
        new_cell, new_nuclei = relabel_pair(cell, nuclei, drop_cells_without_nucleus=False)
        n_outside = int(np.count_nonzero((nuclei > 0) & (new_nuclei == 0)))
        if n_outside:
            log.warning("%s: %d nucleus pixels lie outside the cell they overlap most and were dropped", source, n_outside)
        return new_cell, new_nuclei


def make_segmenter(method: str, **options: Any) -> Segmenter:
    """Build the segmenter of one method.

    Parameters
    ----------
    method : {"watershed", "hpacellseg", "precomputed"}
    **options
        ``watershed``: fields of :class:`WatershedParams` (e.g. ``working_size_px``);
        ``hpacellseg``: the arguments of :class:`HpaCellSegSegmenter`;
        ``precomputed``: ``mask_dir``.

    Raises
    ------
    InputError
        Unknown method or option, or what the segmenter itself rejects.
    """
    builders: dict[str, tuple[Any, tuple[str, ...]]] = {
        "watershed": (lambda **kw: WatershedSegmenter(WatershedParams(**kw)), tuple(WatershedParams.__dataclass_fields__)),
        "hpacellseg": (HpaCellSegSegmenter, ("nuclei_model", "cell_model", "device", "scale_factor", "padding")),
        "precomputed": (lambda mask_dir: PrecomputedSegmenter(Path(mask_dir)), ("mask_dir",)),
    }
    if method not in builders:
        raise InputError(f"--method: unknown segmentation method {method!r}; expected one of {', '.join(METHODS)}")
    build, accepted = builders[method]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InputError(f"method {method!r}: unknown option(s) {', '.join(unknown)}; it accepts {', '.join(accepted)}")
    try:
        return build(**options)
    except TypeError as exc:
        raise InputError(f"method {method!r}: {exc}") from exc


# =========================================================================== runner
def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``--shard I/N`` (0-based shard ``I`` of ``N``).

    >>> parse_shard("1/4")
    (1, 4)
    >>> parse_shard("3/2")
    Traceback (most recent call last):
    ...
    hpaseg.errors.InputError: --shard: expected I/N with 0 <= I < N (e.g. 0/4 for the first of 4 shards), got '3/2'
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise InputError(f"--shard: expected I/N with 0 <= I < N (e.g. 0/4 for the first of 4 shards), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def select_shard(ids: Sequence[str], index: int, count: int) -> list[str]:
    """Every ``count``-th ID of the sorted list, starting at ``index``.

    >>> select_shard(["c", "a", "b", "d", "e"], 1, 2)
    ['b', 'd']
    """
    if not 0 <= index < count:
        raise InputError(f"--shard: expected 0 <= I < N, got {index}/{count}")
    return sorted(ids)[index::count]


@dataclass(frozen=True)
class SegmentSummary:
    """What :func:`segment_images` did."""

    n_segmented: int
    n_skipped: int
    n_cells: int
    seconds: float

    def line(self) -> str:
        """One-line summary."""
        per_image = self.seconds / self.n_segmented if self.n_segmented else 0.0
        return (
            f"segmented {self.n_segmented} images, skipped {self.n_skipped} already done; "
            f"{self.n_cells} cells found; {per_image:.2f} s/image"
        )


_WORKER_SEGMENTER: Segmenter | None = None


def _init_worker(segmenter: Segmenter) -> None:
    global _WORKER_SEGMENTER
    _WORKER_SEGMENTER = segmenter


def _segment_and_write(segmenter: Segmenter | None, out_dir: Path, image_id: str, image: np.ndarray | tuple[int, ...]) -> tuple[str, int]:
    """Segment one image and write its masks; ``image`` may be just its shape (for
    segmenters that need no pixels). ``segmenter=None`` uses the worker's own."""
    segmenter = segmenter if segmenter is not None else _WORKER_SEGMENTER
    if segmenter is None:
        raise RuntimeError("worker process not initialised with a segmenter")
    if isinstance(image, tuple):
        image = _shape_only(image)
    cells, nuclei = segmenter.segment(image, image_id)
    if cells.shape != image.shape[:2] or nuclei.shape != image.shape[:2]:
        raise RuntimeError(f"{image_id}: segmenter returned masks {cells.shape}/{nuclei.shape} for an image of {image.shape[:2]}")
    io.write_mask_pair(out_dir, image_id, cells, nuclei)
    return image_id, int(cells.max())


def _iter_inputs(data_dir: Path, ids: Sequence[str], segmenter: Segmenter, read_threads: int) -> Iterator[tuple[str, np.ndarray]]:
    if getattr(segmenter, "needs_pixels", True):
        yield from io.iter_rgby(data_dir, ids, workers=read_threads)
    else:
        for image_id in ids:
            yield image_id, _shape_only((*io.read_image_size(data_dir, image_id, all_channels=True), len(Channel)))


def _shape_only(shape: tuple[int, ...]) -> np.ndarray:
    """A zero-copy all-zero uint8 array of ``shape`` (for segmenters that need no pixels)."""
    return np.broadcast_to(np.zeros((), np.uint8), shape)


def segment_images(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    ids: Sequence[str] | None,
    segmenter: Segmenter,
    *,
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    overwrite: bool = False,
    read_threads: int = 4,
) -> SegmentSummary:
    """Segment a folder of images and write their mask pairs.

    Parameters
    ----------
    data_dir : path
        Folder of ``{ID}_{red,green,blue,yellow}.png`` files.
    out_dir : path
        Where ``{ID}_cellmask.png`` / ``{ID}_nucleimask.png`` go (written atomically,
        the cell mask last: its presence marks a finished image).
    ids : sequence of str, optional
        Images to do (default: all in ``data_dir``).
    segmenter : Segmenter
    workers : int
        Processes that segment (and write); 1 runs in this process.
    shard : (int, int), optional
        ``(I, N)``: do only every N-th ID of the sorted list, starting at I.
    overwrite : bool
        Redo images whose cell mask exists (default: skip them).
    read_threads : int
        Threads decoding images ahead of the segmenters.

    Returns
    -------
    SegmentSummary

    Raises
    ------
    InputError
        No images, an unknown ID, a missing or corrupt image; images finished before
        the error keep their masks.
    """
    from tqdm import tqdm

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if workers < 1:
        raise InputError(f"--workers: expected at least 1, got {workers}")
    available = io.list_image_ids(data_dir)
    if not available:
        raise InputError(f"{data_dir}: no images; expected {{ID}}_{{{','.join(CHANNEL_NAMES)}}}.png files")
    if ids is None:
        selected = available
    else:
        known = set(available)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise InputError(
                f"--ids: image(s) {', '.join(map(repr, unknown[:5]))} not in {data_dir} "
                f"(no {{ID}}_green file); it has {len(available)} images, e.g. {', '.join(available[:3])}"
            )
        selected = sorted(set(ids))
    if shard is not None:
        selected = select_shard(selected, *shard)
    done = [] if overwrite else [i for i in selected if io.mask_paths(out_dir, i)[0].is_file()]
    todo = [i for i in selected if i not in set(done)]
    if done:
        print(f"skipping {len(done)} of {len(selected)} images already segmented in {out_dir} (--overwrite redoes them)")
    out_dir.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    n_cells = 0
    bar = tqdm(total=len(todo), unit="img", desc="segment", disable=None, file=sys.stderr)
    inputs = _iter_inputs(data_dir, todo, segmenter, read_threads)
    try:
        if workers == 1:
            for image_id, image in inputs:
                n_cells += _segment_and_write(segmenter, out_dir, image_id, image)[1]
                bar.update()
        else:
            import multiprocessing

            context = multiprocessing.get_context("spawn")  # no fork after torch/OpenMP threads started
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(segmenter,))
            pending: list[Future] = []
            try:
                for image_id, image in inputs:
                    payload = image if getattr(segmenter, "needs_pixels", True) else image.shape
                    pending.append(pool.submit(_segment_and_write, None, out_dir, image_id, payload))
                    while len(pending) >= 2 * workers:
                        n_cells += pending.pop(0).result()[1]
                        bar.update()
                for future in pending:
                    n_cells += future.result()[1]
                    bar.update()
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
    return SegmentSummary(len(todo), len(done), n_cells, time.perf_counter() - start)


# =========================================================================== CLI
def build_parser() -> ArgumentParser:
    """The ``hpaseg segment`` argument parser."""
    parser = ArgumentParser(
        prog="hpaseg segment",
        description=(
            "Segment cells and nuclei: write {ID}_cellmask.png and {ID}_nucleimask.png "
            "(16-bit, original size, cell k holds nucleus k)."
        ),
    )
    files = parser.add_argument_group("input and output")
    files.add_argument("--data", required=True, type=Path, metavar="IMAGE_DIR", help="folder of {ID}_{red,green,blue,yellow}.png images")
    files.add_argument("--out", required=True, type=Path, metavar="MASKS", help="folder for the mask PNGs")
    files.add_argument("--ids", nargs="+", metavar="ID", help="segment only these images (default: all)")
    method = parser.add_argument_group("method")
    method.add_argument("--method", choices=METHODS, default="watershed", help=(
        "watershed (default, no weights), hpacellseg "
        "(HPA-Cell-Segmentation models) or precomputed (read masks)"
    ))
    method.add_argument("--working-size-px", type=int, default=WatershedParams.working_size_px, help=(
        "watershed: longest side of the working image "
        "(default %(default)s)"
    ))
    method.add_argument("--precomputed", type=Path, metavar="DIR", help=(
        "precomputed: folder of {ID}_cellmask.png "
        "+ {ID}_nucleimask.png or {ID}.npz"
    ))
    hpa = parser.add_argument_group("hpacellseg method")
    hpa.add_argument("--nuclei-model", type=Path, metavar="PATH", help=(
        "nucleus model file (dpn_unet_nuclei_v1.pth); "
        "trusted files only (whole pickled model)"
    ))
    hpa.add_argument("--cell-model", type=Path, metavar="PATH", help="3-channel cell model file (dpn_unet_cell_3ch_v1.pth)")
    hpa.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    hpa.add_argument("--scale-factor", type=float, default=0.25, help="scale images by this before the networks (default 0.25)")
    hpa.add_argument("--padding", action="store_true", help="pad scaled images to a multiple of 32 px (for e.g. 1728-px images)")
    run = parser.add_argument_group("execution")
    run.add_argument("--workers", type=int, default=1, help="segmenting processes (default 1: in this process)")
    run.add_argument("--read-threads", type=int, default=4, help="image-decoding threads (default 4)")
    run.add_argument("--shard", metavar="I/N", help="do only every N-th image of the sorted list, starting at I (0-based): 0/4 .. 3/4 for 4 array tasks")
    run.add_argument("--overwrite", action="store_true", help="redo images whose masks exist (default: skip them)")
    return parser


def _options(args: Any) -> dict[str, Any]:
    """Options of the chosen method; options of another method are an error."""
    given = {"--precomputed": args.precomputed, "--nuclei-model": args.nuclei_model, "--cell-model": args.cell_model}
    owner = {"--precomputed": "precomputed", "--nuclei-model": "hpacellseg", "--cell-model": "hpacellseg"}
    for option, value in given.items():
        if value is not None and owner[option] != args.method:
            raise InputError(f"{option} is only used with --method {owner[option]} (got --method {args.method})")
    if args.method == "watershed":
        return {"working_size_px": args.working_size_px}
    if args.method == "precomputed":
        if args.precomputed is None:
            raise InputError("--method precomputed needs --precomputed DIR (the folder of the masks)")
        return {"mask_dir": args.precomputed}
    missing = [o for o in ("--nuclei-model", "--cell-model") if given[o] is None]
    if missing:
        raise InputError(f"--method hpacellseg needs {' and '.join(missing)} PATH; {_HPA_WEIGHTS_HINT}")
    return {
        "nuclei_model": args.nuclei_model,
        "cell_model": args.cell_model,
        "device": args.device,
        "scale_factor": args.scale_factor,
        "padding": args.padding,
    }


@cli_entry("segment")
def main(argv: Sequence[str] | None = None) -> int:
    """``hpaseg segment``: see :func:`build_parser`; returns 0, or 2 on bad input."""
    args = build_parser().parse_args(argv)
    shard = parse_shard(args.shard) if args.shard is not None else None
    if args.read_threads < 1:
        raise InputError(f"--read-threads: expected at least 1, got {args.read_threads}")
    segmenter = make_segmenter(args.method, **_options(args))
    summary = segment_images(
        args.data, args.out, args.ids, segmenter, workers=args.workers, shard=shard, overwrite=args.overwrite, read_threads=args.read_threads
    )
    print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
