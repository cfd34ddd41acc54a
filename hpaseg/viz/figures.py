"""What figures share: new figures made without ``pyplot`` (nothing is shown or kept open
behind the caller's back), images with square pixels, scale bars, class legends."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from ..classes import CLASS_NAMES
from .colors import CLASS_COLORS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["DEFAULT_DPI", "new_figure", "show_image", "scale_bar", "class_legend_handles"]

#: Resolution of figures turned into pixels, unless given.
DEFAULT_DPI = 110


def new_figure(width_in: float, height_in: float, dpi: float = DEFAULT_DPI) -> Figure:

    return Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained")


def show_image(ax: Axes, picture: np.ndarray, **kwargs) -> None:
    """Square pixels, pixel centres at integer coordinates, no ticks."""
    ax.imshow(picture, interpolation="antialiased", aspect="equal", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])


def scale_bar(ax: Axes, width_px: int, pixel_size_um: float) -> None:

    target = width_px * pixel_size_um / 5  # about a fifth of the image
    length_um = max(v for v in (1, 2, 5, 10, 20, 50, 100, 200, 500) if v <= max(target, 1))
    bar = AnchoredSizeBar(
        ax.transData,
        length_um / pixel_size_um,
        f"{length_um:g} µm",
        "lower right",
        pad=0.4,
        color="white",
        frameon=False,
        size_vertical=max(1.0, width_px / 150),
        fontproperties={"size": 8},
    )
    ax.add_artist(bar)


def class_legend_handles(class_ids: Iterable[int], *, unlabelled: bool = False) -> list:
    """Legend entries (a thick line in the class colour, the full class name) for
    ``class_ids`` in class order, plus "no label" when ``unlabelled``."""

    handles = [
        Line2D([], [], color=CLASS_COLORS[k], lw=4, label=CLASS_NAMES[k])
        for k in sorted(set(int(c) for c in class_ids))
    ]
    if unlabelled:
        handles.append(Line2D([], [], color="0.35", lw=1.5, ls=":", label="no label"))
    return handles
