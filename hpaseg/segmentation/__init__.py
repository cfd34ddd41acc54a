"""Cell and nucleus segmentation: three methods behind one interface.

:class:`~hpaseg.segmentation.base.Segmenter` (``segment(image, image_id) ->
(cell_mask, nuclei_mask)``), built by :func:`make_segmenter`:

``watershed`` (default, no weights)
    :mod:`hpaseg.segmentation.watershed`: classical nuclei and marker-watershed cells.
``hpacellseg``
    :mod:`hpaseg.segmentation.hpacellseg`: HPA-Cell-Segmentation's U-Nets and its
    deterministic post-processing ``label_cell``.
``precomputed``
    :mod:`hpaseg.segmentation.precomputed`: masks made elsewhere, checked and renumbered.

:func:`~hpaseg.segmentation.runner.segment_images` runs a segmenter over a folder.
"""

from .base import MAX_LABEL, Segmenter, check_rgby, relabel_pair
from .hpacellseg import HpaCellSegSegmenter
from .methods import METHODS, make_segmenter
from .precomputed import PrecomputedSegmenter
from .runner import SegmentSummary, segment_ids, segment_images, select_shard
from .watershed import (
    InteriorMap,
    WatershedParams,
    WatershedSegmenter,
    grow_cells,
    interior_map,
    segment_nuclei,
    segment_watershed,
    working_scale,
)

__all__ = [
    "InteriorMap",
    "interior_map",
    "MAX_LABEL",
    "Segmenter",
    "check_rgby",
    "relabel_pair",
    "HpaCellSegSegmenter",
    "METHODS",
    "make_segmenter",
    "PrecomputedSegmenter",
    "SegmentSummary",
    "segment_ids",
    "segment_images",
    "select_shard",
    "WatershedParams",
    "WatershedSegmenter",
    "grow_cells",
    "segment_nuclei",
    "segment_watershed",
    "working_scale",
]
