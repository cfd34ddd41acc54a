"""Per-cell descriptors of where the protein (green) sits and what its pattern looks like.

:func:`describe_cells` turns an RGBY image and its cell mask into one vector per cell
(:mod:`~hpaseg.descriptors.describe` lists the groups). They feed the CPU default of the
cell classifier (``backbone="descriptors"`` in :mod:`hpaseg.classification`).
"""

from .describe import GROUPS, describe_cells, descriptor_names
from .regions import CellRegions, cell_regions

__all__ = ["GROUPS", "describe_cells", "descriptor_names", "CellRegions", "cell_regions"]
