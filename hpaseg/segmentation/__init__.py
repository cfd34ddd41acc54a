"""Cell and nucleus segmentation: three methods behind one interface.

:class:`~hpaseg.segmentation.base.Segmenter` (``segment(image, image_id) ->
(cell_mask, nuclei_mask)``), built by :func:`make_segmenter`:

``watershed`` (default; its few kB of weights ship with hpaseg)
    :mod:`hpaseg.segmentation.watershed`: classical nuclei and marker-watershed cells
    over learned cell maps (:mod:`hpaseg.segmentation.cellmaps`, a per-pixel model
    fitted on real fields with HPA-Cell-Segmentation masks), or over classical ones.
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
    CELL_MAPS,
    InteriorMap,
    WatershedParams,
    WatershedSegmenter,
    grow_cells,
    interior_map,
    learned_interior_map,
    segment_nuclei,
    segment_watershed,
    working_scale,
)

__all__ = [
    "CELL_MAPS",
    "InteriorMap",
    "interior_map",
    "learned_interior_map",
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
