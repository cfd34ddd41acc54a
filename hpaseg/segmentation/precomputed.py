"""The ``precomputed`` method: masks made elsewhere (HPA-Cell-Segmentation's output, say),
read, checked and renumbered to hpaseg's convention."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import read_precomputed_masks
from .base import relabel_pair

__all__ = ["PrecomputedSegmenter"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrecomputedSegmenter:
    """The ``precomputed`` method: masks made elsewhere, read from ``mask_dir``.

    For image ``ID`` it reads ``{ID}_cellmask.png`` + ``{ID}_nucleimask.png`` or
    ``{ID}.npz`` (arrays ``cell_mask``/``cellmask`` and ``nuclei_mask``/``nucleimask``,
    :func:`hpaseg.io.read_precomputed_masks`), checks they have the image's size, and
    renumbers them with :func:`~hpaseg.segmentation.base.relabel_pair` (cells kept even
    without a nucleus). A cell mask alone is an error: nothing is derived from it.
    """

    mask_dir: Path
    needs_pixels: bool = False

    def __post_init__(self) -> None:
        if not Path(self.mask_dir).is_dir():
            raise InputError(
                f"mask_dir {self.mask_dir}: no such folder; "
                f"expected a folder of {{ID}}_cellmask.png + {{ID}}_nucleimask.png or {{ID}}.npz files",
                param="mask_dir",
            )

    def read(self, image_id: str) -> tuple[np.ndarray, np.ndarray, Path]:
        """Read the mask pair of one image as stored; returns ``(cell, nuclei, source file)``."""
        return read_precomputed_masks(self.mask_dir, image_id)

    def segment(self, image: np.ndarray, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`~hpaseg.segmentation.base.Segmenter`; only ``image.shape`` is used."""
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
            log.warning(
                "%s: %d nucleus pixels lie outside the cell they overlap most and were dropped", source, n_outside
            )
        return new_cell, new_nuclei
