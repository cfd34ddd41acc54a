"""How much the synthetic fields look like real HPA fields: the same statistics of both.

``python -m hpaseg.bench synth REAL_DIR [--n 4] [--seed 0] [--style real-like]`` prints, side
by side, the statistics of the real fields in ``REAL_DIR`` (``{ID}_{red,green,blue,yellow}.png``
with ``{ID}_cellmask.png``, as in ``shared/data/hpa_kaggle_fields``) and of ``--n`` synthetic
fields drawn at 2048 px: cells per field, cell area, the fraction of the field covered by
cells, the fractions of cells touching another cell or the border, cell shape, the
nucleus/cell area ratio, how much the per-cell staining varies, and per-channel intensity
percentiles of the background and of the cells.

:func:`field_stats` measures one field, :func:`summarise` pools fields, :func:`compare`
returns the table (a list of :class:`StatRow`) that a test or benchmark can assert on.

Definitions
-----------
* Two cells *touch* when they share a boundary within 2 px: at most :data:`TOUCH_GAP_PX`
  (2) px of background between them, i.e. pixel centres within 3 px (Euclidean). The real
  masks, made by HPA-Cell-Segmentation, separate touching cells by a 2-px background
  line; a cell touches the border when it has a pixel in the outermost row or column.
* The nucleus of each cell is *estimated from the blue channel* for real and synthetic
  fields alike (the real fields have no nucleus mask): blue smoothed, thresholded at its
  Otsu level over the field's cell pixels, holes filled.
* Areas are in px at 2048; a field of another size is rescaled by ``(2048 / size)^2``.
* Intensities are 8-bit values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.measure import regionprops
from skimage.segmentation import relabel_sequential

from .. import io
from ..classes import REFERENCE_SIZE_PX, Channel
from ..errors import InputError
from .image import DEFAULT_STYLE, image_id, image_rng, synth_image

__all__ = [
    "TOUCH_GAP_PX",
    "FieldStats",
    "StatRow",
    "field_stats",
    "touching_cells",
    "read_real_fields",
    "synthetic_fields",
    "summarise",
    "compare",
    "format_table",
    "TOLERANCES",
    "check_closeness",
]

#: Two cells touch when at most this many px of background lie between them, i.e. when
#: pixel centres of the two come within ``TOUCH_GAP_PX + 1`` px (Euclidean). HPA-Cell-
#: Segmentation separates touching cells by a 2-px background line, so a gap of 2 px is
#: still a shared boundary (with 1 px, no two cells of the real fields would touch).
TOUCH_GAP_PX = 2
#: Smoothing (px at 2048) of the blue channel before the nucleus threshold.
NUCLEUS_SMOOTHING_PX_AT_2048 = 3.0
#: Percentiles of the pixel intensities reported per channel and region.
INTENSITY_PERCENTILES = (1, 50, 99)
#: Percentiles of the pooled cell areas reported (lower quartile, median, upper quartile).
AREA_PERCENTILES = (25, 50, 75)
_CHANNELS = tuple(ch.name.lower() for ch in Channel)


# --------------------------------------------------------------------------- one field
@dataclass
class FieldStats:
    """Statistics of one field.

    Attributes
    ----------
    size : int
        Field height (= width) in px.
    cell_area : ndarray
        Area of each cell, px at 2048.
    touching, at_border : ndarray of bool
        Per cell: touches another cell / the image border.
    solidity : ndarray
        Per cell: area over convex-hull area (1 for a convex cell).
    nucleus_ratio : ndarray
        Per cell: estimated nucleus area over cell area.
    coverage : float
        Fraction of the field inside cells.
    cell_means : ndarray, shape (n_cells, 4)
        Mean intensity of each cell per channel (R, G, B, Y).
    background, cells : ndarray, shape (4, len(INTENSITY_PERCENTILES))
        Intensity percentiles per channel of background and of cell pixels.
    background_zero : ndarray, shape (4,)
        Fraction of the background pixels that are exactly 0, per channel.
    """

    size: int
    cell_area: np.ndarray
    touching: np.ndarray
    at_border: np.ndarray
    solidity: np.ndarray
    nucleus_ratio: np.ndarray
    coverage: float
    cell_means: np.ndarray
    background: np.ndarray
    cells: np.ndarray
    background_zero: np.ndarray

    @property
    def n_cells(self) -> int:
        """Number of cells in the field."""
        return len(self.cell_area)


def touching_cells(cell_mask: np.ndarray, gap_px: int = TOUCH_GAP_PX) -> np.ndarray:
    """Which cells lie at most ``gap_px`` px of background from another cell.

    Parameters
    ----------
    cell_mask : ndarray, shape (H, W), int
        0 = background, cells 1..N.
    gap_px : int
        Widest gap (px) that counts as touching: pixel centres within ``gap_px + 1`` px.

    Returns
    -------
    ndarray of bool, shape (N,)
        Entry ``k - 1`` for cell ``k``.

    Examples
    --------
    >>> m = np.zeros((5, 9), int); m[1:4, 1:3] = 1; m[1:4, 5:7] = 2; m[1:4, 7:9] = 3
    >>> touching_cells(m, 0).tolist(), touching_cells(m, 1).tolist()
    ([False, True, True], [False, True, True])
    >>> touching_cells(m, 2).tolist()
    [True, True, True]
    """
    n = int(cell_mask.max())
    reach = gap_px + 1
    yy, xx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    footprint = yy**2 + xx**2 <= reach**2
    big = np.iinfo(np.int32).max
    labels = cell_mask.astype(np.int32)
    highest = ndimage.maximum_filter(labels, footprint=footprint, mode="constant", cval=0)
    lowest = ndimage.minimum_filter(np.where(labels > 0, labels, big), footprint=footprint, mode="constant", cval=big)
    other = (labels > 0) & ((highest != labels) | (lowest != labels))
    return np.bincount(labels[other], minlength=n + 1)[1:] > 0


def _estimated_nuclei(blue: np.ndarray, cell_mask: np.ndarray) -> np.ndarray:
    """Nucleus pixels estimated from the blue channel (see the module docstring)."""

    sigma = NUCLEUS_SMOOTHING_PX_AT_2048 * blue.shape[0] / REFERENCE_SIZE_PX
    smooth = ndimage.gaussian_filter(blue.astype(np.float32), sigma)
    inside = smooth[cell_mask > 0]
    if inside.size == 0 or inside.min() == inside.max():
        return np.zeros(blue.shape, bool)
    return ndimage.binary_fill_holes((smooth > threshold_otsu(inside)) & (cell_mask > 0))


def _solidity(cell_mask: np.ndarray) -> np.ndarray:
    """Per cell 1..N: area over convex-hull area."""

    n = int(cell_mask.max())
    out = np.ones(n)
    for region in regionprops(cell_mask):
        out[region.label - 1] = region.solidity
    return out


def field_stats(image: np.ndarray, cell_mask: np.ndarray) -> FieldStats:
    """Measure one field.

    Parameters
    ----------
    image : ndarray, shape (H, H, 4), uint8
        RGBY channels.
    cell_mask : ndarray, shape (H, H), int
        0 = background, cells 1..N (ids without pixels are ignored).

    Returns
    -------
    FieldStats
    """
    if image.ndim != 3 or image.shape[2] != 4 or image.shape[:2] != cell_mask.shape:
        raise InputError(f"image {image.shape} and mask {cell_mask.shape}: expected (H, W, 4) and (H, W)")

    mask = relabel_sequential(cell_mask.astype(np.int32))[0]
    n, size = int(mask.max()), mask.shape[0]
    to_2048 = (REFERENCE_SIZE_PX / size) ** 2
    area = np.bincount(mask.ravel(), minlength=n + 1)[1:].astype(float)
    nuclei = _estimated_nuclei(image[..., Channel.BLUE], mask)
    nuc_area = np.bincount(mask[nuclei], minlength=n + 1)[1:]
    rim = np.zeros(mask.shape, bool)
    rim[[0, -1], :] = rim[:, [0, -1]] = True
    inside, outside = mask > 0, mask == 0
    sums = np.stack(
        [np.bincount(mask.ravel(), weights=image[..., c].ravel(), minlength=n + 1)[1:] for c in range(4)], 1
    )
    q = INTENSITY_PERCENTILES

    def percentiles(where: np.ndarray) -> np.ndarray:
        if not where.any():
            return np.full((4, len(q)), np.nan)
        return np.stack([np.percentile(image[..., c][where], q) for c in range(4)])

    return FieldStats(
        size=size,
        cell_area=area * to_2048,
        touching=touching_cells(mask),
        at_border=np.bincount(mask[rim], minlength=n + 1)[1:] > 0,
        solidity=_solidity(mask),
        nucleus_ratio=nuc_area / np.maximum(area, 1),
        coverage=float(inside.mean()),
        cell_means=sums / np.maximum(area, 1)[:, None],
        background=percentiles(outside),
        cells=percentiles(inside),
        background_zero=np.array([(image[..., c][outside] == 0).mean() if outside.any() else np.nan for c in range(4)]),
    )


# --------------------------------------------------------------------------- sources
def read_real_fields(folder: str | Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(ID, image, cell mask)`` of every ``{ID}_cellmask.png`` in ``folder`` with its four channels."""
    folder = Path(folder)
    ids = sorted(p.name[: -len("_cellmask.png")] for p in folder.glob("*_cellmask.png"))
    if not ids:
        raise InputError(f"{folder}: no {{ID}}_cellmask.png found; expected real fields with cell masks")
    return [(iid, io.read_rgby(folder, iid), io.read_mask(folder / f"{iid}_cellmask.png")) for iid in ids]


def synthetic_fields(
    n: int, seed: int = 0, size: int = REFERENCE_SIZE_PX, style: str | None = None
) -> Iterable[tuple[str, np.ndarray, np.ndarray]]:
    """``(ID, image, cell mask)`` of the first ``n`` synthetic test images of ``seed``, drawn one at a time."""

    for index in range(n):
        drawn = synth_image(image_rng(seed, "test", index), size, style=style or DEFAULT_STYLE)
        yield image_id("test", index), drawn.image, drawn.cell_mask


# --------------------------------------------------------------------------- table
@dataclass
class StatRow:
    """One statistic of the real and of the synthetic fields.

    ``real`` and ``synth`` pool all fields (all cells, or the mean over fields for
    per-field quantities); ``*_lo`` and ``*_hi`` are the smallest and largest value of
    single fields, the spread to judge a difference against.
    """

    name: str
    real: float
    real_lo: float
    real_hi: float
    synth: float
    synth_lo: float
    synth_hi: float

    def ratio(self) -> float:
        """``synth / real`` (inf when ``real`` is 0 and ``synth`` is not)."""
        if self.real == 0:
            return 1.0 if self.synth == 0 else float("inf")
        return self.synth / self.real


def _cv(values: np.ndarray) -> float:
    """Coefficient of variation (std / mean); 0 for fewer than two values."""
    return float(values.std() / values.mean()) if len(values) > 1 and values.mean() > 0 else 0.0


def _stat_definitions() -> list[tuple[str, Callable[[Sequence[FieldStats]], float]]]:
    """(name, statistic of a list of fields); applied to all fields and to each alone."""
    cat = lambda fields, attr: np.concatenate([getattr(f, attr) for f in fields]).astype(float)  # noqa: E731
    defs: list[tuple[str, Callable[[Sequence[FieldStats]], float]]] = [
        ("cells per field", lambda fs: float(np.mean([f.n_cells for f in fs]))),
    ]
    for q in AREA_PERCENTILES:
        defs.append((f"cell area p{q} (px at 2048)", lambda fs, q=q: float(np.percentile(cat(fs, "cell_area"), q))))
    defs += [
        ("field covered by cells", lambda fs: float(np.mean([f.coverage for f in fs]))),
        ("cells touching another", lambda fs: float(cat(fs, "touching").mean())),
        ("cells touching the border", lambda fs: float(cat(fs, "at_border").mean())),
        ("cell solidity, median", lambda fs: float(np.median(cat(fs, "solidity")))),
        ("nucleus/cell area, median", lambda fs: float(np.median(cat(fs, "nucleus_ratio")))),
    ]
    for c, name in enumerate(_CHANNELS):
        defs.append(
            (f"{name} per-cell mean, CV", lambda fs, c=c: float(np.mean([_cv(f.cell_means[:, c]) for f in fs])))
        )
    for c, name in enumerate(_CHANNELS):
        defs.append(
            (f"{name} background, fraction 0", lambda fs, c=c: float(np.nanmean([f.background_zero[c] for f in fs])))
        )
    for region in ("background", "cells"):
        for c, name in enumerate(_CHANNELS):
            for k, q in enumerate(INTENSITY_PERCENTILES):
                label = f"{name} {region} p{q}"
                defs.append(
                    (label, lambda fs, r=region, c=c, k=k: float(np.nanmean([getattr(f, r)[c, k] for f in fs])))
                )
    return defs


def summarise(fields: Sequence[FieldStats]) -> dict[str, tuple[float, float, float]]:
    """``{statistic: (pooled value, smallest single-field value, largest)}`` of ``fields``."""
    out = {}
    for name, stat in _stat_definitions():
        singles = [stat([f]) for f in fields]
        out[name] = (stat(fields), float(np.min(singles)), float(np.max(singles)))
    return out


def compare(
    real_dir: str | Path, n_synth: int = 4, seed: int = 0, size: int = REFERENCE_SIZE_PX, style: str | None = None
) -> list[StatRow]:
    """Statistics of the real fields in ``real_dir`` and of ``n_synth`` synthetic ones, row by row.

    Parameters
    ----------
    real_dir : path
        Folder of real fields (``{ID}_{channel}.png`` and ``{ID}_cellmask.png``).
    n_synth : int
        Synthetic fields to draw (test images 0..n-1 of ``seed``).
    seed : int
    size : int
        Size of the synthetic fields in px (areas are rescaled to 2048 px either way).
    style : str, optional
        Field style of :func:`hpaseg.synth.synth_image` (default: its default).

    Returns
    -------
    list of StatRow
    """
    real = summarise([field_stats(img, mask) for _, img, mask in read_real_fields(real_dir)])
    synth = summarise([field_stats(img, mask) for _, img, mask in synthetic_fields(n_synth, seed, size, style)])
    return [StatRow(name, *real[name], *synth[name]) for name in real]


def _tolerances() -> dict[str, tuple[float, float]]:
    """The default :data:`TOLERANCES`."""
    tol: dict[str, tuple[float, float]] = {"cells per field": (0.25, 0.0)}
    tol.update({f"cell area p{q} (px at 2048)": (0.25, 0.0) for q in AREA_PERCENTILES})
    tol.update(
        {
            "field covered by cells": (0.1, 0.05),
            "cells touching another": (0.0, 0.15),
            "cells touching the border": (0.0, 0.15),
            "cell solidity, median": (0.0, 0.02),
            "nucleus/cell area, median": (0.0, 0.05),
        }
    )
    for name in _CHANNELS:
        tol[f"{name} per-cell mean, CV"] = (0.0, 0.12)
        tol[f"{name} background, fraction 0"] = (0.0, 0.12)
        tol[f"{name} background p50"] = (0.0, 2.0)
        tol[f"{name} background p99"] = (0.0, 5.0)
        tol[f"{name} cells p50"] = (0.0, 5.0)
        tol[f"{name} cells p99"] = (0.1, 10.0)
    return tol


#: Statistics :func:`check_closeness` checks: name -> (relative, absolute) widening of the real
#: fields' range (smallest to largest single field) within which the synthetic value must lie.
#: Percentile 1 of the intensities is left out (0 in every real field and channel).
TOLERANCES: dict[str, tuple[float, float]] = _tolerances()


def check_closeness(rows: Sequence[StatRow], tolerances: dict[str, tuple[float, float]] | None = None) -> list[str]:
    """The statistics whose synthetic value lies outside the real fields' range, widened.

    Parameters
    ----------
    rows : sequence of StatRow
        From :func:`compare`.
    tolerances : dict, optional
        ``{statistic: (relative, absolute)}``; the synthetic pooled value must lie in
        ``[real_lo * (1 - relative) - absolute, real_hi * (1 + relative) + absolute]``.
        Default :data:`TOLERANCES`; statistics not in it are not checked.

    Returns
    -------
    list of str
        One line per statistic out of range; empty when all are close.

    Examples
    --------
    >>> rows = [StatRow("cells per field", 13.8, 8, 19, 25.0, 20, 30)]
    >>> check_closeness(rows)
    ['cells per field: synthetic 25 outside 6-23.8 (real 8-19)']
    """
    tolerances = TOLERANCES if tolerances is None else tolerances
    out = []
    for row in rows:
        if row.name not in tolerances:
            continue
        rel, absolute = tolerances[row.name]
        lo, hi = row.real_lo * (1 - rel) - absolute, row.real_hi * (1 + rel) + absolute
        if not lo <= row.synth <= hi:
            out.append(
                f"{row.name}: synthetic {row.synth:.3g} outside {lo:.3g}-{hi:.3g} (real {row.real_lo:.3g}-{row.real_hi:.3g})"
            )
    return out


def format_table(rows: Sequence[StatRow]) -> str:
    """A plain-text (Markdown) table of ``rows``."""

    def fmt(v: float) -> str:
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"

    lines = ["| statistic | real | real range | synthetic | synthetic range |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.name} | {fmt(r.real)} | {fmt(r.real_lo)}-{fmt(r.real_hi)} | {fmt(r.synth)} | {fmt(r.synth_lo)}-{fmt(r.synth_hi)} |"
        )
    return "\n".join(lines)
