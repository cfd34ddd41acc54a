"""The protein against the reference stains, and the cell's own shape: colocalisation
with microtubules (red), ER (yellow) and DNA (blue); size, elongation, DNA brightness
(mitotic cells), asymmetry and whether the border cuts the cell."""

from __future__ import annotations

import numpy as np

from ..classes import Channel
from .regions import EPS, CellRegions, label_sum

__all__ = ["colocalisation", "morphology"]


def _pearson(r: CellRegions, a: np.ndarray, b: np.ndarray, region: np.ndarray) -> np.ndarray:
    labels = np.where(region, r.cells, 0)
    n = np.maximum(label_sum(region.astype(np.float32), labels, r.ids), 1)
    da = (a - r.per_pixel(label_sum(a, labels, r.ids) / n)) * region
    db = (b - r.per_pixel(label_sum(b, labels, r.ids) / n)) * region
    covariance = label_sum(da * db, labels, r.ids)
    return covariance / (np.sqrt(label_sum(da * da, labels, r.ids) * label_sum(db * db, labels, r.ids)) + EPS)


def colocalisation(r: CellRegions) -> dict[str, np.ndarray]:
    """Pearson correlation of green with red and yellow in the cytoplasm and the whole cell,
    and with blue in the nucleus."""
    green = r.image[..., Channel.GREEN]
    red, blue, yellow = (r.image[..., c] for c in (Channel.RED, Channel.BLUE, Channel.YELLOW))
    inside = r.cells > 0
    return {
        "pearson_red_cytoplasm": _pearson(r, green, red, r.cytoplasm),
        "pearson_yellow_cytoplasm": _pearson(r, green, yellow, r.cytoplasm),
        "pearson_red_cell": _pearson(r, green, red, inside),
        "pearson_yellow_cell": _pearson(r, green, yellow, inside),
        "pearson_blue_nucleus": _pearson(r, green, blue, r.nucleus),
    }


def _elongation(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """1 - minor/major axis from second moments, per label."""
    yy, xx = np.indices(labels.shape, dtype=np.float64)
    n = np.maximum(label_sum(np.ones(labels.shape), labels, ids), 1)
    my, mx = label_sum(yy, labels, ids) / n, label_sum(xx, labels, ids) / n
    syy = label_sum(yy * yy, labels, ids) / n - my**2
    sxx = label_sum(xx * xx, labels, ids) / n - mx**2
    sxy = label_sum(yy * xx, labels, ids) / n - my * mx
    half_trace = (syy + sxx) / 2
    root = np.sqrt(np.maximum(half_trace**2 - (syy * sxx - sxy**2), 0))
    return 1 - np.sqrt(np.maximum(half_trace - root, 0) / np.maximum(half_trace + root, 1e-9))


def morphology(r: CellRegions) -> dict[str, np.ndarray]:
    """Size relative to the image's median cell, elongation of cell and nucleus, DNA
    brightness and texture, offset of the green's centre from the nucleus' centre (in cell
    radii), and whether the cell touches the image border."""
    blue = r.image[..., Channel.BLUE]
    nucleus_area = np.maximum(r.nucleus_area, 1)
    blue_mean = r.sum(blue, r.nucleus) / nucleus_area
    blue_second = r.sum(blue * blue, r.nucleus) / nucleus_area
    yy, xx = np.indices(r.cells.shape, dtype=np.float32)
    total = r.sum(r.green) + EPS
    green_y, green_x = r.sum(r.green * yy) / total, r.sum(r.green * xx) / total
    nucleus_y, nucleus_x = r.sum(yy, r.nucleus) / nucleus_area, r.sum(xx, r.nucleus) / nucleus_area
    edge = np.unique(np.concatenate([r.cells[0], r.cells[-1], r.cells[:, 0], r.cells[:, -1]]))
    log_area = np.log(np.maximum(r.area, 1))
    return {
        "area_vs_image": log_area - np.median(log_area),
        "elongation_cell": _elongation(r.cells, r.ids),
        "elongation_nucleus": _elongation(r.nucleus_labels, r.ids),
        "dna_vs_image": np.log1p(blue_mean) - np.median(np.log1p(blue_mean)),
        "dna_cv": np.sqrt(np.maximum(blue_second - blue_mean**2, 0)) / (blue_mean + 1),
        "asymmetry": np.hypot(green_y - nucleus_y, green_x - nucleus_x) / np.maximum(r.radius, 1),
        "touches_border": np.isin(r.ids, edge).astype(np.float64),
    }
