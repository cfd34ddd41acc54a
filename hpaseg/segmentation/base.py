"""What every segmenter shares: the :class:`Segmenter` protocol, the check of its input,
and the renumbering of a cell/nucleus mask pair to hpaseg's convention.

Convention of the masks a segmenter returns: ``(H, W)`` int32 label images at the
image's original resolution, 0 = background, cells 1..N, the nucleus of cell k
labelled k and lying inside it (HPA-Cell-Segmentation's format).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from skimage import measure

from ..classes import Channel
from ..errors import InputError

__all__ = ["Segmenter", "check_rgby", "relabel_pair", "MAX_LABEL"]

#: The largest label a 16-bit PNG mask can hold.
MAX_LABEL = int(np.iinfo(np.uint16).max)


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


def check_rgby(image: np.ndarray, source: str) -> np.ndarray:
    """``image`` as an array, checked to be ``(H, W, 4)`` with H, W > 0; ``source`` names it in the error."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != len(Channel) or image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{source}: expected an (H, W, 4) RGBY image, got shape {image.shape}")
    return image


def relabel_pair(
    cell_mask: np.ndarray, nuclei_mask: np.ndarray, *, drop_cells_without_nucleus: bool
) -> tuple[np.ndarray, np.ndarray]:
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
    if len(cell_ids) > MAX_LABEL:
        raise InputError(f"{len(cell_ids)} cells: more than a 16-bit mask can number ({MAX_LABEL})")
    if not len(cell_ids):
        return np.zeros(cell_mask.shape, np.int32), np.zeros(cell_mask.shape, np.int32)
    index = np.minimum(np.searchsorted(cell_ids, cell_mask), len(cell_ids) - 1)
    new_cells = np.where(cell_ids[index] == cell_mask, index + 1, 0).astype(np.int32)
    new_nuclei = np.where(nucleus_cell > 0, new_cells, 0).astype(np.int32)
    return new_cells, new_nuclei
