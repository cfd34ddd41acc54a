"""The rendering context of one field: label images, per-cell parameters and the derived
per-pixel fields and structures (nucleoli, ER mesh, microtubules, spindles) that the
channels and the green patterns share. Everything is computed on demand, once."""

from __future__ import annotations

from functools import cached_property

import numpy as np
from skimage.segmentation import find_boundaries

from ..classes import REFERENCE_SIZE_PX
from .arrays import STEP_PX, distance_to, dots, ellipse_radius, lines, smooth_noise
from .layout import Cells

__all__ = ["Scene"]

_FIBRE_SIGMA_PX_AT_2048 = 2.5  # half-width of fibres, dots and rims
_MIN_FIBRE_SIGMA_PX = 0.55
_NUCLEOLI_PER_NUCLEUS = 4  # at most; 1-4 per interphase nucleus
_MICROTUBULES_PER_CELL = 60  # compact style
_ER_MESH_PX_AT_2048 = 11.0  # compact style: correlation length of the ER mesh's noise
_RL_ER_MESH_PX_AT_2048 = 4.5  # real-like style: a finer reticulum, as in HPA's ER stain
_EDGE_THINNING = (0.55, 0.15)  # compact style: dimming at the outline, e-folding depth in cell radii
_RL_EDGE_THINNING = (0.9, 0.2)  # real-like style
# ---- real-like style: microtubules run along the cell's long axis and into its protrusions
_RL_FIBRES_FROM_NUCLEUS = 80  # microtubules per cell leaving the nucleus ...
_RL_MESH_FIBRES = 60  # ... and running both ways from random points of the cell (a meshwork)
_RL_MESH_SPREAD = 0.9  # those points lie within this many cell radii of the centre
_RL_FIBRES_PER_PROTRUSION = 10  # ... and running from the nucleus to each protrusion's tip
_RL_FIBRE_SIGMA_PX_AT_2048 = 1.5  # microtubules are finer than the compact style's fibres
_RL_FIBRE_WEIGHT = (0.3, 0.8)  # peak of one fibre, before the channel gain
_OVER_NUCLEUS_DIMMING = 0.5  # compact style: filaments crossing the nucleus are this much dimmer
_RL_OVER_NUCLEUS_DIMMING = 0.9  # real-like: fibres crossing the nucleus lie above or below it, out of focus
_RL_FIBRE_REACH = 1.6  # longest fibre, in cell lengths (they stop at the cell's edge)
_RL_MAX_POLARITY = 0.8  # largest fraction of a cell's fibres laid along its long axis ...
_RL_POLARITY_PER_ELONGATION = 1.2  # ... reached at elongation 1 + max / this
_RL_AXIAL_SCATTER, _RL_START_SCATTER, _RL_TIP_SCATTER = 0.15, 0.2, 0.08  # radians, about the intended heading
_RL_AXIAL_PERSISTENCE = 4.0  # persistence of axial and protrusion fibres, in cell radii
_RL_RADIAL_PERSISTENCE = 1.5  # of the other fibres
_WALK_STRETCH = 64  # real-like style: steps of the walks computed at a time


class Scene:
    """Label images, per-cell parameters and derived per-pixel fields of one field.

    Parameters
    ----------
    rng : numpy.random.Generator
    cid, nuc : ndarray, shape (H, W), int
        Cell and nucleus labels (nucleus k inside cell k).
    cells : Cells
        Row k = cell k, row 0 a background dummy.
    style : {"real-like", "compact"}
        Real-like fields lay microtubules along the cells' long axes and protrusions.
    """

    def __init__(
        self, rng: np.random.Generator, cid: np.ndarray, nuc: np.ndarray, cells: Cells, style: str = "compact"
    ):
        self.rng = rng
        self.cid = cid
        self.nuc = nuc
        self.cells = cells
        self.style = style
        self.size = cid.shape[0]
        self.shape = cid.shape
        self.scale = self.size / REFERENCE_SIZE_PX
        self.n = len(cells) - 1
        self.sigma = self.px(_FIBRE_SIGMA_PX_AT_2048, _MIN_FIBRE_SIGMA_PX)
        self.rn = np.sqrt(cells.na * cells.nb)
        #: how much dimmer cytoplasmic fibres are where they cross the nucleus
        self.over_nucleus_dimming = _OVER_NUCLEUS_DIMMING if style == "compact" else _RL_OVER_NUCLEUS_DIMMING
        self._draw_nucleoli()

    def px(self, at_2048: float, minimum: float = 0.0) -> float:
        """A length given at 2048 px, in this image's pixels, at least ``minimum``."""
        return max(minimum, at_2048 * self.scale)

    def noise(self, sigma: float) -> np.ndarray:
        """Smooth noise of correlation length ``sigma`` px, standard deviation 1."""
        return smooth_noise(self.rng, self.shape, sigma, fast=self.style != "compact")

    # ---- masks and distances
    @cached_property
    def in_cell(self) -> np.ndarray:
        """Pixels inside any cell."""
        return self.cid > 0

    @cached_property
    def in_nuc(self) -> np.ndarray:
        """Pixels inside any nucleus."""
        return self.nuc > 0

    @cached_property
    def cyto(self) -> np.ndarray:
        """Cytoplasm: inside a cell, outside its nucleus."""
        return self.in_cell & ~self.in_nuc

    @cached_property
    def d_nuc_edge(self) -> np.ndarray:
        """Distance (px) to the nearest nucleus edge, inside and outside nuclei (0.5 on the
        edge pixels on either side)."""

        edge = find_boundaries(self.nuc, mode="inner") & self.in_nuc
        d = distance_to(edge)
        return np.where(self.in_nuc, d + np.float32(0.5), np.maximum(d - np.float32(0.5), np.float32(0.5)))

    @cached_property
    def d_out(self) -> np.ndarray:
        """Distance (px) from the nearest nucleus; 0 inside nuclei."""
        return np.where(self.in_nuc, np.float32(0), self.d_nuc_edge)

    @cached_property
    def d_edge(self) -> np.ndarray:
        """Distance (px) to the outline of the pixel's own cell (0.5 on the outline); the
        image border is not an outline."""

        outline = find_boundaries(self.cid, mode="inner") & self.in_cell
        return distance_to(outline) + np.float32(0.5)

    @cached_property
    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column coordinates of every pixel, float32."""
        yy, xx = np.indices(self.shape, dtype=np.float32)
        return yy, xx

    @cached_property
    def thickness(self) -> np.ndarray:
        """Relative cytoplasm thickness: thin (dim) at the cell's outline, 1 deep inside; real
        cells spread thinner towards their edges, so real-like ones fade more, and further in."""
        dip, reach = _RL_EDGE_THINNING if self.style != "compact" else _EDGE_THINNING
        return (1 - dip * np.exp(-self.d_edge / (reach * self.r_pix))) * self.in_cell

    @cached_property
    def nuc_theta(self) -> np.ndarray:
        """Angle (radians) of each pixel around its own cell's nucleus centre."""
        yy, xx = self.grid
        return np.arctan2(
            yy - self.cells.ny[self.cid].astype(np.float32), xx - self.cells.nx[self.cid].astype(np.float32)
        )

    @cached_property
    def r_pix(self) -> np.ndarray:
        """Each pixel's own cell radius (px)."""
        return np.maximum(self.cells.r[self.cid], 1.0).astype(np.float32)

    def lut(self, values: np.ndarray) -> np.ndarray:
        """Per-cell values (index = cell id) spread over the image."""
        return np.asarray(values, dtype=np.float32)[self.cid]

    # ---- random points and curves
    def points_in_nucleus(self, owners: np.ndarray, max_rel_radius: float) -> tuple[np.ndarray, np.ndarray]:
        """Uniform random points inside the nuclei of cells ``owners`` (within a fraction of
        the ellipse)."""
        c = self.cells
        rho = max_rel_radius * np.sqrt(self.rng.random(len(owners)))
        phi = self.rng.uniform(0, 2 * np.pi, len(owners))
        u, v = rho * c.na[owners] * np.cos(phi), rho * c.nb[owners] * np.sin(phi)
        co, so = np.cos(c.norient[owners]), np.sin(c.norient[owners])
        return c.ny[owners] + u * so + v * co, c.nx[owners] + u * co - v * so

    def point_next_to_nucleus(
        self, owners: np.ndarray, angle: np.ndarray, gap: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points ``gap`` px outside the nucleus edge of cells ``owners`` in direction ``angle``."""
        c = self.cells
        dist = ellipse_radius(angle, c.na[owners], c.nb[owners], c.norient[owners]) + gap
        return c.ny[owners] + dist * np.sin(angle), c.nx[owners] + dist * np.cos(angle)

    def walks(
        self,
        owners: np.ndarray,
        ys: np.ndarray,
        xs: np.ndarray,
        headings: np.ndarray,
        length: np.ndarray,
        persistence: np.ndarray,
        weights: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points along random walks (persistent random curves) that stop where they leave
        their own cell.

        ``length`` and ``persistence`` are per walk, in px: the direction's variance grows
        by ``step / persistence`` per step. Returns point ``ys, xs, weights`` for :func:`lines`.
        """
        if len(owners) == 0:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        if self.style != "compact":
            return self._walks_in_stretches(owners, ys, xs, headings, length, persistence, weights)
        n_steps = int(np.ceil(float(np.max(length)) / STEP_PX))
        turn = self.rng.standard_normal((len(owners), n_steps)) * np.sqrt(STEP_PX / persistence)[:, None]
        heading = headings[:, None] + np.cumsum(turn, axis=1)
        py = ys[:, None] + np.cumsum(STEP_PX * np.sin(heading), axis=1)
        px_ = xs[:, None] + np.cumsum(STEP_PX * np.cos(heading), axis=1)
        iy = np.clip(np.rint(py).astype(np.intp), 0, self.size - 1)
        ix = np.clip(np.rint(px_).astype(np.intp), 0, self.size - 1)
        inside = (py > -0.5) & (py < self.size - 0.5) & (px_ > -0.5) & (px_ < self.size - 0.5)
        ok = inside & (self.cid[iy, ix] == owners[:, None]) & (np.arange(n_steps)[None, :] * STEP_PX < length[:, None])
        ok = np.logical_and.accumulate(ok, axis=1)
        w = np.broadcast_to(weights[:, None], ok.shape)
        return py[ok], px_[ok], w[ok]

    def _walks_in_stretches(
        self,
        owners: np.ndarray,
        ys: np.ndarray,
        xs: np.ndarray,
        headings: np.ndarray,
        length: np.ndarray,
        persistence: np.ndarray,
        weights: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`walks` computed :data:`_WALK_STRETCH` steps at a time for the walks still
        going, so that long walks that leave their cell early cost little (real-like style)."""
        out_y, out_x, out_w = [], [], []
        alive = np.arange(len(owners))
        y, x, h = ys.astype(float), xs.astype(float), headings.astype(float)
        done = 0
        while len(alive):
            k = min(_WALK_STRETCH, int(np.ceil(float(np.max(length[alive]) - done * STEP_PX) / STEP_PX)))
            if k <= 0:
                break
            turn = self.rng.standard_normal((len(alive), k)) * np.sqrt(STEP_PX / persistence[alive])[:, None]
            heading = h[alive, None] + np.cumsum(turn, axis=1)
            py = y[alive, None] + np.cumsum(STEP_PX * np.sin(heading), axis=1)
            px_ = x[alive, None] + np.cumsum(STEP_PX * np.cos(heading), axis=1)
            iy = np.clip(np.rint(py).astype(np.intp), 0, self.size - 1)
            ix = np.clip(np.rint(px_).astype(np.intp), 0, self.size - 1)
            inside = (py > -0.5) & (py < self.size - 0.5) & (px_ > -0.5) & (px_ < self.size - 0.5)
            steps = done + np.arange(k)[None, :]
            ok = inside & (self.cid[iy, ix] == owners[alive, None]) & (steps * STEP_PX < length[alive, None])
            ok = np.logical_and.accumulate(ok, axis=1)
            out_y.append(py[ok])
            out_x.append(px_[ok])
            out_w.append(np.broadcast_to(weights[alive, None], ok.shape)[ok])
            y[alive], x[alive], h[alive] = py[:, -1], px_[:, -1], heading[:, -1]
            alive, done = alive[ok[:, -1]], done + k
        return np.concatenate(out_y), np.concatenate(out_x), np.concatenate(out_w)

    def random_cell_points(self, owners: np.ndarray, spread: float) -> tuple[np.ndarray, np.ndarray]:
        """Random points within ``spread`` cell radii of the centres of ``owners`` (they may
        fall outside the cell; walks starting there draw nothing)."""
        c = self.cells
        rho = spread * np.sqrt(self.rng.random(len(owners))) * c.r[owners] * c.elong[owners]
        phi = self.rng.uniform(0, 2 * np.pi, len(owners))
        return c.cy[owners] + rho * np.sin(phi), c.cx[owners] + rho * np.cos(phi)

    # ---- structures shared by several channels
    def _draw_nucleoli(self) -> None:
        """1-4 nucleoli per interphase nucleus: a soft mask (H, W) float32 in [0, 1]."""
        c = self.cells
        k_max = _NUCLEOLI_PER_NUCLEUS
        count = np.where(c.mitotic, 0, self.rng.integers(1, k_max + 1, len(c)))
        count[0] = 0
        owners = np.repeat(np.arange(len(c)), k_max)
        ly, lx = self.points_in_nucleus(owners, 0.5)
        lr = self.rn[owners] * self.rng.uniform(0.15, 0.27, len(owners))
        lr = np.where(np.tile(np.arange(k_max), len(c)) < np.repeat(count, k_max), lr, 0.0)
        self.nucleoli_y, self.nucleoli_x = ly.reshape(len(c), k_max), lx.reshape(len(c), k_max)
        self.nucleoli_radius = lr.reshape(len(c), k_max)
        field_ = np.zeros(self.shape, np.float32)
        ys, xs = np.nonzero(self.in_nuc)
        o = self.nuc[ys, xs]
        if len(o):
            dy = ys[:, None] - self.nucleoli_y[o]
            dx = xs[:, None] - self.nucleoli_x[o]
            r = np.maximum(self.nucleoli_radius[o], 1e-3)
            wobble = 1 + 0.15 * self.noise(self.px(10, 1.0))[ys, xs][:, None]
            val = np.exp(-((np.hypot(dy, dx) * wobble / r) ** 4)) * (self.nucleoli_radius[o] > 0)
            field_[ys, xs] = val.max(axis=1)
        self.nucleoli = field_

    @cached_property
    def er_mesh(self) -> np.ndarray:
        """A reticular mesh over the cytoplasm, weighted towards the nucleus, in [0, 1]."""
        scale = _ER_MESH_PX_AT_2048 if self.style == "compact" else _RL_ER_MESH_PX_AT_2048
        ridges = np.exp(-((self.noise(self.px(scale, 1.1)) / 0.35) ** 2))
        perinuclear = np.exp(-self.d_out / (0.35 * self.r_pix))
        fine = 0.8 + 0.2 * self.noise(self.px(4, 0.7))
        return (self.cyto * (0.25 + 0.75 * perinuclear) * ridges * fine + 0.15 * self.nuclear_rim).astype(np.float32)

    @cached_property
    def nuclear_rim(self) -> np.ndarray:
        """A thin ring on every nucleus edge, peak 1."""
        w = self.px(5, 0.75)
        d = self.d_nuc_edge - np.float32(0.5)
        return np.exp(-0.5 * (d / w) ** 2) * self.in_cell

    @cached_property
    def microtubules(self) -> np.ndarray:
        """Fibres from the nucleus edge of interphase cells, in [0, 1]: radiating (compact
        style), or mostly along the long axis and into the protrusions (real-like)."""
        if self.style != "compact":
            return self._aligned_microtubules()
        c = self.cells
        cells = np.flatnonzero(~c.mitotic[1:]) + 1
        owners = np.repeat(cells, _MICROTUBULES_PER_CELL)
        angle = self.rng.uniform(0, 2 * np.pi, len(owners))
        ys, xs = self.point_next_to_nucleus(owners, angle, self.rng.uniform(-2.0, 0.5, len(owners)) * self.sigma)
        ys, xs, w = self.walks(
            owners,
            ys,
            xs,
            angle + self.rng.normal(0, 0.25, len(owners)),
            1.6 * c.r[owners] * c.elong[owners],
            1.8 * c.r[owners],
            self.rng.uniform(0.4, 1.0, len(owners)),
        )
        return lines(self.shape, ys, xs, w, self.sigma)

    def _axial_or_random(self, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Real-like style: heading (radians) and persistence (px) of fibres of cells ``owners``:
        along the long axis with a probability growing with elongation, else any direction."""
        c = self.cells
        polarity = np.clip((c.elong[owners] - 1) * _RL_POLARITY_PER_ELONGATION, 0, _RL_MAX_POLARITY)
        axial = self.rng.random(len(owners)) < polarity
        along = (
            c.orient[owners]
            + np.pi * self.rng.integers(0, 2, len(owners))
            + self.rng.normal(0, _RL_AXIAL_SCATTER, len(owners))
        )
        heading = np.where(axial, along, self.rng.uniform(0, 2 * np.pi, len(owners)))
        return heading, np.where(axial, _RL_AXIAL_PERSISTENCE, _RL_RADIAL_PERSISTENCE) * c.r[owners]

    def _fibre_starts(self, cells: np.ndarray) -> tuple[np.ndarray, ...]:
        """Real-like style: ``owners, ys, xs, heading, persistence`` of the microtubules of
        interphase ``cells``: fibres leaving the nucleus, a criss-crossing meshwork over the
        cytoplasm (both ways from random points), and fibres from the nucleus to each
        protrusion's tip."""
        c = self.cells
        nuclear = np.repeat(cells, _RL_FIBRES_FROM_NUCLEUS)
        h_nuc, p_nuc = self._axial_or_random(nuclear)
        start = h_nuc + self.rng.normal(0, _RL_START_SCATTER, len(nuclear))  # leave the nucleus about where they head
        y_nuc, x_nuc = self.point_next_to_nucleus(nuclear, start, np.zeros(len(nuclear)))
        mesh = np.repeat(cells, _RL_MESH_FIBRES)
        h_mesh, p_mesh = self._axial_or_random(mesh)
        y_mesh, x_mesh = self.random_cell_points(mesh, _RL_MESH_SPREAD)
        p_cell, p_k = np.nonzero(c.protrusions[cells, :, 1] > 0)
        tips = np.repeat(cells[p_cell], _RL_FIBRES_PER_PROTRUSION)
        h_tip = c.image_angle(np.repeat(c.protrusions[cells[p_cell], p_k, 0], _RL_FIBRES_PER_PROTRUSION), tips)
        h_tip = h_tip + self.rng.normal(0, _RL_TIP_SCATTER, len(tips))
        y_tip, x_tip = self.point_next_to_nucleus(tips, h_tip, np.zeros(len(tips)))
        return (
            np.concatenate([nuclear, mesh, mesh, tips]),
            np.concatenate([y_nuc, y_mesh, y_mesh, y_tip]),
            np.concatenate([x_nuc, x_mesh, x_mesh, x_tip]),
            np.concatenate([h_nuc, h_mesh, h_mesh + np.pi, h_tip]),
            np.concatenate([p_nuc, p_mesh, p_mesh, _RL_AXIAL_PERSISTENCE * c.r[tips]]),
        )

    def _aligned_microtubules(self) -> np.ndarray:
        """Real-like style: see :meth:`_fibre_starts`; fibres finer than the compact style's."""
        c = self.cells
        cells = np.flatnonzero(~c.mitotic[1:]) + 1
        owners, ys, xs, heading, persistence = self._fibre_starts(cells)
        reach = (
            c.r[owners] * c.elong[owners] * (1 + c.protrusions[owners, :, 1].max(axis=1, initial=0)) * _RL_FIBRE_REACH
        )
        ys, xs, w = self.walks(
            owners, ys, xs, heading, reach, persistence, self.rng.uniform(*_RL_FIBRE_WEIGHT, len(owners))
        )
        fibres = lines(self.shape, ys, xs, w, self.px(_RL_FIBRE_SIGMA_PX_AT_2048, _MIN_FIBRE_SIGMA_PX))
        return fibres * (1 - np.float32(self.over_nucleus_dimming) * self.in_nuc)

    @cached_property
    def spindle(self) -> np.ndarray:
        """Bipolar spindles of the mitotic cells (poles, kinetochore and astral fibres), in [0, 1]."""
        c = self.cells
        cells = np.flatnonzero(c.mitotic[1:]) + 1
        if len(cells) == 0:
            return np.zeros(self.shape, np.float32)
        per_pole = 36
        owners = np.repeat(np.repeat(cells, 2), per_pole)
        side = np.tile(np.repeat([-1.0, 1.0], per_pole), len(cells))
        axis = c.norient[owners] + np.pi / 2  # spindle axis, across the chromosome plate
        half = 0.62 * c.r[owners]
        pole_y, pole_x = c.ny[owners] + side * half * np.sin(axis), c.nx[owners] + side * half * np.cos(axis)
        s = self.rng.uniform(-1, 1, len(owners))
        plate_dir_y, plate_dir_x = np.sin(c.norient[owners]), np.cos(c.norient[owners])
        end_y = c.ny[owners] + 0.9 * s * c.na[owners] * plate_dir_y
        end_x = c.nx[owners] + 0.9 * s * c.na[owners] * plate_dir_x
        ctrl_y = (pole_y + end_y) / 2 + 0.3 * s * c.na[owners] * plate_dir_y
        ctrl_x = (pole_x + end_x) / 2 + 0.3 * s * c.na[owners] * plate_dir_x
        n_pts = int(np.ceil(float(np.max(half)) * 1.3 / STEP_PX))
        t = np.linspace(0, 1, n_pts)[None, :]
        by = (1 - t) ** 2 * pole_y[:, None] + 2 * t * (1 - t) * ctrl_y[:, None] + t**2 * end_y[:, None]
        bx = (1 - t) ** 2 * pole_x[:, None] + 2 * t * (1 - t) * ctrl_x[:, None] + t**2 * end_x[:, None]
        w = np.broadcast_to(self.rng.uniform(0.5, 1.0, len(owners))[:, None], by.shape)
        fibres = lines(self.shape, by.ravel(), bx.ravel(), w.ravel(), self.sigma)
        # astral fibres: short rays from each pole away from the plate
        n_astral = 8
        a_owner = np.repeat(np.repeat(cells, 2), n_astral)
        a_side = np.tile(np.repeat([-1.0, 1.0], n_astral), len(cells))
        a_axis = c.norient[a_owner] + np.pi / 2
        a_y = c.ny[a_owner] + a_side * 0.62 * c.r[a_owner] * np.sin(a_axis)
        a_x = c.nx[a_owner] + a_side * 0.62 * c.r[a_owner] * np.cos(a_axis)
        heading = a_axis + np.where(a_side > 0, 0.0, np.pi) + self.rng.uniform(-1.2, 1.2, len(a_owner))
        ay, ax, aw = self.walks(
            a_owner, a_y, a_x, heading, 0.3 * c.r[a_owner], 5.0 * c.r[a_owner], np.full(len(a_owner), 0.5)
        )
        astral = lines(self.shape, ay, ax, aw, self.sigma)
        pole_owner = np.repeat(cells, 2)
        p_side = np.tile([-1.0, 1.0], len(cells))
        p_axis = c.norient[pole_owner] + np.pi / 2
        poles = dots(
            self.shape,
            c.ny[pole_owner] + p_side * 0.62 * c.r[pole_owner] * np.sin(p_axis),
            c.nx[pole_owner] + p_side * 0.62 * c.r[pole_owner] * np.cos(p_axis),
            np.ones(len(pole_owner)),
            1.6 * self.sigma,
        )
        mitotic_px = c.mitotic[self.cid] & self.in_cell
        return (np.clip(0.85 * fibres + 0.5 * astral + poles, 0, 1) * mitotic_px).astype(np.float32)
