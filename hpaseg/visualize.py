"""Pictures of HPA images, cell masks and evaluation results, and ``hpaseg visualize``.

Everything above the CLI section is pure: functions take arrays, label tables or
metric results and return arrays or :class:`matplotlib.figure.Figure` objects (made
without ``pyplot``, so nothing is shown or kept open behind the caller's back; a
notebook displays a returned figure, :func:`figure_to_rgb` turns one into pixels).

Conventions of every figure
---------------------------
* **One colour per class, the same in every figure** (:data:`CLASS_COLORS`): 18
  colours from Okabe & Ito's and Paul Tol's colour-blind-safe palettes, all light
  enough to show on a dark fluorescence image, and grey for Negative. No 19 colours
  stay apart for every viewer, so figures also *write* class names: legends use the
  full names (:data:`~hpaseg.classes.CLASS_NAMES`), cell labels the short ones
  (:data:`CLASS_SHORT_NAMES`).
* A cell is outlined in the colour of its top class. Where several classes tie for the
  top (true and weak labels, given at confidence 1), the outline is dashed in their
  colours in turn. Cells of a mask without any label are outlined in white, dotted.
* Images keep their scale: ``imshow`` with square pixels, never resampled before
  display; the size in pixels is in the title and a scale bar is drawn when the pixel
  size is known.
* Images are shown with each channel stretched between its 0.1st and 99.9th
  percentile (:func:`stretch_contrast`): 16-bit HPA channels brought to 8 bit are far
  too dim to see otherwise. The stretch is for display only; nothing is measured on it.

``hpaseg visualize`` (``python -m hpaseg.visualize``) writes, for each image asked for,
``OUT/{ID}_overlay.png``: predicted cells in class colours with the top class and its
confidence | the segmentation masks with their propagated (weak) labels | the per-cell
truth, as far as those were given. The reading functions at the end
(:func:`read_image_panels`) are shared by the CLI and the evaluation notebooks in
``eval_notebooks/``.
"""
from __future__ import annotations

import math
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np
from skimage.segmentation import find_boundaries

from .classes import CLASS_NAMES, NUM_CLASSES, Channel
from .errors import ArgumentParser, InputError, cli_entry

if TYPE_CHECKING:  # imported lazily: the CLI and pure array functions need neither
    import torch
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .metrics import MapResult
    from .submission import CellLabel, SubmissionRow

__all__ = [
    # colours and names
    "CLASS_COLORS",
    "CLASS_SHORT_NAMES",
    "UNLABELLED_COLOR",
    "class_rgb",
    # arrays
    "composite_rgb",
    "draw_outlines",
    "stretch_contrast",
    "display_rgb",
    "figure_to_rgb",
    # per-cell labels
    "CellClasses",
    "CellPanel",
    "top_classes",
    "group_cell_labels",
    "weak_cell_classes",
    "cells_from_submission_row",
    # image figures
    "class_legend_handles",
    "draw_cells",
    "plot_channels",
    "plot_cell_panels",
    # evaluation figures
    "plot_class_ap",
    "plot_confusion_grid",
    "cell_targets",
    "per_image_map",
    "worst_images",
    # feature maps
    "feature_maps",
    "top_channels",
    "feature_grid",
    "plot_feature_maps",
    # the classifier study (hpaseg ablation output)
    "RESULTS_COLUMNS",
    "PER_CLASS_AP_COLUMNS",
    "CONFUSION_COLUMNS",
    "ABLATION_METRICS",
    "ablation_results",
    "best_configuration",
    "results_markdown",
    "plot_ablation_metrics",
    "per_class_ap_matrix",
    "plot_ap_heatmap",
    "confusion_by_config",
    # reading and the CLI
    "read_image_panels",
    "build_parser",
    "main",
]

# --------------------------------------------------------------------------- colours and names
#: Colour of each class (index = class id), hex. Okabe-Ito for the most frequent classes,
#: Paul Tol's bright / muted / light / vibrant schemes for the rest, grey for Negative.
CLASS_COLORS: tuple[str, ...] = (
    "#56B4E9",  # 0  Nucleoplasm                 Okabe-Ito sky blue
    "#44BB99",  # 1  Nuclear membrane            Tol light mint
    "#F0E442",  # 2  Nucleoli                    Okabe-Ito yellow
    "#009988",  # 3  Nucleoli fibrillar center   Tol vibrant teal
    "#99DDFF",  # 4  Nuclear speckles            Tol light cyan
    "#0077BB",  # 5  Nuclear bodies              Tol vibrant blue
    "#DDCC77",  # 6  Endoplasmic reticulum       Tol muted sand
    "#EE6677",  # 7  Golgi apparatus             Tol bright red
    "#228833",  # 8  Intermediate filaments      Tol bright green
    "#999933",  # 9  Actin filaments             Tol muted olive
    "#CC3311",  # 10 Microtubules                Tol vibrant red
    "#AA4499",  # 11 Mitotic spindle             Tol muted purple
    "#CC79A7",  # 12 Centrosome                  Okabe-Ito reddish purple
    "#EE3377",  # 13 Plasma membrane             Tol vibrant magenta
    "#D55E00",  # 14 Mitochondria                Okabe-Ito vermillion
    "#EE8866",  # 15 Aggresome                   Tol light orange
    "#E69F00",  # 16 Cytosol                     Okabe-Ito orange
    "#009E73",  # 17 Vesicles                    Okabe-Ito bluish green
    "#BBBBBB",  # 18 Negative                    Tol grey
)
#: Outline colour of a cell that has no label.
UNLABELLED_COLOR = "#FFFFFF"
#: Names short enough to write inside a cell (index = class id).
CLASS_SHORT_NAMES: tuple[str, ...] = (
    "Nucleoplasm",
    "Nuc. membrane",
    "Nucleoli",
    "Nucleoli FC",
    "Nuc. speckles",
    "Nuc. bodies",
    "ER",
    "Golgi",
    "Int. filaments",
    "Actin fil.",
    "Microtubules",
    "Mit. spindle",
    "Centrosome",
    "Plasma memb.",
    "Mitochondria",
    "Aggresome",
    "Cytosol",
    "Vesicles",
    "Negative",
)

#: Percentiles between which each channel is stretched for display.
DISPLAY_PERCENTILES: tuple[float, float] = (0.1, 99.9)
#: Width of an image panel in inches (its height follows the image's aspect ratio).
PANEL_INCHES = 5.0
#: Outline width in points (independent of the image's size in pixels).
OUTLINE_POINTS = 1.6
#: A cell gets its label written inside only if its area is at least this multiple of
#: the text's box (as drawn, in image pixels): smaller cells would vanish under it.
MIN_CELL_PER_TEXT_AREA = 0.5
#: Font size of the text written inside cells, in points.
CELL_FONT_POINTS = 6.5
_DASH_POINTS = 4.0  # length of one colour's dash on a multi-class outline
_HALO_POINTS = 1.6  # dark halo around outlines, points beyond the line's width
_CHAR_WIDTH_EM = 0.6  # width of a character of the cell text, in font sizes (an upper bound)
_TEXT_STROKE = 2.0  # dark halo around white text, points
_DEFAULT_DPI = 110


def class_rgb(class_id: int) -> tuple[int, int, int]:
    """Colour of a class as 0-255 ``(r, g, b)``.

    >>> class_rgb(0), class_rgb(18)
    ((86, 180, 233), (187, 187, 187))
    """
    if not 0 <= class_id < NUM_CLASSES:
        raise ValueError(f"class id {class_id} is outside 0-{NUM_CLASSES - 1}")
    h = CLASS_COLORS[class_id]
    return int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)


# --------------------------------------------------------------------------- arrays
#: Weight of the yellow (ER) channel added to red and green in the composite.
YELLOW_WEIGHT = 0.5


def composite_rgb(image: np.ndarray, *, yellow: bool = True) -> np.ndarray:
    """RGB composite of an RGBY image, the way HPA shows it.

    Red = microtubules, green = protein, blue = nucleus; yellow (ER), when included,
    is added at half weight to red and green (red + green = yellow).

    Parameters
    ----------
    image : ndarray, shape (H, W, 4), uint8
    yellow : bool
        Add the ER channel.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8

    Examples
    --------
    >>> img = np.zeros((1, 1, 4), np.uint8); img[..., 3] = 200
    >>> composite_rgb(img)[0, 0].tolist()
    [100, 100, 0]
    """
    if image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"expected an (H, W, 4) RGBY image, got shape {image.shape}")
    rgb = image[..., [Channel.RED, Channel.GREEN, Channel.BLUE]].astype(np.float32)
    if yellow:
        rgb[..., :2] += YELLOW_WEIGHT * image[..., Channel.YELLOW, None]
    return np.clip(rgb, 0, 255).astype(np.uint8)


def draw_outlines(rgb: np.ndarray, labels: np.ndarray, color: tuple[int, int, int] | dict[int, tuple[int, int, int]] = (255, 255, 255), *, thickness_px: int = 1) -> np.ndarray:
    """Draw the outline of every labelled cell on a copy of ``rgb``.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    labels : ndarray, shape (H, W), int
        0 = background.
    color : (r, g, b) or dict
        One colour for all cells, or ``{cell id: (r, g, b)}`` (cells not in it are skipped).
    thickness_px : int
        Outline width in pixels (inner boundary grown by ``thickness_px - 1``).

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"picture is {rgb.shape[:2]} but labels are {labels.shape}")
    out = rgb.copy()
    edges = find_boundaries(labels, mode="inner")
    if thickness_px > 1:
        from scipy.ndimage import binary_dilation

        edges = binary_dilation(edges, iterations=thickness_px - 1) & (labels > 0)
    if isinstance(color, dict):
        for cell, col in color.items():
            out[edges & (labels == cell)] = col
    else:
        out[edges] = color
    return out


def stretch_contrast(image: np.ndarray, percentiles: tuple[float, float] = DISPLAY_PERCENTILES) -> np.ndarray:
    """Stretch each channel linearly so its ``percentiles`` map to 0 and 255 (display only).

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C), uint8
    percentiles : (low, high)
        In [0, 100]. A channel whose low and high percentiles coincide (an empty or
        flat channel) is left as it is.

    Returns
    -------
    ndarray, same shape, uint8

    Examples
    --------
    >>> stretch_contrast(np.array([[0, 10, 20]], np.uint8), (0, 100)).tolist()
    [[0, 128, 255]]
    >>> stretch_contrast(np.zeros((1, 2, 2), np.uint8)).max()
    np.uint8(0)
    """
    low, high = percentiles
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles {percentiles}; expected 0 <= low < high <= 100")
    planes = image[..., None] if image.ndim == 2 else image
    out = np.empty(planes.shape, np.uint8)
    for k in range(planes.shape[-1]):
        plane = planes[..., k]
        lo, hi = np.percentile(plane, (low, high))
        if hi <= lo:
            out[..., k] = plane
            continue
        out[..., k] = np.clip(np.rint((plane.astype(np.float32) - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)
    return out[..., 0] if image.ndim == 2 else out


def display_rgb(image: np.ndarray, *, stretch: bool = True) -> np.ndarray:
    """The composite of an RGBY image as shown in every figure: channels stretched
    (:func:`stretch_contrast`) when ``stretch``, then :func:`composite_rgb`.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    if image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"expected an (H, W, 4) RGBY image, got shape {image.shape}")
    return composite_rgb(stretch_contrast(image) if stretch else image)


def figure_to_rgb(fig: "Figure", *, dpi: float | None = None) -> np.ndarray:
    """Render a figure to an ``(H, W, 3)`` uint8 picture with Agg (at ``dpi`` if given;
    the figure's own dpi is restored afterwards)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    own_dpi = fig.dpi
    try:
        if dpi is not None:
            fig.set_dpi(dpi)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()
    finally:
        fig.set_dpi(own_dpi)


# --------------------------------------------------------------------------- per-cell labels
#: ``{cell id: [(class id, confidence), ...]}``, best first, for the cells of one label image.
CellClasses = dict[int, list[tuple[int, float]]]


@dataclass(frozen=True)
class CellPanel:
    """One labelling of an image's cells, drawn as one panel.

    Attributes
    ----------
    title : str
    labels : ndarray, shape (H, W), int
        Cell mask at the image's resolution, 0 = background.
    cells : CellClasses
        Labels of the cells; cells of ``labels`` missing here are drawn as unlabelled.
    text : {"top", "all", "none"}
        What is written inside each (large enough) cell: the top class and its
        confidence, all classes (for truth), or nothing.
    """

    title: str
    labels: np.ndarray
    cells: CellClasses
    text: str = "top"


def top_classes(pairs: Sequence[tuple[int, float]], *, tolerance: float = 1e-6) -> list[int]:
    """The classes tied for the highest confidence, in class order.

    >>> top_classes([(16, 0.4), (0, 0.9)])
    [0]
    >>> top_classes([(16, 1.0), (0, 1.0)])
    [0, 16]
    >>> top_classes([])
    []
    """
    if not pairs:
        return []
    best = max(conf for _, conf in pairs)
    return sorted({int(k) for k, conf in pairs if conf >= best - tolerance})


def _sorted_pairs(pairs: Iterable[tuple[int, float]]) -> list[tuple[int, float]]:
    return sorted(pairs, key=lambda kv: (-kv[1], kv[0]))


def group_cell_labels(cells: Iterable["CellLabel"]) -> dict[str, CellClasses]:
    """Group a per-cell label table (``ID,cell,label,confidence``, as ``hpaseg predict
    --save-masks`` writes and :func:`hpaseg.submission.read_cell_labels` reads) by image.

    Returns
    -------
    dict
        ``{ID: {cell: [(class, confidence), ...] best first}}``.

    Examples
    --------
    >>> from hpaseg.submission import CellLabel
    >>> group_cell_labels([CellLabel("a", 1, 16, 0.2), CellLabel("a", 1, 0, 0.9)])
    {'a': {1: [(0, 0.9), (16, 0.2)]}}
    """
    out: dict[str, dict[int, list[tuple[int, float]]]] = {}
    for c in cells:
        out.setdefault(c.image_id, {}).setdefault(int(c.cell), []).append((int(c.label), float(c.confidence)))
    return {i: {cell: _sorted_pairs(p) for cell, p in per.items()} for i, per in out.items()}


def weak_cell_classes(rows: Iterable[Mapping[str, str]], *, source: str = "cells.csv") -> dict[str, CellClasses]:
    """Per-cell labels from rows with ``ID``, ``cell`` and ``Label`` columns, at confidence 1.

    Reads the weak labels of ``hpaseg propagate`` (``DATASET/cells.csv``) and the true
    per-cell labels of ``hpaseg synth`` (``OUT/cell_labels.csv``) alike.

    Parameters
    ----------
    rows : iterable of dict
        As :func:`hpaseg.io.read_csv_rows` returns them (``"_row"`` names the line).
    source : str
        Named in error messages.

    Examples
    --------
    >>> weak_cell_classes([{"ID": "a", "cell": "3", "Label": "16|0"}])
    {'a': {3: [(0, 1.0), (16, 1.0)]}}
    """
    from .io import parse_labels

    out: dict[str, CellClasses] = {}
    for row in rows:
        where = f"{source}, line {row.get('_row', '?')}"
        cell_text = str(row["cell"]).strip()
        if not cell_text.isdigit() or int(cell_text) < 1:
            raise InputError(f"{where}: cell {row['cell']!r}; expected a positive integer cell id")
        labels = parse_labels(row["Label"], where=where)
        out.setdefault(str(row["ID"]).strip(), {})[int(cell_text)] = [(k, 1.0) for k in labels]
    return out


def cells_from_submission_row(row: "SubmissionRow") -> tuple[np.ndarray, CellClasses]:
    """Label image and per-cell labels of one submission row (or truth row).

    Each distinct mask string is one cell, numbered 1, 2, ... in order of first
    appearance; where masks overlap, a pixel goes to the first.

    Returns
    -------
    labels : ndarray, shape (height, width), int32
    cells : CellClasses

    Examples
    --------
    >>> from hpaseg.submission import Prediction, SubmissionRow, encode_binary_mask
    >>> m = encode_binary_mask(np.array([[1, 1, 0]], bool))
    >>> labels, cells = cells_from_submission_row(SubmissionRow("a", 3, 1, [Prediction(5, 0.2, m), Prediction(0, 0.7, m)]))
    >>> labels.tolist(), cells
    ([[1, 1, 0]], {1: [(0, 0.7), (5, 0.2)]})
    """
    from .submission import decode_mask

    labels = np.zeros((row.height, row.width), np.int32)
    index: dict[str, int] = {}
    cells: dict[int, list[tuple[int, float]]] = {}
    for k, p in enumerate(row.predictions):
        if p.mask not in index:
            cell = len(index) + 1
            index[p.mask] = cell
            mask = decode_mask(p.mask, row.height, row.width, where=f"image {row.image_id!r}, prediction {k + 1}")
            labels[mask & (labels == 0)] = cell
        cells.setdefault(index[p.mask], []).append((int(p.label), float(p.confidence)))
    return labels, {c: _sorted_pairs(p) for c, p in cells.items()}


# --------------------------------------------------------------------------- drawing cells
def _new_figure(width_in: float, height_in: float, dpi: float = _DEFAULT_DPI) -> "Figure":
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained")


def _show_image(ax: "Axes", picture: np.ndarray, **kwargs) -> None:
    """Square pixels, pixel centres at integer coordinates, no ticks."""
    ax.imshow(picture, interpolation="antialiased", aspect="equal", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])


def _scale_bar(ax: "Axes", width_px: int, pixel_size_um: float) -> None:
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    target = width_px * pixel_size_um / 5  # about a fifth of the image
    length_um = max(v for v in (1, 2, 5, 10, 20, 50, 100, 200, 500) if v <= max(target, 1))
    bar = AnchoredSizeBar(ax.transData, length_um / pixel_size_um, f"{length_um:g} µm", "lower right", pad=0.4, color="white", frameon=False, size_vertical=max(1.0, width_px / 150), fontproperties={"size": 8})
    ax.add_artist(bar)


def class_legend_handles(class_ids: Iterable[int], *, unlabelled: bool = False) -> list:
    """Legend entries (a thick line in the class colour, the full class name) for
    ``class_ids`` in class order, plus "no label" when ``unlabelled``."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=CLASS_COLORS[k], lw=4, label=CLASS_NAMES[k]) for k in sorted(set(int(c) for c in class_ids))]
    if unlabelled:
        handles.append(Line2D([], [], color="0.35", lw=1.5, ls=":", label="no label"))
    return handles


def _cell_geometry(labels: np.ndarray, inset_px: float) -> dict[int, tuple[list[np.ndarray], tuple[float, float], int]]:
    """For every cell: its outline(s) as (N, 2) x, y arrays, ``inset_px`` inside its
    boundary (so the outlines of touching cells do not overlap; a cell too thin for
    that keeps its boundary), the point deepest inside it (where text goes) and its
    area in pixels."""
    from scipy import ndimage
    from skimage.measure import find_contours

    out = {}
    for index, slc in enumerate(ndimage.find_objects(labels)):
        if slc is None:
            continue
        cell = index + 1
        y0, x0 = slc[0].start, slc[1].start
        inside = np.pad(labels[slc] == cell, 1)
        depth = ndimage.distance_transform_edt(inside)  # boundary pixels 1, outside 0
        level = 0.5 + inset_px
        raw = find_contours(depth, level) if depth.max() > level else []
        raw = raw or find_contours(inside.astype(np.float32), 0.5)
        contours = [np.column_stack((c[:, 1] + x0 - 1, c[:, 0] + y0 - 1)) for c in raw]
        cy, cx = np.unravel_index(int(np.argmax(depth)), depth.shape)
        out[cell] = (contours, (float(cx + x0 - 1), float(cy + y0 - 1)), int(inside.sum()))
    return out


def _px_per_point(ax: "Axes", width_px: int) -> float:
    """Image pixels per typographic point on ``ax`` (from its width in the figure)."""
    fig = ax.get_figure()
    width_in = ax.get_position().width * fig.get_figwidth()
    return width_px / max(width_in * 72.0, 1e-6)


def draw_cells(ax: "Axes", labels: np.ndarray, cells: CellClasses, *, text: str = "top", linewidth: float = OUTLINE_POINTS, min_cell_per_text_area: float = MIN_CELL_PER_TEXT_AREA) -> set[int]:
    """Outline every cell of ``labels`` on ``ax`` in the colour of its top class.

    Outlines are vector lines of ``linewidth`` points over a dark halo, drawn just
    inside each cell, so they stay visible at any image size and on bright or dark
    backgrounds, and two touching cells show two lines. Cells with tied top classes
    get a dashed outline in those classes' colours; cells without labels a white
    dotted one.

    Parameters
    ----------
    ax : matplotlib Axes
        Already showing the image (pixel centres at integer coordinates) at its
        final size in the figure.
    labels : ndarray, shape (H, W), int
    cells : CellClasses
    text : {"top", "all", "none"}
        Written inside each cell whose area is at least ``min_cell_per_text_area``
        times that of the text's box at the size the image is drawn.

    Returns
    -------
    set of int
        The classes drawn (for the legend); ``-1`` stands for "no label".
    """
    from matplotlib import patheffects
    from matplotlib.collections import LineCollection

    if text not in ("top", "all", "none"):
        raise ValueError(f"text {text!r}; expected 'top', 'all' or 'none'")
    height, width = labels.shape
    px_per_pt = _px_per_point(ax, width)
    halo_width = linewidth + _HALO_POINTS
    geometry = _cell_geometry(labels, inset_px=halo_width / 2 * px_per_pt)
    halo: list[np.ndarray] = []
    by_style: dict[tuple[str, object], list[np.ndarray]] = {}
    shown: set[int] = set()
    stroke = [patheffects.withStroke(linewidth=_TEXT_STROKE, foreground="black")]
    for cell, (contours, (tx, ty), area) in geometry.items():
        pairs = cells.get(cell, [])
        tops = top_classes(pairs)
        halo.extend(contours)
        if not tops:
            by_style.setdefault((UNLABELLED_COLOR, (0, (1.0, 1.5))), []).extend(contours)
            shown.add(-1)
        for j, k in enumerate(tops):  # tied classes take turns along the outline
            n = len(tops)
            style = "solid" if n == 1 else (j * _DASH_POINTS, (_DASH_POINTS, (n - 1) * _DASH_POINTS))
            by_style.setdefault((CLASS_COLORS[k], style), []).extend(contours)
            shown.add(k)
        if text == "none" or not pairs:
            continue
        if text == "top":
            k, conf = pairs[0]
            lines = [CLASS_SHORT_NAMES[k], f"{conf:.2f}"]
        else:
            lines = [CLASS_SHORT_NAMES[k] for k, _ in sorted(pairs)]
        half_w = 0.5 * _CHAR_WIDTH_EM * CELL_FONT_POINTS * max(len(t) for t in lines) * px_per_pt
        half_h = 0.5 * CELL_FONT_POINTS * len(lines) * px_per_pt
        if area < min_cell_per_text_area * 4 * half_w * half_h:
            continue
        # keep the text inside the image: half its size (in pixels) from each edge
        tx = min(max(tx, half_w), width - 1 - half_w) if width > 2 * half_w else width / 2
        ty = min(max(ty, half_h), height - 1 - half_h) if height > 2 * half_h else height / 2
        ax.text(tx, ty, "\n".join(lines), color="white", fontsize=CELL_FONT_POINTS, ha="center", va="center", path_effects=stroke, linespacing=1.0, clip_on=True)
    if halo:
        ax.add_collection(LineCollection(halo, colors="black", linewidths=halo_width, alpha=0.8, capstyle="round"))
    for (color, style), segs in by_style.items():
        ax.add_collection(LineCollection(segs, colors=color, linewidths=linewidth, linestyles=[style]))
    return shown


def _panel_height(image_shape: tuple[int, int], width_in: float) -> float:
    return width_in * image_shape[0] / image_shape[1]


def plot_channels(image: np.ndarray, *, title: str | None = None, stretch: bool = True, pixel_size_um: float | None = None, panel_inches: float = 3.2) -> "Figure":
    """The RGBY composite and the four channels side by side, each named.

    Parameters
    ----------
    image : ndarray, shape (H, W, 4), uint8
    title : str, optional
        Figure title (e.g. the image ID); the size in pixels is appended.
    stretch : bool
        Stretch each channel for display (:func:`stretch_contrast`).
    pixel_size_um : float, optional
        Draws a scale bar on the composite.

    Returns
    -------
    Figure
        Five panels: composite, then microtubules (red), protein (green), nucleus
        (blue), ER (yellow), in grey levels; an all-zero channel is titled "empty".
    """
    shown = stretch_contrast(image) if stretch else image
    panels = [("Composite (RGBY)", composite_rgb(shown), None)]
    names = {Channel.RED: "Microtubules (red)", Channel.GREEN: "Protein (green)", Channel.BLUE: "Nucleus (blue)", Channel.YELLOW: "ER (yellow)"}
    panels += [(names[c] + ("" if image[..., c].any() else ": empty"), shown[..., c], "gray") for c in Channel]
    fig = _new_figure(panel_inches * len(panels), _panel_height(image.shape[:2], panel_inches) + 0.6)
    axes = fig.subplots(1, len(panels))
    for ax, (name, picture, cmap) in zip(axes, panels):
        _show_image(ax, picture, cmap=cmap, vmin=0, vmax=255)
        ax.set_title(name, fontsize=10)
    if pixel_size_um:
        _scale_bar(axes[0], image.shape[1], pixel_size_um)
    size = f"{image.shape[1]} × {image.shape[0]} px" + (", contrast stretched per channel" if stretch else "")
    fig.suptitle(f"{title} — {size}" if title else size, fontsize=11)
    return fig


def plot_cell_panels(image: np.ndarray, panels: Sequence[CellPanel], *, title: str | None = None, stretch: bool = True, pixel_size_um: float | None = None, panel_inches: float = PANEL_INCHES) -> "Figure":
    """Side-by-side panels of one image, each with one labelling of its cells.

    Typically: prediction (top class and confidence written in each cell) | the
    segmentation masks with their propagated weak labels | the per-cell truth.
    One legend under the panels names every class drawn.

    Parameters
    ----------
    image : ndarray, shape (H, W, 4), uint8
    panels : sequence of CellPanel
        Each ``labels`` must be (H, W).
    title : str, optional
        Figure title (e.g. the image ID); the size in pixels is appended.
    stretch : bool
        Stretch each channel for display (:func:`stretch_contrast`).
    pixel_size_um : float, optional
        Draws a scale bar on the first panel.

    Returns
    -------
    Figure
    """
    if not panels:
        raise ValueError("no panels to draw; expected at least one CellPanel")
    for p in panels:
        if p.labels.shape != image.shape[:2]:
            raise ValueError(f"panel {p.title!r}: labels are {p.labels.shape} but the image is {image.shape[:2]}")
    background = display_rgb(image, stretch=stretch)
    fig = _new_figure(panel_inches * len(panels), _panel_height(image.shape[:2], panel_inches) + 1.4)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    drawn: set[int] = set()
    for ax, panel in zip(axes, panels):
        _show_image(ax, background)
        drawn |= draw_cells(ax, panel.labels, panel.cells, text=panel.text)
        ax.set_title(textwrap.fill(panel.title, 60), fontsize=10)
    if pixel_size_um:
        _scale_bar(axes[0], image.shape[1], pixel_size_um)
    handles = class_legend_handles((k for k in drawn if k >= 0), unlabelled=-1 in drawn)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3 * len(panels)), fontsize=9, frameon=False, handlelength=2.2)
    size = f"{image.shape[1]} × {image.shape[0]} px"
    fig.suptitle(f"{title} — {size}" if title else size, fontsize=11)
    return fig


# --------------------------------------------------------------------------- evaluation figures
def plot_class_ap(result: "MapResult", *, title: str | None = None) -> "Figure":
    """Per-class AP as horizontal bars, with true-cell counts and the mAP.

    Parameters
    ----------
    result : MapResult
        From :func:`hpaseg.metrics.competition_map`.

    Returns
    -------
    Figure
        One bar per class that has true cells, in the class colour, labelled with its
        AP, true cells and predictions; classes without true cells are listed (they do
        not count towards the mAP) but get no bar; a dashed line marks the mAP.
    """
    fig = _new_figure(8.5, 0.32 * NUM_CLASSES + 1.2)
    ax = fig.add_subplot()
    ys = np.arange(NUM_CLASSES)
    for k in range(NUM_CLASSES):
        n_true, n_pred = result.n_true.get(k, 0), result.n_pred.get(k, 0)
        if n_true:
            ap = result.ap[k]
            ax.barh(k, ap, color=CLASS_COLORS[k], edgecolor="black", linewidth=0.6, height=0.75)
            ax.text(ap + 0.01, k, f"{ap:.2f}   ({n_true} true, {n_pred} predicted)", va="center", fontsize=8, bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5})
        else:
            ax.text(0.01, k, f"no true cells ({n_pred} predicted)", va="center", fontsize=8, color="0.45", style="italic")
    ax.axvline(result.mAP, color="black", ls="--", lw=1.2, label=f"mAP = {result.mAP:.3f} (mean over classes with true cells)")
    fig.legend(loc="outside lower center", fontsize=9, frameon=False)
    ax.set_yticks(ys, [CLASS_NAMES[k] for k in ys], fontsize=9)
    for k, label in enumerate(ax.get_yticklabels()):
        if not result.n_true.get(k, 0):
            label.set_color("0.45")
    ax.set_ylim(NUM_CLASSES - 0.5, -0.6)
    ax.set_xlim(0, 1.35)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel(f"average precision (mask IoU ≥ {result.iou_threshold:g})")
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(f"{title or 'Per-class AP'} — mAP {result.mAP:.3f}", fontsize=11)
    return fig


def plot_confusion_grid(confusion: np.ndarray, class_ids: Sequence[int] | None = None, *, ncols: int = 5, hide_empty: bool = False, title: str | None = None) -> "Figure":
    """A 2×2 confusion matrix per class, in a grid.

    Parameters
    ----------
    confusion : ndarray, shape (C, 2, 2), int
        ``[[TN, FP], [FN, TP]]`` per class (:func:`hpaseg.metrics.multilabel_confusion`).
    class_ids : sequence of int, optional
        The class of each matrix (default 0..C-1).
    ncols : int
        Matrices per row.
    hide_empty : bool
        Leave out classes with neither a true nor a predicted positive.

    Returns
    -------
    Figure
        Cells coloured by the fraction of their row (of true negatives or true
        positives) and labelled with the count and that fraction; the frame of each
        matrix is in the class colour.
    """
    confusion = np.asarray(confusion)
    if confusion.ndim != 3 or confusion.shape[1:] != (2, 2):
        raise ValueError(f"confusion has shape {confusion.shape}; expected (C, 2, 2)")
    class_ids = list(range(len(confusion))) if class_ids is None else [int(k) for k in class_ids]
    if len(class_ids) != len(confusion):
        raise ValueError(f"{len(class_ids)} class ids for {len(confusion)} matrices")
    if hide_empty:
        keep = [i for i, m in enumerate(confusion) if m[1].sum() or m[:, 1].sum()]
        confusion, class_ids = confusion[keep], [class_ids[i] for i in keep]
    if not len(confusion):
        raise ValueError("no confusion matrix to draw (every class is empty)")
    n = len(confusion)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = _new_figure(2.25 * ncols, 2.15 * nrows + 0.5)
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    for ax, k, m in zip(axes, class_ids, confusion):
        rows = m.sum(axis=1, keepdims=True)
        frac = np.divide(m, rows, out=np.zeros(m.shape, float), where=rows > 0)
        ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        for i in range(2):
            for j in range(2):
                share = f"{frac[i, j]:.0%}" if rows[i, 0] else "–"
                ax.text(j, i, f"{int(m[i, j])}\n{share}", ha="center", va="center", fontsize=8, color="white" if frac[i, j] > 0.6 else "black")
        ax.set_xticks([0, 1], ["pred −", "pred +"], fontsize=7)
        ax.set_yticks([0, 1], ["true −", "true +"], fontsize=7)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_color(CLASS_COLORS[k])
            spine.set_linewidth(3)
        ax.set_title(textwrap.fill(CLASS_NAMES[k], 24), fontsize=8)
    note = "rows: true class absent / present; columns: predicted; count and share of the row"
    fig.suptitle(f"{title}\n{note}" if title else note, fontsize=10)
    return fig


def cell_targets(truth: Sequence["SubmissionRow"], submission: Sequence["SubmissionRow"], *, iou_threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell class indicators and scores, for cell-level confusion matrices.

    True and predicted cells (distinct mask strings) of each truth image are matched
    one-to-one, greedily by mask IoU, at ``IoU >= iou_threshold`` (the competition's
    0.6 by default). Every true cell gives one row: its classes, and the confidences
    of the predicted cell matched to it (zeros if none was: a missed cell). Every
    predicted cell left unmatched gives one row with no true class (a false
    detection). Submission rows of images absent from the truth are ignored.

    Returns
    -------
    y_true : ndarray, shape (N, 19), int64
    y_score : ndarray, shape (N, 19), float64
        Threshold ``y_score`` and pass both to :func:`hpaseg.metrics.multilabel_confusion`.

    Examples
    --------
    >>> from hpaseg.submission import Prediction, SubmissionRow, encode_label_image
    >>> m = encode_label_image(np.array([[1, 1, 0, 2]]))
    >>> truth = [SubmissionRow("a", 4, 1, [Prediction(0, 1.0, m[1]), Prediction(16, 1.0, m[2])])]
    >>> sub = [SubmissionRow("a", 4, 1, [Prediction(0, 0.8, m[1]), Prediction(5, 0.3, m[1])])]
    >>> y_true, y_score = cell_targets(truth, sub)
    >>> y_true[:, [0, 5, 16]].tolist(), y_score[:, [0, 5, 16]].tolist()
    ([[1, 0, 0], [0, 0, 1]], [[0.8, 0.3, 0.0], [0.0, 0.0, 0.0]])
    """
    from pycocotools import mask as coco_mask

    from .metrics import COMPETITION_IOU_THRESHOLD
    from .submission import decode_rle

    threshold = COMPETITION_IOU_THRESHOLD if iou_threshold is None else float(iou_threshold)
    by_id = {r.image_id: r for r in submission}
    y_true: list[np.ndarray] = []
    y_score: list[np.ndarray] = []

    def distinct(row: "SubmissionRow", kind: str) -> tuple[list[dict], list[np.ndarray]]:
        index: dict[str, int] = {}
        rles, vectors = [], []
        for k, p in enumerate(row.predictions):
            if p.mask not in index:
                index[p.mask] = len(rles)
                rles.append(decode_rle(p.mask, row.height, row.width, where=f"{kind} image {row.image_id!r}, prediction {k + 1}"))
                vectors.append(np.zeros(NUM_CLASSES))
            v = vectors[index[p.mask]]
            v[p.label] = max(v[p.label], float(p.confidence))
        return rles, vectors

    for t_row in truth:
        true_rles, true_vecs = distinct(t_row, "truth")
        s_row = by_id.get(t_row.image_id)
        pred_rles, pred_vecs = distinct(s_row, "submission") if s_row is not None else ([], [])
        if s_row is not None and (s_row.width, s_row.height) != (t_row.width, t_row.height):
            raise InputError(f"submission image {s_row.image_id!r}: size {s_row.width}x{s_row.height}; the truth says {t_row.width}x{t_row.height}")
        match_of_true: dict[int, int] = {}
        if true_rles and pred_rles:
            iou = np.asarray(coco_mask.iou(pred_rles, true_rles, [0] * len(true_rles)), dtype=np.float64)
            pairs = np.argwhere(iou >= threshold)
            order = np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")
            used_pred: set[int] = set()
            for p, t in pairs[order]:
                if int(t) not in match_of_true and int(p) not in used_pred:
                    match_of_true[int(t)] = int(p)
                    used_pred.add(int(p))
        for t, vec in enumerate(true_vecs):
            y_true.append((vec > 0).astype(np.int64))
            y_score.append(pred_vecs[match_of_true[t]] if t in match_of_true else np.zeros(NUM_CLASSES))
        matched = set(match_of_true.values())
        for p, vec in enumerate(pred_vecs):
            if p not in matched:
                y_true.append(np.zeros(NUM_CLASSES, np.int64))
                y_score.append(vec)
    if not y_true:
        raise InputError("truth has no cells; expected at least one 'label confidence mask' triple")
    return np.stack(y_true), np.stack(y_score)


def per_image_map(truth: Sequence["SubmissionRow"], submission: Sequence["SubmissionRow"], *, iou_threshold: float | None = None) -> dict[str, float]:
    """The competition mAP of each truth image on its own (the metric on one-image subsets).

    Returns
    -------
    dict
        ``{ID: mAP}`` for every truth image with at least one true cell; an image
        missing from the submission scores 0.
    """
    from .metrics import COMPETITION_IOU_THRESHOLD, competition_map

    threshold = COMPETITION_IOU_THRESHOLD if iou_threshold is None else float(iou_threshold)
    by_id = {r.image_id: r for r in submission}
    out = {}
    for t_row in truth:
        if not t_row.predictions:
            continue
        s_row = by_id.get(t_row.image_id)
        out[t_row.image_id] = competition_map([t_row], [s_row] if s_row is not None else [], iou_threshold=threshold).mAP
    return out


def worst_images(scores: Mapping[str, float], n: int = 5) -> list[tuple[str, float]]:
    """The ``n`` lowest-scoring images, worst first (ties by ID; NaN scores left out).

    >>> worst_images({"b": 0.5, "a": 0.5, "c": 0.1, "d": float("nan"), "e": 0.9}, n=3)
    [('c', 0.1), ('a', 0.5), ('b', 0.5)]
    """
    if n < 0:
        raise ValueError(f"n is {n}; expected a non-negative number of images")
    ranked = sorted(((float(v), str(k)) for k, v in scores.items() if not math.isnan(float(v))))
    return [(k, v) for v, k in ranked[:n]]


# --------------------------------------------------------------------------- feature maps
def _named_layer(model: "torch.nn.Module", layer: str) -> "torch.nn.Module":
    modules = dict(model.named_modules())
    for name in (layer, f"backbone.body.{layer}"):
        if name and name in modules:
            return modules[name]
    body = modules.get("backbone.body")
    choices = [n for n, _ in body.named_children()] if body is not None else sorted(n for n in modules if n)[:20]
    raise InputError(f"layer {layer!r} is not in the model; expected one of {', '.join(choices)}")


def feature_maps(model: "torch.nn.Module", image: "np.ndarray | torch.Tensor", layer: str) -> np.ndarray:
    """Activations of one layer of a Mask R-CNN backbone for one image, via a forward hook.

    The image goes through the model's own transform (normalisation, resizing to its
    working size) and its backbone only (no detection heads). For the DenseNet121
    backbones, ``layer`` names a child of ``model.backbone.body`` (torchvision's
    ``densenet121().features``: ``conv0``, ``pool0``, ``denseblock1`` .. ``denseblock4``,
    ``transition1`` .. ``transition3``, ``norm5``); any full module name
    (``backbone.fpn.layer_blocks.0``) works too.

    Parameters
    ----------
    model : torchvision MaskRCNN
        Its training mode is restored afterwards.
    image : ndarray (H, W, 4) uint8, or Tensor (4, H, W) float in [0, 1]
    layer : str

    Returns
    -------
    ndarray, shape (C, h, w), float32
        Cropped to the image (the padding the transform adds is removed), so the
        maps keep the image's aspect ratio.
    """
    import torch

    module = _named_layer(model, layer)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 4:
            raise InputError(f"image has shape {image.shape}; expected an (H, W, 4) RGBY image")
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div(255.0)
    else:
        tensor = image.float()
    if tensor.ndim != 3 or tensor.shape[0] != 4:
        raise InputError(f"image tensor has shape {tuple(tensor.shape)}; expected (4, H, W)")
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output) -> None:
        out = output
        if isinstance(out, dict):
            out = next(iter(out.values()))
        if isinstance(out, (list, tuple)):
            out = out[0]
        captured.append(out.detach())

    was_training = model.training
    handle = module.register_forward_hook(hook)
    try:
        model.eval()
        with torch.no_grad():
            images, _ = model.transform([tensor.to(device)])
            model.backbone(images.tensors)
    finally:
        handle.remove()
        model.train(was_training)
    if not captured:
        raise InputError(f"layer {layer!r} was not run by the backbone; choose a layer of model.backbone")
    out = captured[0][0].float()
    (h, w), (ph, pw) = images.image_sizes[0], images.tensors.shape[-2:]
    fh, fw = math.ceil(out.shape[-2] * h / ph), math.ceil(out.shape[-1] * w / pw)
    return out[:, :fh, :fw].cpu().numpy()


def top_channels(maps: np.ndarray, n: int) -> list[int]:
    """Indices of the ``n`` channels with the highest mean activation, highest first.

    >>> top_channels(np.arange(3)[:, None, None] * np.ones((3, 2, 2)), 2)
    [2, 1]
    """
    if maps.ndim != 3:
        raise ValueError(f"maps has shape {maps.shape}; expected (C, h, w)")
    means = maps.reshape(maps.shape[0], -1).mean(axis=1)
    return [int(i) for i in np.argsort(-means, kind="stable")[: max(0, n)]]


def feature_grid(maps: np.ndarray, *, n_channels: int = 16, ncols: int = 4, gap_px: int = 1) -> tuple[np.ndarray, list[int]]:
    """Tile the most active channels of ``maps`` into one picture.

    Parameters
    ----------
    maps : ndarray, shape (C, h, w), float
    n_channels : int
        Channels shown (the most active, :func:`top_channels`), at most C.
    ncols : int
        Tiles per row.
    gap_px : int
        NaN pixels between tiles (shown as background by ``imshow``).

    Returns
    -------
    grid : ndarray, shape (rows*h + (rows-1)*gap, cols*w + (cols-1)*gap), float32
        Each tile scaled to [0, 1] on its own.
    channels : list of int
        The channel of each tile, row by row.

    Examples
    --------
    >>> grid, ch = feature_grid(np.random.rand(8, 5, 7), n_channels=4, ncols=2)
    >>> grid.shape, len(ch)
    ((11, 15), 4)
    """
    channels = top_channels(maps, min(n_channels, maps.shape[0]))
    ncols = max(1, min(ncols, len(channels)))
    nrows = max(1, math.ceil(len(channels) / ncols))
    h, w = maps.shape[1:]
    grid = np.full((nrows * h + (nrows - 1) * gap_px, ncols * w + (ncols - 1) * gap_px), np.nan, np.float32)
    for i, c in enumerate(channels):
        tile = maps[c].astype(np.float32)
        lo, hi = float(tile.min()), float(tile.max())
        tile = (tile - lo) / (hi - lo) if hi > lo else np.zeros_like(tile)
        r, q = divmod(i, ncols)
        grid[r * (h + gap_px) : r * (h + gap_px) + h, q * (w + gap_px) : q * (w + gap_px) + w] = tile
    return grid, channels


def plot_feature_maps(maps: np.ndarray, *, layer: str, image: np.ndarray | None = None, n_channels: int = 16, ncols: int = 4, stretch: bool = True) -> "Figure":
    """The most active channels of a layer's activations, each as its own panel.

    Parameters
    ----------
    maps : ndarray, shape (C, h, w)
        From :func:`feature_maps`.
    layer : str
        Named in the title.
    image : ndarray (H, W, 4) uint8, optional
        Shown first, for reference, at the same aspect ratio.
    n_channels, ncols : int
        Channels shown and panels per row.

    Returns
    -------
    Figure
        Each channel in viridis, scaled to its own range, titled with its index and
        mean activation.
    """
    channels = top_channels(maps, min(n_channels, maps.shape[0]))
    tiles = ([("input image", None)] if image is not None else []) + [(f"channel {c} (mean {maps[c].mean():.2g})", c) for c in channels]
    ncols = max(1, min(ncols, len(tiles)))
    nrows = math.ceil(len(tiles) / ncols)
    h, w = maps.shape[1:]
    tile_in = 2.4
    fig = _new_figure(tile_in * ncols, tile_in * h / w * nrows + 0.7)
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax in axes[len(tiles):]:
        ax.set_axis_off()
    for ax, (name, c) in zip(axes, tiles):
        if c is None:
            _show_image(ax, display_rgb(image, stretch=stretch))
        else:
            _show_image(ax, maps[c], cmap="viridis")
        ax.set_title(name, fontsize=8)
    fig.suptitle(f"Feature maps of {layer}: {maps.shape[0]} channels of {h} × {w}, the {len(channels)} most active", fontsize=10)
    return fig


# --------------------------------------------------------------------------- the classifier study
#: Columns of ``RESULTS/results.csv`` written by ``hpaseg ablation``.
RESULTS_COLUMNS: tuple[str, ...] = ("config", "level", "backbone", "loss", "augment", "channels", "image_size", "epochs", "macro_f1", "macro_f1_tuned", "macro_ap", "train_seconds")
#: Columns of ``RESULTS/per_class_ap.csv`` (``ap`` empty for a class without positives).
PER_CLASS_AP_COLUMNS: tuple[str, ...] = ("config", "class_id", "class_name", "ap")
#: Columns of ``RESULTS/confusion.csv``.
CONFUSION_COLUMNS: tuple[str, ...] = ("config", "class_id", "class_name", "tn", "fp", "fn", "tp")
#: Metrics of ``results.csv`` plotted per configuration.
ABLATION_METRICS: tuple[str, ...] = ("macro_f1", "macro_f1_tuned", "macro_ap")
_METRIC_NAMES = {"macro_f1": "macro-F1 (threshold 0.5)", "macro_f1_tuned": "macro-F1 (tuned thresholds)", "macro_ap": "macro AP"}
_INT_COLUMNS = ("image_size", "epochs")
_FLOAT_COLUMNS = ("macro_f1", "macro_f1_tuned", "macro_ap", "train_seconds")
_METRIC_SHADES = ("#4477AA", "#66CCEE", "#228833")  # Tol bright: not class colours, so no class is implied


def _where(row: Mapping[str, str], source: str) -> str:
    return f"{source}, line {row.get('_row', '?')}"


def _number(text: str, where: str, column: str, *, integer: bool = False) -> float:
    text = str(text).strip()
    if text == "" and not integer:
        return math.nan
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number (or empty)"
        raise InputError(f"{where}: {column} {text!r}; expected {kind}") from None
    return value


def ablation_results(rows: Iterable[Mapping[str, str]], *, source: str = "results.csv") -> list[dict]:
    """Parse the rows of ``results.csv``: numbers become numbers (NaN where empty).

    Parameters
    ----------
    rows : iterable of dict
        As :func:`hpaseg.io.read_csv_rows` returns them, with :data:`RESULTS_COLUMNS`.
    source : str
        Named in error messages.

    Returns
    -------
    list of dict
        One per configuration, in file order, with the columns of :data:`RESULTS_COLUMNS`.

    Raises
    ------
    InputError
        A non-numeric metric, or a configuration listed twice.
    """
    out, seen = [], {}
    for row in rows:
        where = _where(row, source)
        item: dict = {c: str(row[c]).strip() for c in RESULTS_COLUMNS}
        for c in _INT_COLUMNS:
            item[c] = int(_number(row[c], where, c, integer=True))
        for c in _FLOAT_COLUMNS:
            item[c] = float(_number(row[c], where, c))
        if item["config"] in seen:
            raise InputError(f"{where}: configuration {item['config']!r} already on line {seen[item['config']]}; each configuration must appear once")
        seen[item["config"]] = row.get("_row", "?")
        out.append(item)
    if not out:
        raise InputError(f"{source}: no rows after the header; expected one row per configuration")
    return out


def best_configuration(results: Sequence[Mapping], metric: str = "macro_ap") -> str:
    """The configuration with the highest ``metric`` (NaN counts as lowest; ties: first).

    >>> best_configuration([{"config": "a", "macro_ap": 0.2}, {"config": "b", "macro_ap": float("nan")}, {"config": "c", "macro_ap": 0.4}])
    'c'
    """
    if not results:
        raise InputError("no configurations in the results")
    return max(results, key=lambda r: -math.inf if math.isnan(r[metric]) else r[metric])["config"]


def results_markdown(results: Sequence[Mapping], columns: Sequence[str] = RESULTS_COLUMNS, *, sort_by: str | None = "macro_ap") -> str:
    """The results as a Markdown table (best ``sort_by`` first; metrics to 3 decimals).

    >>> print(results_markdown([{"config": "a", "macro_ap": 0.5}, {"config": "b", "macro_ap": 0.75}], ["config", "macro_ap"]))
    | config | macro_ap |
    |---|---|
    | b | 0.750 |
    | a | 0.500 |
    """
    rows = list(results)
    if sort_by is not None:
        rows.sort(key=lambda r: -r[sort_by] if not math.isnan(r[sort_by]) else math.inf)

    def cell(value) -> str:
        if isinstance(value, float):
            return "–" if math.isnan(value) else (f"{value:.0f}" if abs(value) >= 100 else f"{value:.3f}")
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def plot_ablation_metrics(results: Sequence[Mapping], metrics: Sequence[str] = ABLATION_METRICS, *, title: str | None = None) -> "Figure":
    """Grouped horizontal bars: each metric for each configuration (best macro AP on top).

    Returns
    -------
    Figure
        One group per configuration, one bar per metric, values written at the bar ends;
        missing values (NaN) are written as "n/a".
    """
    if not results:
        raise ValueError("no results to plot")
    unknown = [m for m in metrics if m not in _METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; expected some of {list(_METRIC_NAMES)}")
    order = sorted(results, key=lambda r: -r["macro_ap"] if not math.isnan(r["macro_ap"]) else math.inf)
    n, m = len(order), len(metrics)
    fig = _new_figure(9.0, 0.2 * n * m + 0.2 * n + 1.4)
    ax = fig.add_subplot()
    height = 0.8 / m
    for j, metric in enumerate(metrics):
        ys = np.arange(n) + (j - (m - 1) / 2) * height
        values = np.array([r[metric] for r in order], float)
        ax.barh(ys, np.nan_to_num(values), height=height * 0.92, color=_METRIC_SHADES[j % len(_METRIC_SHADES)], label=_METRIC_NAMES[metric])
        for y, v in zip(ys, values):
            ax.text((0 if math.isnan(v) else v) + 0.01, y, "n/a" if math.isnan(v) else f"{v:.3f}", va="center", fontsize=7)
    ax.set_yticks(np.arange(n), [r["config"] for r in order], fontsize=9)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("score")
    ax.spines[["top", "right"]].set_visible(False)
    fig.legend(loc="outside lower center", ncols=m, fontsize=9, frameon=False)
    ax.set_title(title or "Classifier study: metrics per configuration (best macro AP on top)", fontsize=11)
    return fig


def per_class_ap_matrix(rows: Iterable[Mapping[str, str]], *, source: str = "per_class_ap.csv") -> tuple[list[str], np.ndarray]:
    """Configurations × classes matrix of AP from the rows of ``per_class_ap.csv``.

    Returns
    -------
    configs : list of str
        In order of first appearance.
    ap : ndarray, shape (len(configs), 19), float64
        NaN where the file has no value (a class without positives, or no row).
    """
    configs: list[str] = []
    values: dict[tuple[str, int], float] = {}
    for row in rows:
        where = _where(row, source)
        config = str(row["config"]).strip()
        k = int(_number(row["class_id"], where, "class_id", integer=True))
        if not 0 <= k < NUM_CLASSES:
            raise InputError(f"{where}: class_id {k} is outside 0-{NUM_CLASSES - 1}")
        if config not in configs:
            configs.append(config)
        values[(config, k)] = _number(row["ap"], where, "ap")
    if not configs:
        raise InputError(f"{source}: no rows after the header; expected one row per (configuration, class)")
    ap = np.full((len(configs), NUM_CLASSES), np.nan)
    for (config, k), v in values.items():
        ap[configs.index(config), k] = v
    return configs, ap


def plot_ap_heatmap(configs: Sequence[str], ap: np.ndarray, *, title: str | None = None) -> "Figure":
    """Heatmap of per-class AP: one row per configuration, one column per class.

    Cells hold the AP to two decimals; classes without positives (NaN) are hatched
    and marked "–". Colours: viridis (colour-blind safe, light = high).
    """
    import matplotlib
    from matplotlib.patches import Rectangle

    ap = np.asarray(ap, float)
    if ap.shape != (len(configs), NUM_CLASSES):
        raise ValueError(f"ap has shape {ap.shape}; expected ({len(configs)}, {NUM_CLASSES})")
    fig = _new_figure(1.0 + 0.55 * NUM_CLASSES, 0.45 * len(configs) + 3.2)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(ap), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i in range(ap.shape[0]):
        for k in range(NUM_CLASSES):
            v = ap[i, k]
            if math.isnan(v):
                ax.add_patch(Rectangle((k - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="0.75", linewidth=0))
                ax.text(k, i, "–", ha="center", va="center", fontsize=7, color="0.4")
            else:
                ax.text(k, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="black" if v > 0.55 else "white")
    ax.set_xticks(np.arange(NUM_CLASSES), [f"{CLASS_SHORT_NAMES[k]}" for k in range(NUM_CLASSES)], rotation=50, ha="right", rotation_mode="anchor", fontsize=8)
    for k, label in enumerate(ax.get_xticklabels()):
        label.set_bbox({"facecolor": CLASS_COLORS[k], "edgecolor": "none", "pad": 1.0, "alpha": 0.35})
    ax.set_yticks(np.arange(len(configs)), list(configs), fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8, label="AP")
    ax.set_title(title or "Per-class AP by configuration (– : no positive sample)", fontsize=11)
    return fig


def confusion_by_config(rows: Iterable[Mapping[str, str]], *, source: str = "confusion.csv") -> dict[str, tuple[list[int], np.ndarray]]:
    """Per-class 2×2 confusion matrices of each configuration from ``confusion.csv``.

    Returns
    -------
    dict
        ``{config: (class ids in file order, ndarray (C, 2, 2) [[TN, FP], [FN, TP]])}``,
        configurations in order of first appearance; ready for :func:`plot_confusion_grid`.
    """
    found: dict[str, dict[int, list[int]]] = {}
    for row in rows:
        where = _where(row, source)
        k = int(_number(row["class_id"], where, "class_id", integer=True))
        if not 0 <= k < NUM_CLASSES:
            raise InputError(f"{where}: class_id {k} is outside 0-{NUM_CLASSES - 1}")
        counts = [int(_number(row[c], where, c, integer=True)) for c in ("tn", "fp", "fn", "tp")]
        if min(counts) < 0:
            raise InputError(f"{where}: negative count in tn,fp,fn,tp {counts}; expected counts >= 0")
        per = found.setdefault(str(row["config"]).strip(), {})
        if k in per:
            raise InputError(f"{where}: class {k} of configuration {row['config']!r} appears twice")
        per[k] = counts
    if not found:
        raise InputError(f"{source}: no rows after the header; expected one row per (configuration, class)")
    return {c: (list(per), np.array([[[tn, fp], [fn, tp]] for tn, fp, fn, tp in per.values()], np.int64)) for c, per in found.items()}


# --------------------------------------------------------------------------- reading (CLI and notebooks)
def _check_shape(shape: tuple[int, int], image_shape: tuple[int, int], what: str, image_id: str, data_dir: Path) -> None:
    if tuple(shape) != tuple(image_shape):
        raise InputError(
            f"{what}: mask is {shape[0]}x{shape[1]} px but image {image_id!r} in {data_dir} is "
            f"{image_shape[0]}x{image_shape[1]}; masks must be at the image's original resolution"
        )


def _weak_mask_dir(weak_labels: Path) -> Path:
    """The masks folder recorded by ``hpaseg propagate`` next to its ``cells.csv``."""
    from . import io

    summary = weak_labels.parent / "propagate.json"
    if summary.is_file():
        masks = io.read_json(summary).get("options", {}).get("masks")
        if masks:
            return Path(masks)
    raise InputError(f"--weak-labels {weak_labels}: no propagate.json with the masks folder next to it; give the segmentation masks with --weak-masks")


def _describe_labels(cells: CellClasses) -> str:
    classes = sorted({k for pairs in cells.values() for k, _ in pairs})
    return ", ".join(CLASS_NAMES[k] for k in classes) if classes else "none"


def read_image_panels(
    data_dir: str | Path,
    image_ids: Sequence[str],
    *,
    masks: str | Path | None = None,
    cells_csv: str | Path | None = None,
    submission: str | Path | None = None,
    weak_labels: str | Path | None = None,
    weak_masks: str | Path | None = None,
    truth: str | Path | None = None,
    require_all: bool = True,
) -> dict[str, tuple[np.ndarray, list[CellPanel]]]:
    """Read images, predictions, weak labels and truth, checked, as panels to draw.

    This function reads files (it backs ``hpaseg visualize`` and the notebooks); the
    drawing is :func:`plot_cell_panels`.

    Parameters
    ----------
    data_dir : path
        Folder of ``{ID}_{red,green,blue,yellow}.png``.
    image_ids : sequence of str
    masks : path, optional
        Predicted ``{ID}_cellmask.png`` (``hpaseg predict --save-masks``), with their
        labels in ``cells_csv`` (default ``masks/cells.csv``).
    submission : path, optional
        A submission CSV instead of ``masks`` (each distinct mask string is a cell).
    weak_labels : path, optional
        ``DATASET/cells.csv`` of ``hpaseg propagate`` (or ``cell_labels.csv`` of
        ``hpaseg synth``), drawn on the cell masks in ``weak_masks`` (default: the
        masks folder recorded in ``DATASET/propagate.json``).
    truth : path, optional
        True cells in the submission format (``hpaseg synth``'s ``truth.csv``).
    require_all : bool
        When true, an image missing from ``weak_labels`` or ``truth`` is an error;
        when false its panel is left out.

    Returns
    -------
    dict
        ``{ID: (image (H, W, 4) uint8, panels)}`` in the order of ``image_ids``.

    Raises
    ------
    InputError
        An unknown ID, a missing file, or a mask whose size differs from its image's;
        nothing is returned half-read.
    """
    from . import io
    from .submission import read_cell_labels, read_submission

    data_dir = Path(data_dir)
    if not image_ids:
        raise InputError("no image IDs given; expected at least one ID")
    if masks is not None and submission is not None:
        raise InputError("give the prediction either as masks (--masks) or as a submission (--submission), not both")
    available = set(io.list_image_ids(data_dir))
    unknown = [i for i in image_ids if i not in available]
    if unknown:
        raise InputError(f"image {unknown[0]!r} is not in {data_dir} ({len(available)} images there); expected IDs of {{ID}}_green.png files in --data")

    pred_cells: dict[str, CellClasses] = {}
    sub_rows: dict[str, SubmissionRow] = {}
    if masks is not None:
        masks = Path(masks)
        cells_csv = Path(cells_csv) if cells_csv is not None else masks / "cells.csv"
        pred_cells = group_cell_labels(read_cell_labels(cells_csv))
    elif submission is not None:
        sub_rows = {r.image_id: r for r in read_submission(submission)}
    weak: dict[str, CellClasses] = {}
    if weak_labels is not None:
        weak_labels = Path(weak_labels)
        weak = weak_cell_classes(io.read_csv_rows(weak_labels, ("ID", "cell", "Label")), source=str(weak_labels))
        weak_masks = Path(weak_masks) if weak_masks is not None else _weak_mask_dir(weak_labels)
    truth_rows: dict[str, SubmissionRow] = {}
    if truth is not None:
        truth_rows = {r.image_id: r for r in read_submission(truth)}

    out: dict[str, tuple[np.ndarray, list[CellPanel]]] = {}
    for image_id in image_ids:
        image = io.read_rgby(data_dir, image_id)
        shape = image.shape[:2]
        panels: list[CellPanel] = []
        if masks is not None:
            path = io.mask_paths(masks, image_id)[0]
            labels = io.read_mask(path)
            _check_shape(labels.shape, shape, str(path), image_id, data_dir)
            cells = pred_cells.get(image_id, {})
            present = set(np.unique(labels).tolist())
            stray = sorted(c for c in cells if c not in present)
            if stray:
                raise InputError(f"{cells_csv}: cell {stray[0]} of image {image_id!r} is not in {path}; the table and the masks must come from the same run")
            panels.append(CellPanel(f"Prediction: {len(present - {0})} cells (top class, confidence)", labels, cells, "top"))
        elif submission is not None:
            row = sub_rows.get(image_id)
            if row is None:
                raise InputError(f"--submission {submission}: no row for image {image_id!r}; expected one row per image")
            _check_shape((row.height, row.width), shape, f"{submission}, image {image_id!r}", image_id, data_dir)
            labels, cells = cells_from_submission_row(row)
            panels.append(CellPanel(f"Prediction: {len(cells)} cells (top class, confidence)", labels, cells, "top"))
        if weak_labels is not None:
            if image_id in weak:
                path = io.mask_paths(weak_masks, image_id)[0]
                labels = io.read_mask(path)
                _check_shape(labels.shape, shape, str(path), image_id, data_dir)
                panels.append(CellPanel(f"Segmentation + weak labels: {_describe_labels(weak[image_id])}", labels, weak[image_id], "none"))
            elif require_all:
                raise InputError(f"--weak-labels {weak_labels}: no cells of image {image_id!r}; weak labels exist only for images of the training CSV given to hpaseg propagate")
        if truth is not None:
            row = truth_rows.get(image_id)
            if row is not None:
                _check_shape((row.height, row.width), shape, f"{truth}, image {image_id!r}", image_id, data_dir)
                labels, cells = cells_from_submission_row(row)
                panels.append(CellPanel(f"Truth: {len(cells)} cells (all classes)", labels, cells, "all"))
            elif require_all:
                raise InputError(f"--truth {truth}: no row for image {image_id!r}; expected the true cells of every image asked for")
        out[image_id] = (image, panels)
    return out


# --------------------------------------------------------------------------- CLI
def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg visualize``."""
    parser = ArgumentParser(prog="hpaseg visualize", description="Draw predicted cells in class colours next to the weak labels and the truth, as {ID}_overlay.png.")
    g = parser.add_argument_group("images")
    g.add_argument("--data", required=True, help="folder of {ID}_{red,green,blue,yellow}.png images")
    g.add_argument("--ids", required=True, nargs="+", metavar="ID", help="images to draw")
    g = parser.add_argument_group("prediction (one of)")
    p = g.add_mutually_exclusive_group(required=True)
    p.add_argument("--masks", metavar="DIR", help="predicted {ID}_cellmask.png and cells.csv (hpaseg predict --save-masks DIR)")
    p.add_argument("--submission", metavar="SUB.csv", help="a submission CSV (each distinct mask is a cell)")
    g.add_argument("--cells", metavar="CSV", help="per-cell labels ID,cell,label,confidence of --masks (default DIR/cells.csv)")
    g = parser.add_argument_group("references (optional)")
    g.add_argument("--weak-labels", metavar="CSV", help="DATASET/cells.csv of hpaseg propagate: the segmentation's cells with their image's labels")
    g.add_argument("--weak-masks", metavar="DIR", help="cell masks the weak labels refer to (default: the folder recorded in DATASET/propagate.json)")
    g.add_argument("--truth", metavar="TRUTH.csv", help="true cells in the submission format (hpaseg synth's truth.csv)")
    g = parser.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="DIR", help="folder for {ID}_overlay.png")
    g.add_argument("--pixel-size-um", type=float, help="pixel size in µm at the original resolution: draws a scale bar")
    g.add_argument("--no-stretch", action="store_true", help="show channels as they are (default: stretch each for display)")
    g.add_argument("--dpi", type=int, default=_DEFAULT_DPI, help=f"resolution of the PNGs (default {_DEFAULT_DPI})")
    return parser


@cli_entry("visualize")
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg visualize``."""
    from . import io

    args = build_parser().parse_args(argv)
    if args.dpi < 20:
        raise InputError(f"--dpi {args.dpi}: expected at least 20")
    if args.pixel_size_um is not None and not args.pixel_size_um > 0:
        raise InputError(f"--pixel-size-um {args.pixel_size_um}: expected a positive number")
    if args.cells and not args.masks:
        raise InputError("--cells labels the cells of --masks; give --masks too")
    if len(set(args.ids)) != len(args.ids):
        raise InputError(f"--ids: an ID is given twice ({', '.join(args.ids)})")
    views = read_image_panels(args.data, args.ids, masks=args.masks, cells_csv=args.cells, submission=args.submission, weak_labels=args.weak_labels, weak_masks=args.weak_masks, truth=args.truth, require_all=True)
    pictures = {}
    for image_id, (image, panels) in views.items():  # draw everything before writing anything
        fig = plot_cell_panels(image, panels, title=image_id, stretch=not args.no_stretch, pixel_size_um=args.pixel_size_um)
        pictures[image_id] = figure_to_rgb(fig, dpi=args.dpi)
    out = Path(args.out)
    for image_id, rgb in pictures.items():
        io.write_rgb_png(out / f"{image_id}_overlay.png", rgb)
    print(f"wrote {len(pictures)} overlay(s) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
