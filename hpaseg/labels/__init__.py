"""Which labels a cell gets: image labels propagated to cells (weak labels), the COCO files
that carry them, and the rule that turns predicted scores into reported labels.

Modules: :mod:`~hpaseg.labels.propagate` (``hpaseg propagate``), :mod:`~hpaseg.labels.coco`
(COCO files, one annotation per (cell, label)), :mod:`~hpaseg.labels.cache` (the dataset's
images decoded once at working size), :mod:`~hpaseg.labels.rules` (reported labels), :mod:`~hpaseg.labels.relabel` (cleaned
per-cell labels written back into a dataset).
"""

from .cache import build_cache, cache_dataset, cache_folder, cache_paths
from .coco import (
    CellRecord,
    ImageRecord,
    coco_annotations,
    coco_categories,
    load_coco_split,
)
from .propagate import (
    BORDER_WIDTH_PX,
    CELLS_TABLE_HEADER,
    border_cells,
    cell_records,
    propagate_dataset,
    split_image_ids,
)
from .relabel import relabel_coco, relabel_dataset
from .rules import LabelRule, cell_labels

__all__ = [
    "build_cache",
    "cache_dataset",
    "cache_folder",
    "cache_paths",
    "CellRecord",
    "ImageRecord",
    "coco_annotations",
    "coco_categories",
    "load_coco_split",
    "BORDER_WIDTH_PX",
    "CELLS_TABLE_HEADER",
    "border_cells",
    "cell_records",
    "propagate_dataset",
    "split_image_ids",
    "relabel_coco",
    "relabel_dataset",
    "LabelRule",
    "cell_labels",
]
