"""Cells drawn on images: per-cell labels from tables and submissions, outlines in class
colours with their labels written inside, and panels of one image under several labellings.

A cell is outlined in the colour of its top class. Where several classes tie for the top
(true and weak labels, given at confidence 1), the outline is dashed in their colours in
turn. Cells of a mask without any label are outlined in white, dotted. Images keep their
scale: ``imshow`` with square pixels, never resampled before display; the size in
pixels is in the title and a scale bar is drawn when the pixel size is known.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.collections import LineCollection
from scipy import ndimage
from skimage.measure import find_contours

from ..classes import Channel
from ..errors import InputError
from ..io import INT_RE, LINE, parse_labels
from ..submission import CellLabel, SubmissionRow, decode_mask
from .colors import CLASS_COLORS, CLASS_SHORT_NAMES, UNLABELLED_COLOR
from .figures import (
    class_legend_handles,
    new_figure,
    scale_bar,
    show_image,
)
from .images import composite_rgb, display_rgb, stretch_contrast

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "CellClasses",
    "CellPanel",
    "top_classes",
    "group_cell_labels",
    "weak_cell_classes",
    "cells_from_submission_row",
    "draw_cells",
    "plot_channels",
    "plot_cell_panels",
]

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


def group_cell_labels(cells: Iterable[CellLabel]) -> dict[str, CellClasses]:
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


def weak_cell_classes(table: pd.DataFrame, *, source: str = "cells.csv") -> dict[str, CellClasses]:
    """Per-cell labels from a table with ``ID``, ``cell`` and ``Label`` columns, at confidence 1.

    Reads the weak labels of ``hpaseg propagate`` (``DATASET/cells.csv``) and the true
    per-cell labels of ``hpaseg synth`` (``OUT/cell_labels.csv``) alike.

    Parameters
    ----------
    table : pandas.DataFrame
        As :func:`hpaseg.io.read_table` returns it (its line column names the rows).
    source : str
        Named in error messages.

    Examples
    --------
    >>> weak_cell_classes(pd.DataFrame({"ID": ["a"], "cell": ["3"], "Label": ["16|0"]}))
    {'a': {3: [(0, 1.0), (16, 1.0)]}}
    """
    out: dict[str, CellClasses] = {}
    for row in table.to_dict("records"):
        where = f"{source}, line {row.get(LINE, '?')}"
        cell_text = str(row["cell"]).strip()
        if not INT_RE.fullmatch(cell_text) or int(cell_text) < 1:
            raise InputError(f"{where}: cell {row['cell']!r}; expected a positive integer cell id")
        labels = parse_labels(row["Label"], where=where)
        out.setdefault(str(row["ID"]).strip(), {})[int(cell_text)] = [(k, 1.0) for k in labels]
    return out


def cells_from_submission_row(row: SubmissionRow) -> tuple[np.ndarray, CellClasses]:
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


def _cell_geometry(labels: np.ndarray, inset_px: float) -> dict[int, tuple[list[np.ndarray], tuple[float, float], int]]:
    """For every cell: its outline(s) as (N, 2) x, y arrays, ``inset_px`` inside its
    boundary (so the outlines of touching cells do not overlap; a cell too thin for
    that keeps its boundary), the point deepest inside it (where text goes) and its
    area in pixels."""

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


def _px_per_point(ax: Axes, width_px: int) -> float:
    """Image pixels per typographic point on ``ax`` (from its width in the figure)."""
    fig = ax.get_figure()
    width_in = ax.get_position().width * fig.get_figwidth()
    return width_px / max(width_in * 72.0, 1e-6)


def draw_cells(
    ax: Axes,
    labels: np.ndarray,
    cells: CellClasses,
    *,
    text: str = "top",
    linewidth: float = OUTLINE_POINTS,
    min_cell_per_text_area: float = MIN_CELL_PER_TEXT_AREA,
) -> set[int]:
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
        ax.text(
            tx,
            ty,
            "\n".join(lines),
            color="white",
            fontsize=CELL_FONT_POINTS,
            ha="center",
            va="center",
            path_effects=stroke,
            linespacing=1.0,
            clip_on=True,
        )
    if halo:
        ax.add_collection(LineCollection(halo, colors="black", linewidths=halo_width, alpha=0.8, capstyle="round"))
    for (color, style), segs in by_style.items():
        ax.add_collection(LineCollection(segs, colors=color, linewidths=linewidth, linestyles=[style]))
    return shown


def _panel_height(image_shape: tuple[int, int], width_in: float) -> float:
    return width_in * image_shape[0] / image_shape[1]


def plot_channels(
    image: np.ndarray,
    *,
    title: str | None = None,
    stretch: bool = True,
    pixel_size_um: float | None = None,
    panel_inches: float = 3.2,
) -> Figure:
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
    names = {
        Channel.RED: "Microtubules (red)",
        Channel.GREEN: "Protein (green)",
        Channel.BLUE: "Nucleus (blue)",
        Channel.YELLOW: "ER (yellow)",
    }
    panels += [(names[c] + ("" if image[..., c].any() else ": empty"), shown[..., c], "gray") for c in Channel]
    fig = new_figure(panel_inches * len(panels), _panel_height(image.shape[:2], panel_inches) + 0.6)
    axes = fig.subplots(1, len(panels))
    for ax, (name, picture, cmap) in zip(axes, panels):
        show_image(ax, picture, cmap=cmap, vmin=0, vmax=255)
        ax.set_title(name, fontsize=10)
    if pixel_size_um:
        scale_bar(axes[0], image.shape[1], pixel_size_um)
    size = f"{image.shape[1]} × {image.shape[0]} px" + (", contrast stretched per channel" if stretch else "")
    fig.suptitle(f"{title} — {size}" if title else size, fontsize=11)
    return fig


def plot_cell_panels(
    image: np.ndarray,
    panels: Sequence[CellPanel],
    *,
    title: str | None = None,
    stretch: bool = True,
    pixel_size_um: float | None = None,
    panel_inches: float = PANEL_INCHES,
) -> Figure:
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
    fig = new_figure(panel_inches * len(panels), _panel_height(image.shape[:2], panel_inches) + 1.4)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    drawn: set[int] = set()
    for ax, panel in zip(axes, panels):
        show_image(ax, background)
        drawn |= draw_cells(ax, panel.labels, panel.cells, text=panel.text)
        ax.set_title(textwrap.fill(panel.title, 60), fontsize=10)
    if pixel_size_um:
        scale_bar(axes[0], image.shape[1], pixel_size_um)
    handles = class_legend_handles((k for k in drawn if k >= 0), unlabelled=-1 in drawn)
    if handles:
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=min(len(handles), 3 * len(panels)),
            fontsize=9,
            frameon=False,
            handlelength=2.2,
        )
    size = f"{image.shape[1]} × {image.shape[0]} px"
    fig.suptitle(f"{title} — {size}" if title else size, fontsize=11)
    return fig
