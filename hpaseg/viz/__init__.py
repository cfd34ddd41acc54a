"""Pictures of HPA images, cell masks and evaluation results.

Everything here is pure except :mod:`~hpaseg.viz.read`: functions take arrays, label
tables, DataFrames or metric results and return arrays or :class:`matplotlib.figure.Figure`
objects (made without ``pyplot``, so nothing is shown or kept open behind the caller's
back; a notebook displays a returned figure, :func:`figure_to_rgb` turns one into pixels).

Conventions of every figure: **one colour per class, the same in every figure**
(:data:`CLASS_COLORS`), class names written out; images at their scale, square pixels,
a scale bar when the pixel size is known; channels stretched for display only.

Modules: :mod:`.colors`, :mod:`.images` (arrays), :mod:`.figures` (shared figure parts),
:mod:`.cells` (cells drawn on images, panels), :mod:`.evaluation` (AP and confusion
figures), :mod:`.features` (feature maps), :mod:`.study` (the classifier study),
:mod:`.read` (reading what the panels show).
"""

from .cells import (
    CellClasses,
    CellPanel,
    cells_from_submission_row,
    draw_cells,
    group_cell_labels,
    plot_cell_panels,
    plot_channels,
    top_classes,
    weak_cell_classes,
)
from .colors import CLASS_COLORS, CLASS_SHORT_NAMES, UNLABELLED_COLOR, class_rgb
from .evaluation import plot_class_ap, plot_confusion_grid
from .features import feature_grid, feature_maps, plot_feature_maps, top_channels
from .figures import DEFAULT_DPI, class_legend_handles
from .images import (
    DISPLAY_PERCENTILES,
    YELLOW_WEIGHT,
    composite_rgb,
    display_rgb,
    draw_outlines,
    figure_to_rgb,
    stretch_contrast,
)
from .read import read_image_panels
from .study import plot_ablation_metrics, plot_ap_heatmap, results_markdown

__all__ = [
    "CellClasses",
    "CellPanel",
    "cells_from_submission_row",
    "draw_cells",
    "group_cell_labels",
    "plot_cell_panels",
    "plot_channels",
    "top_classes",
    "weak_cell_classes",
    "CLASS_COLORS",
    "CLASS_SHORT_NAMES",
    "UNLABELLED_COLOR",
    "class_rgb",
    "plot_class_ap",
    "plot_confusion_grid",
    "feature_grid",
    "feature_maps",
    "plot_feature_maps",
    "top_channels",
    "DEFAULT_DPI",
    "class_legend_handles",
    "DISPLAY_PERCENTILES",
    "YELLOW_WEIGHT",
    "composite_rgb",
    "display_rgb",
    "draw_outlines",
    "figure_to_rgb",
    "stretch_contrast",
    "read_image_panels",
    "plot_ablation_metrics",
    "plot_ap_heatmap",
    "results_markdown",
]
