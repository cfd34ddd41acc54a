"""The built-in segmenter (``method="watershed"``): cells and nuclei of HPA RGBY fields
without HPA-Cell-Segmentation's networks (its only weights, a few kB, ship with hpaseg).

Aim: agree with HPA-Cell-Segmentation (the masks of the Kaggle HPA-SCC data) without
its networks. Its post-processing (``hpacellseg.utils.label_cell``) turns two network
maps into labels: nuclei from a nucleus map; cells by a marker watershed of the
negated *cell-interior* map, seeded by the nuclei, inside ``interior > threshold``
and outside the predicted cell *borders*; holes filled, small objects dropped, and
no cell without a nucleus. This module keeps that structure and replaces each network
map by a classical estimate with a physical meaning:

* nucleus map: the smoothed blue channel, thresholded on its own statistics; touching
  nuclei split at the maxima of a brightness-weighted distance map, and pieces joined
  again where the neck between them is wide relative to the narrower piece (a nucleus
  with a waist, not two nuclei);
* cell interior: the smoothed microtubule + ER stain (red + yellow). Everything
  measurably above the black floor of the field is cell, so cells follow dim
  microtubules into thin protrusions as HPA's cell model does;
* cell borders: the flood runs over the negated, lightly smoothed stain plus a barrier
  proportional to its gradient, so neighbours part along dark seams *and* along steps
  from a bright cell to a dim one (where plain intensity flooding lets the bright cell
  overrun the dim one);
* no cell without a nucleus: cytoplasm that no nucleus reaches without crossing a deep
  seam belongs to a cell whose nucleus lies outside the field and is left out.

By default (``cell_maps="learned"``) the cell interior and the relief come instead from
a small per-pixel model fitted on real fields with HPA-Cell-Segmentation masks
(:mod:`hpaseg.segmentation.cellmaps`: cell probability and distance to the cell's edge;
:func:`learned_interior_map`); the classical maps above remain as ``cell_maps="classical"``.
The classical maps put the border between touching cells of even brightness wherever the
brighter flood arrives first; the learned distance map puts it where HPA's does
(leave-one-field-out figures in ``benchmarks/RESULTS.md``).

Everything runs at a working size of 512 px (HPA's networks also see a quarter of a
2048-px field) and the labels are scaled back by nearest neighbour. All lengths and
areas are given at a 2048-px field of view (``*_px_at_2048``); an image of ``max(H, W)``
px is taken to show the same field of view as a 2048-px HPA image, so e.g. 1728- and
3072-px images are worked at 512 px with the same physical sizes.

The defaults of ``nucleus_merge_neck_fraction`` and ``seam_fraction`` were chosen by
leave-one-field-out over 7 real Kaggle fields with HPA-Cell-Segmentation masks
(``python -m hpaseg.bench segreal``: pooled F1 at IoU 0.6 of 0.878 left-out, 0.886
in-sample, against 0.865 before); ``relief_distance_weight`` (a Voronoi-like cost) stays
off: no fold chose it (it helps confluent fields of even brightness and breaks cells with
long protrusions, whose tips lie nearer a neighbour's nucleus).

Entry point: :func:`segment_watershed` (RGBY image -> cell mask, nucleus mask). Steps:
:func:`segment_nuclei`, :func:`interior_map`, :func:`grow_cells`. Agreement with
HPA-Cell-Segmentation on real fields is measured by ``python -m hpaseg.bench segment --reference``
(``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage import morphology, segmentation

from ..classes import REFERENCE_SIZE_PX, Channel
from ..errors import InputError
from ..transforms import resize_image, resize_labels
from .base import check_rgby, relabel_pair
from .cellmaps import CellMapModel, load_cell_map_model, predict_maps
from .ops import blur as _blur
from .ops import distance_inside as _distance
from .ops import log_otsu as _log_otsu
from .ops import scaled_shape

__all__ = [
    "CELL_MAPS",
    "InteriorMap",
    "WatershedParams",
    "WatershedSegmenter",
    "grow_cells",
    "interior_map",
    "learned_interior_map",
    "segment_nuclei",
    "segment_watershed",
    "working_scale",
]


#: Values of :attr:`WatershedParams.cell_maps`.
CELL_MAPS = ("learned", "classical")
#: Relief floor of the learned maps: edge distances under this fraction of the typical
#: cell's are no candidate cytoplasm peaks (see :func:`_orphan_pixels`).
LEARNED_RELIEF_FLOOR = 0.1


@dataclass(frozen=True)
class WatershedParams:
    """Parameters of :func:`segment_cells`.

    Lengths are pixels of a 2048-px field of view (``*_px_at_2048``; there an HPA
    nucleus is ~150-250 px across and a cell ~300-800 px), areas are pixel counts at
    that resolution; intensities are grey levels of the 8-bit channels (``*_u8``);
    fractions and weights are dimensionless.
    """

    #: Longest side (px) of the working image (images are never enlarged).
    working_size_px: int = 512

    # ---- nuclei (blue)
    #: Gaussian smoothing (sigma) of blue before thresholding: removes chromatin texture
    #: and photon noise, keeps nuclear edges (a nucleus is ~150-250 px across).
    nucleus_smoothing_px_at_2048: float = 8.0
    #: Nuclei are above Otsu's threshold of log blue (robust to bright and dim nuclei
    #: side by side) and at least this much brighter than the median (background) blue.
    nucleus_min_contrast_u8: float = 5.0
    #: Blobs smaller than this (as detected, and again after the per-nucleus edge cut)
    #: are not nuclei (debris, micronuclei; a nucleus cut by the image border counts by
    #: its visible part). HPA-Cell-Segmentation drops nuclei under 2500 px at full size.
    min_nucleus_area_px_at_2048: float = 2500.0
    #: Touching nuclei are split at maxima of (distance to the blob edge) x (brightness)
    #: that stand out by at least this height: a lobe whose half-width exceeds the
    #: neck's by more than this is a nucleus of its own.
    nucleus_split_height_px_at_2048: float = 10.0
    #: Smoothing of the brightness that weights the distance map, so that chromatin
    #: texture and dark nucleoli do not split a nucleus.
    nucleus_split_smoothing_px_at_2048: float = 16.0
    #: Each nucleus' mask is cut at this fraction of the way from the background to its
    #: own bright level (0.5 = half maximum), so dim nuclei keep their extent and bright
    #: ones lose their blur halo.
    nucleus_edge_fraction: float = 0.5
    #: Two touching pieces of a split nucleus blob are joined again when the neck between
    #: them is at least this fraction of the narrower piece's width (the pass of the
    #: brightness-weighted distance map between them over the lower of their two peaks):
    #: a lobe or a nucleus cut through its middle has a wide neck, two nuclei pressed
    #: together a narrow one. The absolute ``nucleus_split_height`` alone splits large
    #: nuclei with a shallow waist. 0 = off (any split stands).
    nucleus_merge_neck_fraction: float = 0.7

    # ---- cell interior (red + yellow)
    #: Gaussian smoothing (sigma) of red + yellow for the interior mask: about the
    #: spacing of microtubule bundles, so a fibrous region reads as one body.
    interior_smoothing_px_at_2048: float = 8.0
    #: A pixel is cell interior when smoothed red + yellow exceeds the background level
    #: by this many grey levels (about 3.5 per channel over the black floor of 8-bit HPA
    #: fields: dim microtubules count, the noise floor and blur halos do not)...
    interior_min_contrast_u8: float = 7.0
    #: ... or by this fraction of the typical cytoplasm level above background, if that
    #: is larger (guards very bright fields, whose blur halos are brighter too).
    interior_contrast_fraction: float = 0.1
    #: ... but at most this fraction of the typical level: in a dim field (cells only a
    #: few grey levels above the floor) the absolute floor would leave no cytoplasm.
    dim_contrast_fraction: float = 0.25
    #: Low percentile of the smoothed red + yellow taken as the background level (a
    #: field has some cell-free pixels; HPA's 8-bit fields have a black floor).
    background_percentile: float = 2.0
    #: Radius of the opening that strips one-pixel noise fringes off the interior mask
    #: (real protrusions are wider than twice it). 0 = none.
    interior_opening_px_at_2048: float = 4.0

    # ---- cells (watershed from the nuclei)
    #: Smoothing (sigma) of red + yellow for the watershed relief: removes the texture of
    #: the ER network and single fibres but keeps the seams between cells.
    relief_smoothing_px_at_2048: float = 10.0
    #: Weight of the edge barrier: the flood's cost is raised by weight x sigma x
    #: |gradient| of the relief. A blurred step of height D has a peak gradient of
    #: D / (sigma sqrt(2 pi)), so above ~1.25 the step from a bright cell to a dim one
    #: is a higher barrier than the dim cell's own level: the boundary stays on the step
    #: (2 leaves room for steps blurred more than by the smoothing alone).
    relief_edge_weight: float = 2.0
    #: A *seam* between two regions of cytoplasm is a dip of the relief below this
    #: fraction of the regions' peak brightness (or of the typical cytoplasm level, if
    #: lower). Cytoplasm that no nucleus reaches without crossing a seam belongs to a
    #: cell whose nucleus is out of the field and is left out (HPA makes no cell without
    #: a nucleus). 0 = off.
    seam_fraction: float = 0.5
    #: Cells (nucleus included) smaller than this are dropped with their nucleus.
    #: HPA-Cell-Segmentation drops cells under 5500 px at full size.
    min_cell_area_px_at_2048: float = 5500.0
    #: Cost of distance in the flood: every ``distance_unit_px_at_2048`` px away from the
    #: nearest nucleus raises the surface by this many typical cytoplasm levels. Where no
    #: seam or step parts two cells (confluent cells of even brightness) the boundary then
    #: falls between the nuclei (a Voronoi split) instead of wherever the brighter cell's
    #: flood arrives first. 0 = off.
    relief_distance_weight: float = 0.0
    #: Length over which ``relief_distance_weight`` is counted: about a nucleus radius.
    distance_unit_px_at_2048: float = 100.0

    # ---- which maps the cells grow over
    #: ``"learned"``: the cell probability and edge-distance maps of a small per-pixel
    #: model fitted on real fields with HPA-Cell-Segmentation masks and real-like synthetic ones
    #: (:mod:`hpaseg.segmentation.cellmaps`, weights shipped with hpaseg); ``"classical"``:
    #: the smoothed microtubule + ER stain (:func:`interior_map`). Leave-one-field-out over
    #: seven real fields, F1 at IoU 0.6: see ``benchmarks/RESULTS.md``.
    cell_maps: str = "learned"
    #: Path of the cell-map model (``.npz``); empty = the one shipped with hpaseg.
    cell_map_model: str = ""

    def __post_init__(self) -> None:
        if self.working_size_px < 16:
            raise InputError(
                f"working_size_px: expected at least 16 pixels, got {self.working_size_px}", param="working_size_px"
            )
        for name in (
            "nucleus_edge_fraction",
            "nucleus_merge_neck_fraction",
            "interior_contrast_fraction",
            "dim_contrast_fraction",
            "seam_fraction",
        ):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise InputError(f"{name}: expected a fraction in [0, 1), got {value}", param=name)
        for name, value in vars(self).items():
            if (name.endswith(("_px_at_2048", "_u8", "_weight"))) and value < 0:
                raise InputError(f"{name}: expected >= 0, got {value}", param=name)
        if self.cell_maps not in CELL_MAPS:
            raise InputError(
                f"cell_maps: expected one of {', '.join(CELL_MAPS)}, got {self.cell_maps!r}", param="cell_maps"
            )
        if not 0.0 <= self.background_percentile <= 50.0:
            raise InputError(
                f"background_percentile: expected 0-50, got {self.background_percentile}", param="background_percentile"
            )


class InteriorMap(NamedTuple):
    """Classical stand-in for HPA's cell-interior map (see :func:`interior_map`)."""

    #: (H, W) float32: red + yellow smoothed by ``interior_smoothing``, grey levels.
    interior: np.ndarray
    #: Interior level (grey levels of ``interior``).
    threshold: float
    #: (H, W) float32: red + yellow smoothed by ``relief_smoothing``, minus background,
    #: in units of the typical cytoplasm level (1.0 = typical cytoplasm).
    relief: np.ndarray
    #: The interior threshold in the units of ``relief``.
    relief_floor: float


# --------------------------------------------------------------------------- helpers
def _area(area_px_at_2048: float, scale: float) -> int:
    return max(1, round(area_px_at_2048 * scale * scale))


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components: (labels int32, count)."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    return labels, n - 1


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


# --------------------------------------------------------------------------- steps
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


def segment_nuclei(blue: np.ndarray, *, scale: float, params: WatershedParams = WatershedParams()) -> np.ndarray:
    """Segment nuclei in a nucleus-stain image.

    Smooth; threshold at Otsu's level of log intensity, but at least
    ``nucleus_min_contrast_u8`` above the median; fill holes; drop blobs smaller than
    ``min_nucleus_area``. Touching nuclei are split by a watershed from the maxima of
    (distance to the blob edge) x (broadly smoothed brightness) that stand out by
    ``nucleus_split_height`` (every blob keeps one). Each nucleus is then cut at
    ``nucleus_edge_fraction`` of the way from the background to its own bright level
    and dropped if that leaves less than ``min_nucleus_area``.

    Parameters
    ----------
    blue : ndarray, shape (H, W), float32 (or any real dtype)
        Nucleus stain, grey levels 0-255.
    scale : float
        Pixels of ``blue`` per pixel of a 2048-px field of view (0.25 for a 2048-px
        field worked at 512 px).
    params : WatershedParams

    Returns
    -------
    ndarray, shape (H, W), int32
        Nuclei 1..N (0 = background).

    Examples
    --------
    >>> blue = np.zeros((64, 64), np.float32); blue[20:40, 5:25] = 120; blue[20:40, 38:58] = 60
    >>> labels = segment_nuclei(blue, scale=0.1)
    >>> int(labels.max()), bool(labels[30, 15] != labels[30, 48])
    (2, True)
    """
    p = params
    blue = np.asarray(blue, dtype=np.float32)
    smooth = _blur(blue, p.nucleus_smoothing_px_at_2048 * scale)
    background = float(np.median(smooth))
    threshold = max(_log_otsu(smooth), background + p.nucleus_min_contrast_u8)
    min_area = _area(p.min_nucleus_area_px_at_2048, scale)
    fg = ndi.binary_fill_holes(smooth > threshold)
    blobs, n_blobs = _label(fg)
    if n_blobs == 0:
        return np.zeros(blue.shape, np.int32)
    keep = np.bincount(blobs.ravel(), minlength=n_blobs + 1) >= min_area
    keep[0] = False
    fg = keep[blobs]
    if not fg.any():
        return np.zeros(blue.shape, np.int32)

    # Split touching nuclei: maxima of distance x brightness with enough height.
    bright = float(np.percentile(smooth[fg], 90))
    broad = _blur(smooth, p.nucleus_split_smoothing_px_at_2048 * scale)
    weight = np.clip((broad - threshold) / max(bright - threshold, 1e-6), 0.0, 1.0)
    relief = (_blur(_distance(fg), p.nucleus_smoothing_px_at_2048 * scale) * weight).astype(np.float64)
    relief[~fg] = 0.0
    height = p.nucleus_split_height_px_at_2048 * scale
    blobs, n_blobs = _label(fg)
    peaks = np.zeros_like(fg)
    for k, sl in enumerate(ndi.find_objects(blobs), start=1):  # per blob: small crops are fast
        if sl is None:
            continue
        sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
        own = blobs[sl] == k
        crop = np.where(own, relief[sl], 0.0)
        found = morphology.h_maxima(crop, height).astype(bool) & own if height > 0 else np.zeros_like(own)
        if not found.any():  # every blob gets a marker, at its highest point
            found.flat[int(np.argmax(crop))] = True
        peaks[sl] |= found
    labels = segmentation.watershed(-relief, _label(peaks)[0], mask=fg)
    if p.nucleus_merge_neck_fraction > 0:
        labels = _join_wide_necks(labels, relief, p.nucleus_merge_neck_fraction)

    # Edge of each nucleus at a fixed fraction of its own level above background.
    background = float(np.median(smooth[~fg])) if (~fg).any() else background
    out = np.zeros(labels.shape, np.int32)
    n_out = 0
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        own = labels[sl] == k
        level = float(np.percentile(smooth[sl][own], 95))
        edge = background + p.nucleus_edge_fraction * (level - background)
        body = ndi.binary_fill_holes(own & (smooth[sl] > edge))
        if np.count_nonzero(body) >= min_area:
            n_out += 1
            out[sl][body] = n_out
    return out


def interior_map(stain: np.ndarray, *, scale: float, params: WatershedParams = WatershedParams()) -> InteriorMap:
    """Classical stand-in for HPA's cell-interior map: the smoothed cytoplasm stain.

    Parameters
    ----------
    stain : ndarray, shape (H, W), float
        Cytoplasm stain at the working size, grey levels: red + yellow (microtubules + ER).
    scale : float
        Pixels of ``work`` per pixel of a 2048-px field of view.
    params : WatershedParams

    Returns
    -------
    InteriorMap
        ``threshold`` = background (``background_percentile`` of the smoothed stain)
        plus the larger of ``interior_min_contrast_u8`` and ``interior_contrast_fraction``
        of the typical cytoplasm level above background (the median of the pixels above
        Otsu's threshold of the log stain). ``relief`` is expressed in units of that
        typical level.
    """
    p = params
    stain = np.asarray(stain, dtype=np.float32)
    interior = _blur(stain, p.interior_smoothing_px_at_2048 * scale)
    background = float(np.percentile(interior, p.background_percentile))
    otsu = _log_otsu(interior)
    above = interior[interior > otsu]
    level = float(np.median(above)) if above.size else float(interior.max())
    typical = level - background
    # The absolute floor suits 8-bit fields of HPA's usual exposure; a dim field (16-bit
    # data brought to 8 bit, a weak stain) has cells only a few grey levels above its
    # floor, so the floor is capped at a fraction of the typical level there.
    contrast = max(
        p.interior_contrast_fraction * typical, min(p.interior_min_contrast_u8, p.dim_contrast_fraction * typical)
    )
    unit = max(level - background, contrast, 1e-6)
    relief = (_blur(stain, p.relief_smoothing_px_at_2048 * scale) - background) / unit
    return InteriorMap(interior, background + contrast, relief.astype(np.float32), contrast / unit)


def learned_interior_map(
    work: np.ndarray,
    nuclei: np.ndarray,
    *,
    scale: float,
    params: WatershedParams = WatershedParams(),
    model: CellMapModel | None = None,
) -> InteriorMap:
    """Interior and relief from the learned cell maps (:mod:`hpaseg.segmentation.cellmaps`).

    The interior is the cell probability (threshold 0.5); the relief is the predicted
    distance to the cell edge in units of its median over probable cell pixels, so that
    :func:`grow_cells` floods from the nuclei outwards and neighbours meet where the
    model puts the edge between them.

    Parameters
    ----------
    work : ndarray, shape (H, W, 4), float
        RGBY field at the working size.
    nuclei : ndarray, shape (H, W), int
        From :func:`segment_nuclei`.
    scale : float
        Pixels of ``work`` per pixel of a 2048-px field of view.
    params : WatershedParams
        ``cell_map_model`` names the model (empty: the shipped one).
    model : CellMapModel, optional
        A model in memory, used instead of ``params.cell_map_model``.

    Returns
    -------
    InteriorMap
    """
    if model is None:
        model = load_cell_map_model(params.cell_map_model or None)
    is_cell, distance = predict_maps(model, work, scale, nuclei)
    inside = is_cell > 0.5
    typical = float(np.median(distance[inside])) if inside.any() else 1.0
    relief = (distance / max(typical, 1e-3)).astype(np.float32)
    return InteriorMap(is_cell.astype(np.float32), 0.5, relief, LEARNED_RELIEF_FLOOR)


def grow_cells(
    nuclei: np.ndarray,
    interior: InteriorMap | np.ndarray,
    *,
    scale: float,
    params: WatershedParams = WatershedParams(),
) -> np.ndarray:
    """Grow one cell from every nucleus over the interior map.

    The cell region is ``interior > threshold`` plus the nuclei (lightly opened). A
    marker watershed from the nuclei splits it over the surface ``-relief + weight x
    sigma x |grad relief|``: cells part along dark seams and along steps in brightness.
    Cytoplasm cut off from every nucleus by a deep seam is dropped
    (``seam_fraction``, see :func:`_orphan_pixels`). Each cell is reduced to the
    piece connected to its nucleus, hole-filled, and dropped if smaller than
    ``min_cell_area``.

    Parameters
    ----------
    nuclei : ndarray, shape (H, W), int
        Nucleus labels 1..N (0 = background).
    interior : InteriorMap or ndarray, shape (H, W)
        From :func:`interior_map`, same shape; or the cytoplasm stain itself, which
        :func:`interior_map` is applied to.
    scale : float
        Pixels of the arrays per pixel of a 2048-px field of view.
    params : WatershedParams

    Returns
    -------
    ndarray, shape (H, W), int32
        Cell k grown from nucleus k (0 = background); cells smaller than
        ``min_cell_area`` are 0.

    Examples
    --------
    >>> nuc = np.zeros((60, 60), np.int32); nuc[25:35, 10:20] = 1; nuc[25:35, 40:50] = 2
    >>> stain = np.zeros((60, 60), np.float32); stain[15:45, 3:57] = 80
    >>> cells = grow_cells(nuc, InteriorMap(stain, 20.0, stain / 80, 0.25), scale=0.1)
    >>> bool(cells[30, 5] == 1), bool(cells[30, 55] == 2), int(cells[5, 5])
    (True, True, 0)
    """
    p = params
    nuclei = np.asarray(nuclei, dtype=np.int32)
    if not isinstance(interior, InteriorMap):
        interior = interior_map(interior, scale=scale, params=params)
    if nuclei.shape != interior.interior.shape:
        raise ValueError(f"nuclei {nuclei.shape} and interior {interior.interior.shape} differ in shape")
    has_nucleus = nuclei > 0
    if not has_nucleus.any():
        return np.zeros(nuclei.shape, np.int32)
    region = interior.interior > interior.threshold
    radius = round(p.interior_opening_px_at_2048 * scale)
    if radius >= 1:
        region = (
            cv2.morphologyEx(
                region.astype(np.uint8),
                cv2.MORPH_OPEN,
                _disk(radius),
                borderType=cv2.BORDER_REPLICATE,
            )
            > 0
        )
    region |= has_nucleus

    relief = interior.relief
    surface = -relief
    sigma = p.relief_smoothing_px_at_2048 * scale
    if p.relief_edge_weight > 0:
        gx = cv2.Sobel(relief, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
        gy = cv2.Sobel(relief, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
        barrier = p.relief_edge_weight * sigma * np.sqrt(gx * gx + gy * gy)
        # A nucleus is dark in red + yellow: its own blurred edge is no barrier to its cell.
        barrier[_distance(~has_nucleus) <= 2.0 * sigma] = 0.0
        surface = surface + barrier
    flood = surface
    if p.relief_distance_weight > 0:
        unit = max(p.distance_unit_px_at_2048 * scale, 1e-6)
        flood = surface + (p.relief_distance_weight / unit) * _distance(~has_nucleus)
    cells = segmentation.watershed(flood, nuclei, mask=region).astype(np.int32)

    if p.seam_fraction > 0:
        peak_radius = max(1, round(sigma))
        cells[
            _orphan_pixels(
                surface,
                relief,
                nuclei,
                region,
                interior.relief_floor,
                p.seam_fraction,
                peak_radius,
            )
        ] = 0

    min_area = _area(p.min_cell_area_px_at_2048, scale)
    out = np.zeros(cells.shape, np.int32)
    for k, sl in enumerate(ndi.find_objects(cells), start=1):
        if sl is None:
            continue
        own = cells[sl] == k
        pieces, n_pieces = _label(own)
        if n_pieces > 1:
            own = np.isin(pieces, np.unique(pieces[nuclei[sl] == k])) & (pieces > 0)
        own = ndi.binary_fill_holes(own) & ((cells[sl] == k) | (cells[sl] == 0)) & (out[sl] == 0)
        if np.count_nonzero(own) >= min_area:
            out[sl][own] = k
    return out


def _orphan_pixels(
    surface: np.ndarray,
    relief: np.ndarray,
    nuclei: np.ndarray,
    region: np.ndarray,
    floor: float,
    seam_fraction: float,
    peak_radius: int,
) -> np.ndarray:
    """Pixels of cytoplasm regions that belong to no nucleus in the field.

    Candidate regions are seeded at the local maxima of the relief (within
    ``peak_radius``) outside the nuclei. A watershed from nuclei + candidates gives
    basins; basins are then joined across their highest saddles first (the brightest
    pass between neighbours; a nucleus itself is no barrier). A group of candidate
    basins joins a nucleus' cell when the saddle is at least ``seam_fraction`` x
    min(its own peak, 1) (1 = typical cytoplasm level); two nuclei never join.
    Candidate groups left without a nucleus are orphans: cytoplasm of a cell whose
    nucleus lies outside the field. Only their pixels are returned: the cells
    themselves come from the nuclei-only watershed, so cytoplasm never moves from
    one nucleus to another here.

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    has_nucleus = nuclei > 0
    n_nuclei = int(nuclei.max())
    # Candidates: local maxima of the relief (within a few px) in the cytoplasm; the
    # merging below keeps only those separated from every nucleus by a deep seam.
    inside = region & ~has_nucleus & (relief > floor)
    masked = np.where(inside, relief, -np.inf).astype(np.float32)
    peaks = inside & (masked >= cv2.dilate(masked, _disk(peak_radius)))
    candidates, n_candidates = _label(peaks)
    if n_candidates == 0:
        return np.zeros(nuclei.shape, bool)
    markers = np.where(candidates > 0, candidates + n_nuclei, nuclei).astype(np.int32)
    basins = segmentation.watershed(surface, markers, mask=region).astype(np.int32)
    height = np.where(has_nucleus, np.inf, relief)  # the flood starts at the nucleus edge

    n = n_nuclei + n_candidates
    passes = _adjacent_saddles(basins, height)
    peak = np.asarray(
        ndi.maximum(np.where(has_nucleus, 0.0, relief), basins, np.arange(n + 1)),
        dtype=np.float64,
    )
    parent = np.arange(n + 1)
    with_nucleus = np.arange(n + 1) <= n_nuclei
    with_nucleus[0] = False

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for (a, b), v in sorted(passes.items(), key=lambda kv: -kv[1]):  # highest passes first
        ra, rb = root(a), root(b)
        if ra == rb or (with_nucleus[ra] and with_nucleus[rb]):
            continue
        if with_nucleus[ra] or with_nucleus[rb]:
            need = seam_fraction * min(peak[rb if with_nucleus[ra] else ra], 1.0)
        else:
            need = seam_fraction * min(peak[ra], peak[rb], 1.0)
        if v >= need:
            keep, gone = (ra, rb) if with_nucleus[ra] or not with_nucleus[rb] else (rb, ra)
            parent[gone] = keep
            peak[keep] = max(peak[keep], peak[gone])
    roots = np.array([root(i) for i in range(n + 1)])
    orphan = ~with_nucleus[roots]
    orphan[0] = False
    return orphan[basins]


def _join_wide_necks(labels: np.ndarray, relief: np.ndarray, neck_fraction: float) -> np.ndarray:
    """Join touching labels whose pass (highest ``min(relief)`` across their shared
    boundary) is at least ``neck_fraction`` x the lower of their peaks (max ``relief``);
    highest passes first, a joined group keeps its highest peak. Labels are renumbered
    1..M in order of first appearance of their smallest member.

    >>> lab = np.array([[1, 1, 2, 2, 3, 3]]); rel = np.array([[1., 3., 2.5, 3., 1., 2.]])
    >>> _join_wide_necks(lab, rel, 0.7).tolist()  # 1-2: pass 2.5 >= 0.7 x 3; 2-3: pass 1 < 0.7 x 2
    [[1, 1, 1, 1, 2, 2]]
    """
    n = int(labels.max())
    if n < 2:
        return labels
    passes = _adjacent_saddles(labels, relief)
    if not passes:
        return labels
    peak = np.asarray(ndi.maximum(relief, labels, np.arange(n + 1)), dtype=np.float64)
    parent = np.arange(n + 1)

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for (a, b), v in sorted(passes.items(), key=lambda kv: -kv[1]):
        ra, rb = root(a), root(b)
        if ra != rb and v >= neck_fraction * min(peak[ra], peak[rb]):
            keep, gone = min(ra, rb), max(ra, rb)
            parent[gone] = keep
            peak[keep] = max(peak[keep], peak[gone])
    roots = np.array([root(i) for i in range(n + 1)])
    _, new = np.unique(roots, return_inverse=True)
    return new.reshape(roots.shape)[labels].astype(np.int32)


def _adjacent_saddles(labels: np.ndarray, height: np.ndarray) -> dict[tuple[int, int], float]:
    """For every pair of 4-adjacent labels (both > 0), the highest ``min(height)`` over
    their adjacent pixel pairs: the height of the best pass between them."""
    a_list, b_list, v_list = [], [], []
    for la, lb, ha, hb in (
        (labels[:, :-1], labels[:, 1:], height[:, :-1], height[:, 1:]),
        (labels[:-1], labels[1:], height[:-1], height[1:]),
    ):
        sel = (la != lb) & (la > 0) & (lb > 0)
        a_list.append(la[sel])
        b_list.append(lb[sel])
        v_list.append(np.minimum(ha[sel], hb[sel]))
    a = np.concatenate(a_list).astype(np.int64)
    b = np.concatenate(b_list).astype(np.int64)
    v = np.concatenate(v_list).astype(np.float64)
    if not a.size:
        return {}
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo * (int(hi.max()) + 1) + hi
    order = np.lexsort((-v, key))
    key, lo, hi, v = key[order], lo[order], hi[order], v[order]
    first = np.r_[True, key[1:] != key[:-1]]
    return {(int(x), int(y)): float(z) for x, y, z in zip(lo[first], hi[first], v[first])}


def segment_watershed(
    image: np.ndarray, *, params: WatershedParams = WatershedParams(), model: CellMapModel | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Segment the cells and nuclei of one RGBY field (no HPA-Cell-Segmentation networks).

    The image is resized to ``params.working_size_px`` (longest side, area averaging;
    never enlarged), nuclei are found in blue (:func:`segment_nuclei`), cells grown from
    them over red + yellow (:func:`interior_map`, :func:`grow_cells`), and the masks
    renumbered and resized back (nearest neighbour).

    Parameters
    ----------
    image : ndarray, shape (H, W, 4), uint8
        Red (microtubules), green (protein; unused), blue (nuclei), yellow (ER).
    params : WatershedParams
    model : CellMapModel, optional
        Cell-map model in memory for ``params.cell_maps == "learned"`` (default: the
        file ``params.cell_map_model``, or the shipped one).

    Returns
    -------
    cell_mask, nuclei_mask : ndarray, shape (H, W), int32
        Cells 1..N, the nucleus of cell k labelled k and lying inside cell k; all zero
        when nothing is found.
    """
    image = check_rgby(image, "segment_watershed")
    full_shape = image.shape[:2]
    resize, scale = working_scale(full_shape, params.working_size_px)
    work = resize_image(image.astype(np.float32), scaled_shape(full_shape, resize))
    nuclei = segment_nuclei(work[..., Channel.BLUE], scale=scale, params=params)
    if params.cell_maps == "learned":
        interior = learned_interior_map(work, nuclei, scale=scale, params=params, model=model)
    else:
        interior = interior_map(work[..., Channel.RED] + work[..., Channel.YELLOW], scale=scale, params=params)
    cells = grow_cells(nuclei, interior, scale=scale, params=params)
    cells, nuclei = relabel_pair(cells, np.where(cells == nuclei, nuclei, 0), drop_cells_without_nucleus=True)
    return resize_labels(cells, full_shape), resize_labels(nuclei, full_shape)


@dataclass(frozen=True)
class WatershedSegmenter:
    """The ``watershed`` method: :func:`segment_watershed` with fixed parameters."""

    params: WatershedParams = WatershedParams()
    needs_pixels: bool = True

    def segment(self, image: np.ndarray, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`~hpaseg.segmentation.base.Segmenter`."""
        return segment_watershed(check_rgby(image, image_id), params=self.params)
