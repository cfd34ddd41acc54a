"""Cell geometry of the synthetic fields: where the cells lie, their outlines and nuclei.

Two styles (see :mod:`hpaseg.synth`):

* ``real-like`` (default): colonies grown until a drawn fraction of the field is covered,
  large irregular cells (HPA's median cell is about 115,000 px at 2048, 380 px across),
  elongated, with 0-3 long tapering protrusions, ruffled outlines and large nuclei.
* ``compact``: the earlier look, smaller rounder cells in looser clusters; kept
  byte-for-byte as it was.

Both tessellate the field the same way: a pixel goes to the cell of smallest normalised
distance ``rho`` (distance in the cell's stretched frame over the outline's radius in that
direction, plus smooth noise), if below 1, so overlapping neighbours share a boundary.
All ``*_PX_AT_2048`` lengths are scaled by ``size / 2048``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..classes import REFERENCE_SIZE_PX
from .arrays import bbox, largest_component_per_label, smooth_noise

__all__ = ["Cells", "build_geometry"]


# ---- shared
_MIN_VISIBLE_NUCLEUS_FRACTION = 0.4  # cells whose nucleus lies mostly outside the image are dropped
_MIN_CELL_AREA_FRACTION = 0.15  # ... and cells keeping less than this fraction of pi r^2
_NUCLEUS_CLAIM = 0.5  # inside its nucleus ellipse a cell's rho is at most this times the ellipse radius
_NUCLEUS_OUTLINE_NOISE = 0.04  # amplitude of the smooth noise on the nucleus's normalised radius
_MITOTIC_RADIUS_FACTOR = 0.72  # mitotic cells are round and smaller than the image's typical cell
_MITOTIC_PLATE = (0.42, 0.11)  # semi-axes of a mitotic chromosome plate, in cell radii
_PLACEMENT_TRIES = 40  # attempts to place one cell before giving up on it
_OUTLINE_NOISE_SIGMA = 0.22  # smooth outline noise, correlation length in typical cell radii

# ---- compact style (the earlier look; do not change: its output is pinned byte for byte)
_CELL_RADIUS_PX_AT_2048 = (110.0, 250.0)  # mean radius of one cell
_TYPICAL_RADIUS_PX_AT_2048 = (150.0, 200.0)  # an image's typical cell radius
_NUCLEUS_TO_CELL_DIAMETER = (0.30, 0.50)
_CELLS_PLACED = (12, 27)  # cells placed per image, some of them then cut away by the border

# ---- real-like style
_RL_TYPICAL_RADIUS_PX_AT_2048 = (185.0, 220.0)  # an image's typical cell radius (sqrt(area / pi))
_RL_CELL_RADIUS_PX_AT_2048 = (80.0, 330.0)  # limits of one cell's mean radius
_RL_RADIUS_LOG_SD = 0.18  # spread of the cells' radii about the typical one (log scale)
_RL_COVERAGE = (0.25, 0.9)  # drawn per image: cells placed to cover about this fraction of the field
_RL_MARGIN = 0.6  # cell centres may lie this many typical radii outside the field
_RL_SOLITARY = 1.0  # probability that a cell lies apart from all others, times 1 - the drawn coverage ...
_RL_MAX_SOLITARY = 0.6  # ... at most this
_RL_NEIGHBOUR_PROBABILITY = 0.8  # any other cell joins a colony (else it founds one, apart)
_RL_NEIGHBOUR_DISTANCE = (0.72, 0.95)  # centre distance to that neighbour, in sums of radii
_RL_MIN_DISTANCE = 0.62  # no two centres closer than this many sums of radii ...
_RL_APART_DISTANCE = 1.35  # ... nor, for a solitary cell or a colony founder, than this many
_MITOTIC, _SOLITARY, _FOUNDER, _MEMBER = range(4)  # kinds of cells placed
_RL_ELONGATION_SD = 0.45  # aspect factor 1 + |N(0, sd)| ...
_RL_MAX_ELONGATION = 2.4  # ... at most this
_RL_OUTLINE_MODES = 4  # angular modes 2..5 of the outline ...
_RL_MODE_AMPLITUDE = 0.09  # ... of amplitude up to this
_RL_PROTRUSIONS_MEAN = 1.5  # Poisson mean of long protrusions per cell ...
_RL_MAX_PROTRUSIONS = 3  # ... at most this many
_RL_PROTRUSION_AXIAL = 0.6  # probability a protrusion extends the cell's long axis ...
_RL_PROTRUSION_AXIAL_SCATTER = 0.25  # ... give or take this (radians)
_RL_PROTRUSION_LENGTH = (0.35, 1.1)  # extra outline radius at its tip, in cell radii
_RL_PROTRUSION_WIDTH = (0.10, 0.22)  # angular half-width (radians, stretched frame)
_RL_NOISE = (0.08, 0.03)  # amplitude of coarse and fine outline noise on rho ...
_RL_MITOTIC_NOISE = 0.25  # ... times this for round mitotic cells
_RL_FINE_NOISE_SIGMA = 0.05  # fine outline noise (ruffles), in typical cell radii
_RL_NUCLEUS_TO_CELL_RADIUS = (0.42, 0.60)  # nucleus equivalent radius over the cell's
_RL_NUCLEUS_OFFSET = 0.15  # nucleus centre up to this many cell radii from the cell's
_RL_NUCLEUS_ELONGATION = (0.4, (0.0, 0.3))  # nucleus aspect: 1 + this * (cell aspect - 1) + U(range)
_RL_ANGLE_BINS = 720  # resolution of each cell's tabulated outline radius


@dataclass
class Cells:
    """Per-cell parameters; arrays indexed by cell id (after :func:`build_geometry`, index 0
    is a background dummy)."""

    cy: np.ndarray
    cx: np.ndarray
    r: np.ndarray  # mean radius, px
    elong: np.ndarray  # aspect factor of the outline (>= 1)
    orient: np.ndarray  # orientation of the long axis, radians
    modes: np.ndarray  # (n, k, 2) amplitude and phase of angular modes 2..k+1
    mitotic: np.ndarray  # bool
    ny: np.ndarray
    nx: np.ndarray
    na: np.ndarray  # nucleus semi-axes, px
    nb: np.ndarray
    norient: np.ndarray
    mix: np.ndarray  # angle mixing the two outline-noise fields
    protrusions: np.ndarray  # (n, k, 3) angle (stretched frame), extra length (radii), half-width; length 0 = none

    def take(self, index: np.ndarray) -> Cells:
        """The cells ``index``, in that order."""
        return Cells(**{k: v[index] for k, v in self.__dict__.items()})

    def __len__(self) -> int:
        return len(self.cy)

    def image_angle(self, stretched: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Image-frame direction (radians) of the stretched-frame angle ``stretched`` of cells ``index``."""
        e = self.elong[index]
        return self.orient[index] + np.arctan2(np.sin(stretched) / e, np.cos(stretched) * e)


def _nuclei_params(
    rng: np.random.Generator,
    r: np.ndarray,
    orient: np.ndarray,
    mitotic: np.ndarray,
    ratio: tuple[float, float],
    max_offset: float,
    elong_range: tuple[float, float],
    elong_base: np.ndarray | float = 0.0,
) -> dict[str, np.ndarray]:
    """Nucleus ellipses near the cell centres, long axis roughly along the cell's, aspect
    ``elong_base + U(elong_range)``; a condensed chromosome plate in mitotic cells."""
    n = len(r)
    offset = rng.uniform(0, max_offset, n) * r
    offset_angle = rng.uniform(0, 2 * np.pi, n)
    rn = r * rng.uniform(*ratio, n)
    n_elong = elong_base + rng.uniform(*elong_range, n)
    na, nb = rn * n_elong, rn / n_elong
    norient = orient + rng.normal(0, 0.3, n)
    na = np.where(mitotic, _MITOTIC_PLATE[0] * r, na)
    nb = np.where(mitotic, _MITOTIC_PLATE[1] * r, nb)
    offset[mitotic] = 0.0
    return {"offset": offset, "offset_angle": offset_angle, "na": na, "nb": nb, "norient": norient}


def _place_compact(rng: np.random.Generator, size: int, scale: float, n_mitotic: int) -> Cells:
    """Compact style: centres and shapes, mitotic cells first and inside the image."""
    r_typ = rng.uniform(*_TYPICAL_RADIUS_PX_AT_2048) * scale
    n_target = int(rng.integers(_CELLS_PLACED[0], _CELLS_PLACED[1] + 1))
    centres: list[tuple[float, float]] = []
    radii: list[float] = []
    for i in range(n_target):
        mitotic = i < n_mitotic
        if mitotic:
            r = _MITOTIC_RADIUS_FACTOR * r_typ
        else:
            r = float(
                np.clip(
                    r_typ * rng.lognormal(0.0, 0.22),
                    _CELL_RADIUS_PX_AT_2048[0] * scale,
                    _CELL_RADIUS_PX_AT_2048[1] * scale,
                )
            )
        for _ in range(_PLACEMENT_TRIES):
            if mitotic:
                y, x = rng.uniform(1.2 * r, size - 1.2 * r, 2)
            elif centres and rng.random() < 0.7:  # next to a cell already placed: colonies
                j = int(rng.integers(len(centres)))
                angle = rng.uniform(0, 2 * np.pi)
                dist = (r + radii[j]) * rng.uniform(0.72, 0.92)
                y, x = centres[j][0] + dist * np.sin(angle), centres[j][1] + dist * np.cos(angle)
            else:
                y, x = rng.uniform(-0.1 * size, 1.1 * size, 2)
            if not (-0.3 * r <= y <= size + 0.3 * r and -0.3 * r <= x <= size + 0.3 * r):
                continue
            if centres:
                c = np.asarray(centres)
                d = np.hypot(c[:, 0] - y, c[:, 1] - x)
                if np.any(d < 0.7 * (r + np.asarray(radii))):
                    continue
            centres.append((float(y), float(x)))
            radii.append(r)
            break
    return _compact_shapes(
        rng, np.asarray(centres, dtype=float).reshape(-1, 2), np.asarray(radii, dtype=float), n_mitotic
    )


def _compact_shapes(rng: np.random.Generator, c: np.ndarray, r: np.ndarray, n_mitotic: int) -> Cells:
    """Compact style: outlines and nuclei of cells at centres ``c`` (n, 2) of mean radii ``r``."""
    n = len(r)
    mitotic = np.arange(n) < n_mitotic
    elong = np.where(mitotic, 1.0, rng.uniform(1.0, 1.6, n))
    orient = rng.uniform(0, np.pi, n)
    modes = np.stack([rng.uniform(0, 0.06, (n, 3)), rng.uniform(0, 2 * np.pi, (n, 3))], axis=-1)
    modes[mitotic, :, 0] = 0.0
    nuc = _nuclei_params(rng, r, orient, mitotic, _NUCLEUS_TO_CELL_DIAMETER, 0.12, (1.0, 1.35))
    mix = rng.uniform(0, 2 * np.pi, n)
    return _cells(c, r, elong, orient, modes, mitotic, nuc, mix, np.zeros((n, 0, 3)))


def _cells(
    c: np.ndarray,
    r: np.ndarray,
    elong: np.ndarray,
    orient: np.ndarray,
    modes: np.ndarray,
    mitotic: np.ndarray,
    nuc: dict,
    mix: np.ndarray,
    protrusions: np.ndarray,
) -> Cells:
    """The :class:`Cells` of centres ``c`` and the drawn shape parameters, nuclei placed by ``nuc``."""
    return Cells(
        cy=c[:, 0],
        cx=c[:, 1],
        r=r,
        elong=elong,
        orient=orient,
        modes=modes,
        mitotic=mitotic,
        ny=c[:, 0] + nuc["offset"] * np.sin(nuc["offset_angle"]),
        nx=c[:, 1] + nuc["offset"] * np.cos(nuc["offset_angle"]),
        na=nuc["na"],
        nb=nuc["nb"],
        norient=nuc["norient"],
        mix=mix,
        protrusions=protrusions,
    )


def _draw_radius(rng: np.random.Generator, r_typ: float, scale: float) -> float:
    """Real-like style: one cell's mean radius (px), log-normal about the image's typical one."""
    lo, hi = (v * scale for v in _RL_CELL_RADIUS_PX_AT_2048)
    return float(np.clip(r_typ * rng.lognormal(0.0, _RL_RADIUS_LOG_SD), lo, hi))


def _candidate(
    rng: np.random.Generator,
    size: int,
    margin: float,
    r: float,
    kind: int,
    centres: list[tuple[float, float]],
    radii: list[float],
    hosts: list[int],
) -> tuple[float, float]:
    """One proposed centre for a cell of ``kind``: inside the image for a mitotic cell, next to
    a placed cell of index in ``hosts`` for a colony member, anywhere else."""
    if kind == _MITOTIC:
        y, x = rng.uniform(1.2 * r, size - 1.2 * r, 2)
    elif kind == _MEMBER:
        j = hosts[int(rng.integers(len(hosts)))]
        angle = rng.uniform(0, 2 * np.pi)
        dist = (r + radii[j]) * rng.uniform(*_RL_NEIGHBOUR_DISTANCE)
        y, x = centres[j][0] + dist * np.sin(angle), centres[j][1] + dist * np.cos(angle)
    else:
        y, x = rng.uniform(-margin, size + margin, 2)
    return float(y), float(x)


def _cell_kind(rng: np.random.Generator, mitotic: bool, p_solitary: float, hosts: list[int]) -> int:
    """Mitotic, solitary (apart from all, none joins it), colony member, or colony founder."""
    if mitotic:
        return _MITOTIC
    if rng.random() < p_solitary:
        return _SOLITARY
    return _MEMBER if hosts and rng.random() < _RL_NEIGHBOUR_PROBABILITY else _FOUNDER


def _grow_colonies(rng: np.random.Generator, size: int, scale: float, n_mitotic: int) -> tuple[np.ndarray, np.ndarray]:
    """Real-like style: centres (n, 2) and mean radii (n,) of colonies and solitary cells placed
    until the drawn coverage is reached; mitotic cells first. Solitary cells and colony
    founders keep :data:`_RL_APART_DISTANCE` from every other cell, members join a colony."""
    r_typ = rng.uniform(*_RL_TYPICAL_RADIUS_PX_AT_2048) * scale
    margin = _RL_MARGIN * r_typ
    coverage = rng.uniform(*_RL_COVERAGE)
    n_target = int(round(coverage * (size + 2 * margin) ** 2 / (np.pi * r_typ**2)))
    p_solitary = min(_RL_SOLITARY * (1 - coverage), _RL_MAX_SOLITARY)  # sparse fields: many lone cells; dense: colonies
    centres: list[tuple[float, float]] = []
    radii: list[float] = []
    apart: list[bool] = []  # keeps everyone at the apart distance
    hosts: list[int] = []  # cells a colony member may join
    for i in range(max(n_target, n_mitotic + 1)):
        kind = _cell_kind(rng, i < n_mitotic, p_solitary, hosts)
        r = _MITOTIC_RADIUS_FACTOR * r_typ if kind == _MITOTIC else _draw_radius(rng, r_typ, scale)
        own = _RL_APART_DISTANCE if kind in (_SOLITARY, _FOUNDER) else _RL_MIN_DISTANCE
        for _ in range(_PLACEMENT_TRIES):
            y, x = _candidate(rng, size, margin, r, kind, centres, radii, hosts)
            if not (-margin <= y <= size + margin and -margin <= x <= size + margin):
                continue
            if centres:
                need = np.maximum(own, np.where(apart, _RL_APART_DISTANCE, _RL_MIN_DISTANCE)) * (r + np.asarray(radii))
                if np.any(np.hypot(*(np.asarray(centres) - (y, x)).T) < need):
                    continue
            hosts += [len(centres)] if kind in (_MEMBER, _FOUNDER) else []
            centres.append((y, x))
            radii.append(r)
            apart.append(kind == _SOLITARY)
            break
    return np.asarray(centres, dtype=float).reshape(-1, 2), np.asarray(radii, dtype=float)


def _protrusions(rng: np.random.Generator, n: int, mitotic: np.ndarray) -> np.ndarray:
    """(n, k, 3): angle in the stretched frame, extra length in cell radii (0 = none), half-width."""
    k = _RL_MAX_PROTRUSIONS
    count = np.where(mitotic, 0, np.minimum(rng.poisson(_RL_PROTRUSIONS_MEAN, n), k))
    axial = rng.random((n, k)) < _RL_PROTRUSION_AXIAL
    along = rng.integers(0, 2, (n, k)) * np.pi + rng.normal(0, _RL_PROTRUSION_AXIAL_SCATTER, (n, k))
    angle = np.where(axial, along, rng.uniform(0, 2 * np.pi, (n, k)))
    length = rng.uniform(*_RL_PROTRUSION_LENGTH, (n, k)) * (np.arange(k)[None, :] < count[:, None])
    width = rng.uniform(*_RL_PROTRUSION_WIDTH, (n, k))
    return np.stack([angle, length, width], axis=-1)


def _place_real(rng: np.random.Generator, size: int, scale: float, n_mitotic: int) -> Cells:
    """Real-like style: colonies of large, elongated, irregular cells with protrusions."""
    c, r = _grow_colonies(rng, size, scale, n_mitotic)
    n = len(r)
    mitotic = np.arange(n) < n_mitotic
    elong = np.where(mitotic, 1.0, np.minimum(1 + np.abs(rng.normal(0, _RL_ELONGATION_SD, n)), _RL_MAX_ELONGATION))
    orient = rng.uniform(0, np.pi, n)
    k = _RL_OUTLINE_MODES
    modes = np.stack([rng.uniform(0, _RL_MODE_AMPLITUDE, (n, k)), rng.uniform(0, 2 * np.pi, (n, k))], axis=-1)
    modes[mitotic, :, 0] = 0.0
    follow, extra = _RL_NUCLEUS_ELONGATION
    nuc = _nuclei_params(
        rng, r, orient, mitotic, _RL_NUCLEUS_TO_CELL_RADIUS, _RL_NUCLEUS_OFFSET, extra, 1 + follow * (elong - 1)
    )
    mix = rng.uniform(0, 2 * np.pi, n)  # drawn before the protrusions, as always
    return _cells(c, r, elong, orient, modes, mitotic, nuc, mix, _protrusions(rng, n, mitotic))


# --------------------------------------------------------------------------- tessellation
def _nucleus_nu(cells: Cells, i: int, box: tuple[slice, slice], noise_a: np.ndarray, noise_b: np.ndarray) -> np.ndarray:
    """Normalised elliptical radius of the pixels of ``box`` about nucleus ``i`` (< 1 inside),
    with a little smooth noise for an irregular outline."""
    yy = np.arange(box[0].start, box[0].stop, dtype=np.float32)[:, None] - np.float32(cells.ny[i])
    xx = np.arange(box[1].start, box[1].stop, dtype=np.float32)[None, :] - np.float32(cells.nx[i])
    co, so = np.float32(np.cos(cells.norient[i])), np.float32(np.sin(cells.norient[i]))
    u, v = xx * co + yy * so, -xx * so + yy * co
    nu = np.hypot(u / np.float32(cells.na[i]), v / np.float32(cells.nb[i]))
    mix = np.float32(np.sin(cells.mix[i])) * noise_a[box] - np.float32(np.cos(cells.mix[i])) * noise_b[box]
    return nu + np.float32(_NUCLEUS_OUTLINE_NOISE) * mix


def _cell_frame(cells: Cells, i: int, box: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates ``(u, v)`` of the pixels of ``box`` along and across cell ``i``'s long axis."""
    yy = np.arange(box[0].start, box[0].stop, dtype=np.float32)[:, None] - np.float32(cells.cy[i])
    xx = np.arange(box[1].start, box[1].stop, dtype=np.float32)[None, :] - np.float32(cells.cx[i])
    co, so = np.float32(np.cos(cells.orient[i])), np.float32(np.sin(cells.orient[i]))
    return xx * co + yy * so, -xx * so + yy * co


def _claim(best: np.ndarray, owner: np.ndarray, box: tuple[slice, slice], rho: np.ndarray, cell_id: int) -> None:
    """Give the pixels of ``box`` where ``rho`` beats the best so far to ``cell_id``."""
    better = rho < best[box]
    best[box] = np.where(better, rho, best[box])
    owner[box] = np.where(better, cell_id, owner[box])


def _tessellate_compact(rng: np.random.Generator, size: int, cells: Cells) -> tuple[np.ndarray, tuple]:
    """Compact style: cell labels (ids = index + 1) and the nucleus outline noise."""
    r_typ = float(np.median(cells.r))
    noise_a = smooth_noise(rng, (size, size), _OUTLINE_NOISE_SIGMA * r_typ)
    noise_b = smooth_noise(rng, (size, size), _OUTLINE_NOISE_SIGMA * r_typ)
    best = np.ones((size, size), np.float32)
    owner = np.zeros((size, size), np.int32)
    for i in range(len(cells)):
        amp = 0.02 if cells.mitotic[i] else 0.09
        extent = cells.r[i] * cells.elong[i] * (1 + cells.modes[i, :, 0].sum()) * (1 + 2 * amp) + 2
        box = bbox(cells.cy[i], cells.cx[i], extent, size)
        if box is None:
            continue
        u, v = _cell_frame(cells, i, box)
        theta = np.arctan2(v, u)
        radius = np.float32(cells.r[i]) * (
            1
            + sum(np.float32(a) * np.cos(m * theta + np.float32(p)) for m, (a, p) in enumerate(cells.modes[i], start=2))
        )
        rho = np.hypot(u / np.float32(cells.elong[i]), v * np.float32(cells.elong[i])) / radius
        rho += np.float32(amp) * (
            np.float32(np.cos(cells.mix[i])) * noise_a[box] + np.float32(np.sin(cells.mix[i])) * noise_b[box]
        )
        rho = np.minimum(
            rho, np.float32(_NUCLEUS_CLAIM) * _nucleus_nu(cells, i, box, noise_a, noise_b)
        )  # a cell keeps its nucleus
        _claim(best, owner, box, rho, i + 1)
    return owner, (noise_a, noise_b)


def _outline_table(cells: Cells, i: int) -> np.ndarray:
    """Real-like style: cell ``i``'s outline radius (px) at :data:`_RL_ANGLE_BINS` stretched-frame
    angles: angular modes plus Gaussian bumps in angle for the protrusions."""
    phi = np.linspace(-np.pi, np.pi, _RL_ANGLE_BINS, endpoint=False)
    shape = 1 + sum(a * np.cos(m * phi + p) for m, (a, p) in enumerate(cells.modes[i], start=2))
    for angle, length, width in cells.protrusions[i]:
        diff = np.angle(np.exp(1j * (phi - angle)))
        shape = shape + length * np.exp(-0.5 * (diff / width) ** 2)
    return (cells.r[i] * shape).astype(np.float32)


def _tessellate_real(rng: np.random.Generator, size: int, cells: Cells) -> tuple[np.ndarray, tuple]:
    """Real-like style: cell labels (ids = index + 1) and the nucleus outline noise."""
    r_typ = float(np.median(cells.r))
    noise_a = smooth_noise(rng, (size, size), _OUTLINE_NOISE_SIGMA * r_typ, fast=True)
    noise_b = smooth_noise(rng, (size, size), _OUTLINE_NOISE_SIGMA * r_typ, fast=True)
    fine = smooth_noise(rng, (size, size), max(1.0, _RL_FINE_NOISE_SIGMA * r_typ), fast=True)
    best = np.ones((size, size), np.float32)
    owner = np.zeros((size, size), np.int32)
    to_bin = np.float32(_RL_ANGLE_BINS / (2 * np.pi))
    for i in range(len(cells)):
        table = _outline_table(cells, i)
        amp = np.array(_RL_NOISE, np.float32) * (_RL_MITOTIC_NOISE if cells.mitotic[i] else 1.0)
        extent = float(table.max()) * cells.elong[i] * (1 + 2 * amp.sum()) + 2
        box = bbox(cells.cy[i], cells.cx[i], extent, size)
        if box is None:
            continue
        u, v = _cell_frame(cells, i, box)
        us, vs = u / np.float32(cells.elong[i]), v * np.float32(cells.elong[i])
        index = ((np.arctan2(vs, us) + np.float32(np.pi)) * to_bin).astype(np.intp) % _RL_ANGLE_BINS
        rho = np.hypot(us, vs) / table[index]
        rho += amp[0] * (
            np.float32(np.cos(cells.mix[i])) * noise_a[box] + np.float32(np.sin(cells.mix[i])) * noise_b[box]
        )
        rho += amp[1] * fine[box]
        rho = np.minimum(rho, np.float32(_NUCLEUS_CLAIM) * _nucleus_nu(cells, i, box, noise_a, noise_b))
        _claim(best, owner, box, rho, i + 1)
    return owner, (noise_a, noise_b)


def _draw_nuclei(size: int, cells: Cells, owner: np.ndarray, noise: tuple) -> np.ndarray:
    """Nucleus labels: each cell's nucleus ellipse, within the cell, largest piece kept."""
    nuclei = np.zeros_like(owner)
    for i in range(len(cells)):
        extent = max(cells.na[i], cells.nb[i]) * 1.15 + 2
        box = bbox(cells.ny[i], cells.nx[i], extent, size)
        if box is None:
            continue
        inside = (_nucleus_nu(cells, i, box, *noise) < 1) & (owner[box] == i + 1)
        nuclei[box] = np.where(inside, i + 1, nuclei[box])
    return largest_component_per_label(nuclei)


def build_geometry(
    rng: np.random.Generator, size: int, n_mitotic: int, style: str
) -> tuple[np.ndarray, np.ndarray, Cells]:
    """Place and tessellate the cells of one field, drop those with too little left in it.

    Parameters
    ----------
    rng : numpy.random.Generator
    size : int
        Field height and width, px.
    n_mitotic : int
        Mitotic cells to place (round, inside the field, ids 1..n_mitotic before renumbering).
    style : {"real-like", "compact"}

    Returns
    -------
    cell_mask, nuclei_mask : ndarray, shape (size, size), int32
        Cells 1..N; nucleus k inside cell k.
    cells : Cells
        Row k = cell k; row 0 a background dummy.
    """
    scale = size / REFERENCE_SIZE_PX
    if style == "compact":
        cells = _place_compact(rng, size, scale, n_mitotic)
        owner, noise = _tessellate_compact(rng, size, cells)
    else:
        cells = _place_real(rng, size, scale, n_mitotic)
        owner, noise = _tessellate_real(rng, size, cells)
    owner = largest_component_per_label(owner)
    nuclei = _draw_nuclei(size, cells, owner, noise)
    n = len(cells)
    cell_area = np.bincount(owner.ravel(), minlength=n + 1)[1:]
    nuc_area = np.bincount(nuclei.ravel(), minlength=n + 1)[1:]
    keep = (nuc_area >= _MIN_VISIBLE_NUCLEUS_FRACTION * np.pi * cells.na * cells.nb) & (
        cell_area >= _MIN_CELL_AREA_FRACTION * np.pi * cells.r**2
    )
    new_id = np.zeros(n + 1, np.int32)
    new_id[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    kept = cells.take(np.concatenate(([0], np.flatnonzero(keep))))  # row 0: a dummy for background
    kept.mitotic[0] = False
    return new_id[owner], new_id[nuclei], kept
