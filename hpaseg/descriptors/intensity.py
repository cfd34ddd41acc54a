"""How much protein each cell holds and where it lies: expression, compartments, radial
profile and the distribution of its intensities."""

from __future__ import annotations

import numpy as np

from .regions import EPS, CellRegions

__all__ = ["expression", "compartments", "distribution"]

#: Bounds of the cytoplasmic radial bins, in cell radii from the nucleus.
RADIAL_BINS: tuple[float, ...] = (0.0, 0.15, 0.35, 0.6, np.inf)
#: A nuclear pixel darker in blue than this fraction of its nucleus' mean is nucleolus-like.
DARK_NUCLEUS_FRACTION = 0.75
#: Quantiles of a cell's green, each relative to the cell's mean.
QUANTILES: tuple[float, ...] = (0.25, 0.5, 0.9, 0.99)
#: Shares of a cell's brightest pixels whose share of its green is reported.
TOP_SHARES: tuple[float, ...] = (0.01, 0.03, 0.1)


def expression(r: CellRegions) -> dict[str, np.ndarray]:
    """Mean green: its log, relative to the image's median cell, and over the background."""
    mean = r.sum(r.green) / np.maximum(r.area, 1)
    log_mean = np.log1p(mean)
    return {
        "expression_log": log_mean,
        "expression_vs_image": log_mean - np.median(log_mean),
        "expression_over_background": np.log((mean + r.background + 1) / (r.background + 1)),
    }


def compartments(r: CellRegions) -> dict[str, np.ndarray]:
    """Shares of the cell's green in the nucleus, its rim, the nucleolus-like dark-blue
    regions, the perinuclear zone, the edge band and radial bins of the cytoplasm."""
    total = r.sum(r.green)
    in_nucleus = r.sum(r.green, r.nucleus)
    in_cytoplasm = total - in_nucleus
    cytoplasm = r.cytoplasm
    cyto_area = np.maximum(r.area - r.nucleus_area, 1)
    out = {
        "nucleus_share": in_nucleus / (total + EPS),
        "nucleus_vs_cytoplasm": np.log(
            (in_nucleus / np.maximum(r.nucleus_area, 1) + 1) / (in_cytoplasm / cyto_area + 1)
        ),
        "nucleus_area_share": r.nucleus_area / np.maximum(r.area, 1),
        "rim_share": r.sum(r.green, r.rim()) / (in_nucleus + EPS),
        "perinuclear_share": r.sum(r.green, r.perinuclear()) / (in_cytoplasm + EPS),
        "edge_band_share": r.sum(r.green, r.edge_band()) / (in_cytoplasm + EPS),
        "radial_mean": r.sum(r.green * r.from_nucleus, cytoplasm) / (in_cytoplasm + EPS),
        "edge_distance_mean": r.sum(r.green * r.from_edge, cytoplasm) / (in_cytoplasm + EPS),
    }
    for lo, hi in zip(RADIAL_BINS[:-1], RADIAL_BINS[1:]):
        band = cytoplasm & (r.from_nucleus >= lo) & (r.from_nucleus < hi)
        out[f"radial_share_{lo:g}"] = r.sum(r.green, band) / (in_cytoplasm + EPS)
    blue = r.image[..., 2]
    blue_mean = r.sum(blue, r.nucleus) / np.maximum(r.nucleus_area, 1)
    dark = r.nucleus & (blue < DARK_NUCLEUS_FRACTION * r.per_pixel(blue_mean))
    out["dark_nucleus_share"] = r.sum(r.green, dark) / (in_nucleus + EPS)
    out["dark_nucleus_area"] = r.sum(dark.astype(np.float32)) / np.maximum(r.nucleus_area, 1)
    return out


def _sorted_by_cell(r: CellRegions, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """The green values sorted within each cell, and each cell's first index."""
    inside = r.cells > 0
    labels, values = r.cells[inside], r.green[inside]
    order = np.lexsort((-values if descending else values, labels))
    return values[order].astype(np.float64), np.searchsorted(labels[order], r.ids)


def distribution(r: CellRegions) -> dict[str, np.ndarray]:
    """Spread of the cell's green: coefficient of variation in nucleus and cytoplasm,
    quantiles relative to the mean, and the share held by its brightest pixels."""
    out = {}
    for name, region, area in (
        ("nucleus", r.nucleus, r.nucleus_area),
        ("cytoplasm", r.cytoplasm, r.area - r.nucleus_area),
    ):
        n = np.maximum(area, 1)
        mean = r.sum(r.green, region) / n
        second = r.sum(r.green * r.green, region) / n
        out[f"cv_{name}"] = np.sqrt(np.maximum(second - mean * mean, 0)) / (mean + 1)
    counts = r.area.astype(np.int64)
    mean = r.sum(r.green) / np.maximum(r.area, 1)
    ascending, starts = _sorted_by_cell(r, descending=False)
    for q in QUANTILES:
        out[f"quantile_{q:g}"] = ascending[starts + np.minimum((q * counts).astype(np.int64), counts - 1)] / (mean + 1)
    descending, starts = _sorted_by_cell(r, descending=True)
    cumulative = np.concatenate([[0.0], np.cumsum(descending)])
    total = cumulative[starts + counts] - cumulative[starts]
    for share in TOP_SHARES:
        top = np.maximum((share * counts).astype(np.int64), 1)
        out[f"top_{share:g}_share"] = (cumulative[starts + top] - cumulative[starts]) / (total + EPS)
    return out
