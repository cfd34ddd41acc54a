"""Per-cell descriptors of the protein's localisation: one vector per cell.

The groups, each a function of the cell's regions (:mod:`~hpaseg.descriptors.regions`):
expression, compartments, distribution (:mod:`~hpaseg.descriptors.intensity`), spots,
granulometry, objects, structure (:mod:`~hpaseg.descriptors.texture`), colocalisation and
morphology (:mod:`~hpaseg.descriptors.context`). In the spirit of the subcellular
location features of Murphy's lab, made scale-aware: they describe where a stain sits in
a cell and what its pattern looks like, not any one dataset's classes, and they need no
training. A small network on top of them (:mod:`hpaseg.classification`) learns the
classes in seconds on a CPU, where a CNN needs a GPU.
"""

from __future__ import annotations

import numpy as np

from .context import colocalisation, morphology
from .intensity import compartments, distribution, expression
from .regions import cell_regions
from .texture import granulometry, objects, spots, structure

__all__ = ["GROUPS", "describe_cells", "descriptor_names"]

#: The descriptor groups, in the order of the vector.
GROUPS = (
    expression,
    compartments,
    distribution,
    spots,
    granulometry,
    objects,
    structure,
    colocalisation,
    morphology,
)


def describe_cells(
    image: np.ndarray, cells: np.ndarray, nuclei: np.ndarray | None = None, *, working_size_px: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors of every cell of one image.

    Parameters
    ----------
    image : ndarray, shape (H, W, 4)
        RGBY, grey levels 0-255.
    cells : ndarray, shape (H, W), int
        Cell labels, 0 = background.
    nuclei : ndarray, shape (H, W), int, optional
        Nucleus k in cell k; default: found in the blue channel.
    working_size_px : int
        Longest side of the image the descriptors are measured on.

    Returns
    -------
    descriptors : ndarray, shape (N, D), float32
        One row per cell, columns named by :func:`descriptor_names`; finite.
    ids : ndarray, shape (N,), int
        The cell labels, ascending (cells lost at the working size are left out).
    """
    regions = cell_regions(image, cells, nuclei, working_size_px=working_size_px)
    if not len(regions.ids):
        return np.zeros((0, len(descriptor_names())), np.float32), regions.ids
    columns = [v for group in GROUPS for v in group(regions).values()]
    values = np.stack(columns, axis=1).astype(np.float32)
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0), regions.ids


_NAMES: list[str] = []


def descriptor_names() -> list[str]:
    """The name of each descriptor column, in order."""
    if not _NAMES:
        image = np.zeros((32, 32, 4), np.float32)
        image[8:24, 8:24] = 100.0
        cells = np.zeros((32, 32), np.int32)
        cells[8:24, 8:24] = 1
        regions = cell_regions(image, cells, cells)
        _NAMES.extend(name for group in GROUPS for name in group(regions))
    return list(_NAMES)
