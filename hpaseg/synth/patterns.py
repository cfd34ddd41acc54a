"""The green channel's per-class patterns: where and how each of the 18 protein classes
(0-17) lights a cell. Each pattern takes the scene and a bool per cell id (True = the cell
carries the class) and returns an (H, W) float32 pattern of peak about 1, zero outside
those cells. They are what the classifiers learn; both field styles share them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .arrays import bbox, dots, lines
from .scene import Scene

__all__ = ["CLASS_GAIN", "PATTERNS"]

#: Peak green level of each class's pattern before per-cell and per-image gains.
CLASS_GAIN: tuple[float, ...] = (
    0.65,
    0.8,
    0.8,
    0.95,
    0.75,
    0.95,
    0.65,
    0.8,
    0.75,
    0.7,
    0.6,
    0.9,
    1.0,
    0.75,
    0.7,
    1.0,
    0.42,
    0.8,
    0.0,
)


def _g_nucleoplasm(s: Scene, has: np.ndarray) -> np.ndarray:
    """Nucleoplasm: fills the nucleus, spares the nucleoli."""
    tex = 0.85 + 0.15 * s.noise(s.px(6, 0.8))
    return has[s.cid] * s.in_nuc * tex * (1 - 0.6 * s.nucleoli)


def _g_nuclear_membrane(s: Scene, has: np.ndarray) -> np.ndarray:
    """Nuclear membrane: a thin ring on the nucleus edge."""
    return has[s.cid] * (s.nuclear_rim * (0.8 + 0.2 * s.noise(s.px(8, 1.0))) + 0.05 * s.in_nuc)


def _g_nucleoli(s: Scene, has: np.ndarray) -> np.ndarray:
    """Nucleoli: the 1-4 round nucleoli of each nucleus."""
    return has[s.cid] * s.in_nuc * (s.nucleoli + 0.06)


def _g_fibrillar_center(s: Scene, has: np.ndarray) -> np.ndarray:
    """Nucleoli fibrillar center: tiny dots inside the nucleoli."""
    # 3-8 tiny dots scattered over each nucleolus of the cells carrying the class
    carried = (s.nucleoli_radius > 0) & has[:, None]
    per_nucleolus = s.rng.integers(3, 9, carried.shape) * carried
    radius = np.repeat(s.nucleoli_radius.ravel(), per_nucleolus.ravel())
    rho = 0.85 * radius * np.sqrt(s.rng.random(len(radius)))
    phi = s.rng.uniform(0, 2 * np.pi, len(radius))
    ys = np.repeat(s.nucleoli_y.ravel(), per_nucleolus.ravel()) + rho * np.sin(phi)
    xs = np.repeat(s.nucleoli_x.ravel(), per_nucleolus.ravel()) + rho * np.cos(phi)
    spots = dots(s.shape, ys, xs, s.rng.uniform(0.7, 1.0, len(ys)), max(0.5, 0.7 * s.sigma))
    return has[s.cid] * s.in_nuc * np.clip(1.6 * spots + 0.2 * s.nucleoli, 0, 1)


def _g_speckles(s: Scene, has: np.ndarray) -> np.ndarray:
    """Nuclear speckles: many small irregular speckles in the nucleus."""
    speckle = np.clip((s.noise(s.px(5, 0.75)) - 0.6) / 1.0, 0, 1)
    return has[s.cid] * s.in_nuc * (speckle * (1 - s.nucleoli) + 0.1)


def _g_nuclear_bodies(s: Scene, has: np.ndarray) -> np.ndarray:
    """Nuclear bodies: 1-6 distinct bright dots in the nucleus."""
    owners = np.repeat(np.arange(len(has)), s.rng.integers(1, 7, len(has)) * has)
    ys, xs = s.points_in_nucleus(owners, 0.75)
    spots = dots(s.shape, ys, xs, s.rng.uniform(0.8, 1.0, len(owners)), 2.0 * s.sigma)
    return has[s.cid] * s.in_nuc * (np.clip(1.2 * spots, 0, 1) + 0.06)


def _g_er(s: Scene, has: np.ndarray) -> np.ndarray:
    """Endoplasmic reticulum: the yellow channel's perinuclear mesh."""
    return has[s.cid] * np.clip(s.er_mesh * 1.1, 0, 1)


def _g_golgi(s: Scene, has: np.ndarray) -> np.ndarray:
    """Golgi apparatus: a compact perinuclear crescent on one side."""
    side = s.rng.uniform(-np.pi, np.pi, len(has))
    diff = np.angle(np.exp(1j * (s.nuc_theta - side[s.cid].astype(np.float32))))
    towards = np.exp(-0.5 * (diff / 0.45) ** 2)
    near = np.exp(-np.maximum(s.d_out - 1, 0) / (0.16 * s.rn[s.cid].astype(np.float32) + 1))
    clumps = np.clip(0.5 + 0.7 * s.noise(s.px(7, 0.8)), 0, 1.3)
    return has[s.cid] * s.cyto * np.clip(towards * near * clumps * 2.2, 0, 1)


def _g_intermediate_filaments(s: Scene, has: np.ndarray) -> np.ndarray:
    """Intermediate filaments: long, gently curving fibres across the cell."""
    c = s.cells
    owners = np.repeat(np.flatnonzero(has), 14)
    ys, xs = s.random_cell_points(owners, 0.6)
    heading = s.rng.uniform(0, 2 * np.pi, len(owners))
    length = 2.2 * c.r[owners] * c.elong[owners]
    persistence = 1.2 * c.r[owners]
    w = s.rng.uniform(0.5, 1.0, len(owners))
    ya, xa, wa = s.walks(owners, ys, xs, heading, length, persistence, w)
    yb, xb, wb = s.walks(owners, ys, xs, heading + np.pi, length, persistence, w)
    fibres = lines(s.shape, np.concatenate([ya, yb]), np.concatenate([xa, xb]), np.concatenate([wa, wb]), 1.2 * s.sigma)
    return has[s.cid] * fibres * (1 - s.over_nucleus_dimming * s.in_nuc)


def _g_actin(s: Scene, has: np.ndarray) -> np.ndarray:
    """Actin filaments: straight parallel stress fibres and a cortical rim."""
    c = s.cells
    angle = c.orient + s.rng.normal(0, 0.25, len(c))
    period = s.px(18, 3.0) * s.rng.uniform(0.8, 1.25, len(c))
    yy, xx = s.grid
    across = -(xx - c.cx[s.cid].astype(np.float32)) * s.lut(np.sin(angle)) + (
        yy - c.cy[s.cid].astype(np.float32)
    ) * s.lut(np.cos(angle))
    phase = 2 * np.pi * across / s.lut(period) + s.lut(s.rng.uniform(0, 2 * np.pi, len(c)))
    stripes = np.maximum(np.cos(phase), 0) ** 6
    broken = np.clip(0.5 + 0.6 * s.noise(s.px(20, 2.0)), 0, 1)
    rim = np.exp(-0.5 * (s.d_edge / (1.5 * s.sigma)) ** 2)
    return has[s.cid] * s.in_cell * np.clip(stripes * broken * (1 - 0.6 * s.in_nuc) + 0.8 * rim, 0, 1)


def _g_microtubules(s: Scene, has: np.ndarray) -> np.ndarray:
    """Microtubules: the red channel's fibres (and spindles)."""
    return has[s.cid] * (s.microtubules + s.spindle)


def _g_mitotic_spindle(s: Scene, has: np.ndarray) -> np.ndarray:
    """Mitotic spindle: the bipolar spindle of a mitotic cell."""
    return has[s.cid] * (s.spindle + 0.08 * s.in_cell)


def _g_centrosome(s: Scene, has: np.ndarray) -> np.ndarray:
    """Centrosome: one or two bright dots next to the nucleus."""
    owners = np.flatnonzero(has)
    angle = s.rng.uniform(0, 2 * np.pi, len(owners))
    ys, xs = s.point_next_to_nucleus(owners, angle, np.full(len(owners), 2.0 * s.sigma))
    pair = s.rng.random(len(owners)) < 0.5
    tilt = s.rng.uniform(0, 2 * np.pi, int(pair.sum()))
    ys2, xs2 = ys[pair] + 2.5 * s.sigma * np.sin(tilt), xs[pair] + 2.5 * s.sigma * np.cos(tilt)
    spots = dots(
        s.shape, np.concatenate([ys, ys2]), np.concatenate([xs, xs2]), np.ones(len(ys) + len(ys2)), 1.8 * s.sigma
    )
    return has[s.cid] * s.in_cell * np.clip(spots, 0, 1)


def _g_plasma_membrane(s: Scene, has: np.ndarray) -> np.ndarray:
    """Plasma membrane: a ring along the cell outline."""
    ring = np.exp(-0.5 * ((s.d_edge - 0.5) / (1.3 * s.sigma)) ** 2)
    return has[s.cid] * s.in_cell * (ring * (0.85 + 0.15 * s.noise(s.px(10, 1.0))) + 0.04)


def _g_mitochondria(s: Scene, has: np.ndarray) -> np.ndarray:
    """Mitochondria: short tubules, denser near the nucleus."""
    c = s.cells
    density = 1.0 / (np.pi * (0.11 * s.r_pix) ** 2)  # worms per px
    weight = s.cyto * has[s.cid] * (0.35 + 0.65 * np.exp(-s.d_out / (0.45 * s.r_pix)))
    ys, xs = np.nonzero(s.rng.random(s.shape) < density * weight)
    owners = s.cid[ys, xs]
    ys, xs, w = s.walks(
        owners,
        ys.astype(float),
        xs.astype(float),
        s.rng.uniform(0, 2 * np.pi, len(owners)),
        0.35 * c.r[owners],
        0.12 * c.r[owners],
        s.rng.uniform(0.5, 1.0, len(owners)),
    )
    return has[s.cid] * s.cyto * lines(s.shape, ys, xs, w, s.sigma)


def _g_aggresome(s: Scene, has: np.ndarray) -> np.ndarray:
    """Aggresome: one large bright blob next to the nucleus."""
    owners = np.flatnonzero(has)
    blob_r = 0.4 * s.rn[owners]
    ys, xs = s.point_next_to_nucleus(owners, s.rng.uniform(0, 2 * np.pi, len(owners)), 0.6 * blob_r)
    spots = np.zeros(s.shape, np.float32)
    yy, xx = s.grid
    for y, x, r in zip(ys, xs, blob_r):  # few cells; a window each
        box = bbox(y, x, 2.5 * r + 2, s.size)
        if box is not None:
            d2 = (yy[box] - y) ** 2 + (xx[box] - x) ** 2
            spots[box] = np.maximum(spots[box], np.exp(-0.5 * (np.sqrt(d2) / r) ** 4))
    return has[s.cid] * s.in_cell * np.clip(spots * (1 - 0.5 * s.in_nuc) + 0.08 * s.cyto, 0, 1)


def _g_cytosol(s: Scene, has: np.ndarray) -> np.ndarray:
    """Cytosol: diffuse fill of the cytoplasm, thinning towards the edge."""
    smooth = 0.8 + 0.2 * s.noise(s.px(60, 3.0))
    return has[s.cid] * (s.cyto * smooth * s.thickness + 0.12 * s.in_nuc)


def _g_vesicles(s: Scene, has: np.ndarray) -> np.ndarray:
    """Vesicles: many punctate dots in the cytoplasm."""
    density = 1.0 / (np.pi * (0.07 * s.r_pix) ** 2)
    ys, xs = np.nonzero(s.cyto & has[s.cid] & (s.rng.random(s.shape) < density))
    spots = dots(s.shape, ys, xs, s.rng.uniform(0.4, 1.0, len(ys)), 1.1 * s.sigma)
    return has[s.cid] * s.cyto * np.clip(spots, 0, 1)


PATTERNS: dict[int, Callable[[Scene, np.ndarray], np.ndarray]] = {
    0: _g_nucleoplasm,
    1: _g_nuclear_membrane,
    2: _g_nucleoli,
    3: _g_fibrillar_center,
    4: _g_speckles,
    5: _g_nuclear_bodies,
    6: _g_er,
    7: _g_golgi,
    8: _g_intermediate_filaments,
    9: _g_actin,
    10: _g_microtubules,
    11: _g_mitotic_spindle,
    12: _g_centrosome,
    13: _g_plasma_membrane,
    14: _g_mitochondria,
    15: _g_aggresome,
    16: _g_cytosol,
    17: _g_vesicles,
}
