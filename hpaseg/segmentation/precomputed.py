"""The ``precomputed`` method: masks made elsewhere (HPA-Cell-Segmentation's output, say),
read, checked and renumbered to hpaseg's convention."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classes import Channel
from ..errors import InputError
from ..io import read_cell_mask, read_precomputed_masks
from ..transforms import resize_image, resize_labels
from .base import check_rgby, relabel_pair
from .ops import scaled_shape
from .watershed import WatershedParams, segment_nuclei, working_scale

__all__ = ["NUCLEI_SOURCES", "PrecomputedSegmenter", "nuclei_in_cells"]

#: Where the nuclei of precomputed cell masks come from: the nucleus mask files, or the
#: blue channel within each cell (for cell masks made without nucleus masks).
NUCLEI_SOURCES: tuple[str, ...] = ("mask", "blue")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrecomputedSegmenter:
    """The ``precomputed`` method: masks made elsewhere, read from ``mask_dir``.

    For image ``ID`` it reads ``{ID}_cellmask.png`` + ``{ID}_nucleimask.png`` or
    ``{ID}.npz`` (arrays ``cell_mask``/``cellmask`` and ``nuclei_mask``/``nucleimask``,
    :func:`hpaseg.io.read_precomputed_masks`), checks they have the image's size, and
    renumbers them with :func:`~hpaseg.segmentation.base.relabel_pair` (cells kept even
    without a nucleus). With ``nuclei_from="mask"`` (default) a cell mask alone is an
    error: nothing is derived from it. With ``nuclei_from="blue"`` only the cell mask is
    read (``{ID}_cellmask.png`` or ``{ID}.npz``) and the nuclei are found in the blue
    channel within each cell (:func:`nuclei_in_cells`), for cell masks made without
    nucleus masks (as many shared HPA-Cell-Segmentation outputs are).
    """

    mask_dir: Path
    nuclei_from: str = "mask"

    @property
    def needs_pixels(self) -> bool:
        """Only nuclei found in the blue channel need the image's pixels."""
        return self.nuclei_from == "blue"

    def __post_init__(self) -> None:
        if self.nuclei_from not in NUCLEI_SOURCES:
            raise InputError(
                f"nuclei_from {self.nuclei_from!r}: expected one of {', '.join(NUCLEI_SOURCES)}", param="nuclei_from"
            )
        if not Path(self.mask_dir).is_dir():
            raise InputError(
                f"mask_dir {self.mask_dir}: no such folder; "
                f"expected a folder of {{ID}}_cellmask.png + {{ID}}_nucleimask.png or {{ID}}.npz files",
                param="mask_dir",
            )

    def read(self, image_id: str) -> tuple[np.ndarray, np.ndarray | None, Path]:
        """Read the masks of one image as stored; returns ``(cell, nuclei or None, source file)``."""
        if self.nuclei_from == "blue":
            cell, source = read_cell_mask(self.mask_dir, image_id)
            return cell, None, source
        return read_precomputed_masks(self.mask_dir, image_id)

    def segment(self, image: np.ndarray, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`~hpaseg.segmentation.base.Segmenter`; only ``image.shape`` is used
        unless the nuclei come from the blue channel."""
        cell, nuclei, source = self.read(image_id)
        height, width = image.shape[:2]
        if cell.shape != (height, width):
            raise InputError(
                f"{source}: mask is {cell.shape[1]}x{cell.shape[0]} px (WxH) but image {image_id!r} is {width}x{height} px; "
                "precomputed masks must be at the image's original resolution"
            )
        if (cell < 0).any() or (nuclei is not None and (nuclei < 0).any()):
            raise InputError(f"{source}: negative labels; expected 0 = background and positive cell ids")
        if nuclei is None:
            return nuclei_in_cells(check_rgby(image, image_id)[..., Channel.BLUE], cell)
        new_cell, new_nuclei = relabel_pair(cell, nuclei, drop_cells_without_nucleus=False)
        n_outside = int(np.count_nonzero((nuclei > 0) & (new_nuclei == 0)))
        if n_outside:
            log.warning(
                "%s: %d nucleus pixels lie outside the cell they overlap most and were dropped", source, n_outside
            )
        return new_cell, new_nuclei


def nuclei_in_cells(
    blue: np.ndarray, cells: np.ndarray, *, params: WatershedParams = WatershedParams()
) -> tuple[np.ndarray, np.ndarray]:
    """Cells given as a mask, with their nuclei found in the blue channel
    (:func:`~hpaseg.segmentation.watershed.segment_nuclei` at the working size), each
    nucleus given to the cell it overlaps most and clipped to it
    (:func:`~hpaseg.segmentation.base.relabel_pair`).

    Parameters
    ----------
    blue : ndarray, shape (H, W)
        Nucleus stain, grey levels 0-255.
    cells : ndarray, shape (H, W), int
        Cell labels (0 = background).
    params : WatershedParams

    Returns
    -------
    cell_mask, nuclei_mask : ndarray, shape (H, W), int32
        Cells renumbered 1..N (all kept), nucleus k inside cell k; a cell without a
        detected nucleus has none.
    """
    resize, scale = working_scale(cells.shape, params.working_size_px)
    found = segment_nuclei(
        resize_image(np.asarray(blue, np.float32), scaled_shape(cells.shape, resize)), scale=scale, params=params
    )
    return relabel_pair(cells, resize_labels(found, cells.shape), drop_cells_without_nucleus=False)
