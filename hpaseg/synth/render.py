"""The four channels of a synthetic field from its scene and cell labels.

* blue: nuclei, textured, darker nucleoli, uneven brightness (some nuclei dim);
* red: microtubules over the cytoplasm (a spindle in mitotic cells);
* yellow: endoplasmic reticulum, a reticular mesh weighted towards the nucleus;
* green: the protein, each cell's classes drawn with :data:`~hpaseg.synth.patterns.PATTERNS`.

The real-like style then images them the way HPA's fields look: every cell's stain varies
(log-normal gain per cell and channel), an out-of-focus haze spreads around the cells, the
illumination varies smoothly over the field, and the camera adds shot and read noise above
a black level that is clipped away, so the background is mostly exactly 0 as in HPA's
8-bit fields. The compact style keeps the earlier flat grey background and uniform noise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..classes import NEGATIVE, Channel
from .arrays import blur_large, smooth_noise
from .patterns import CLASS_GAIN, PATTERNS
from .scene import Scene

__all__ = ["render"]

_FINAL_BLUR_PX_AT_2048 = 2.5  # optical blur of every channel (compact style)
_RL_FINAL_BLUR_PX_AT_2048 = 1.5  # real-like style: HPA's confocal fields are sharper
_MIN_BLUR_PX = 0.5
_FULL_SCALE = 255.0  # 8-bit
_DIM_NUCLEUS_PROBABILITY = 0.2  # some nuclei much dimmer ...
_DIM_NUCLEUS_GAIN = (0.25, 0.45)  # ... by this factor
_MITOTIC_BLUE_GAIN = 1.25  # condensed chromatin is brighter
_CHROMATIN_PX_AT_2048 = 6.0  # correlation length of the nuclei's chromatin texture
_MIN_TEXTURE_PX = 0.8
_NUCLEOLUS_DARKENING = 0.45  # nucleoli are this much darker in the blue channel
_MITOTIC_RED_MIX = (0.15, 0.85)  # red of a mitotic cell: diffuse + spindle
# ---- compact style
_BACKGROUND_LEVEL = (0.012, 0.03)  # channel offset, fraction of full scale
_NOISE_LEVEL = 0.012  # standard deviation of the camera noise, fraction of full scale
# ---- real-like style
#: Spread (log-normal sigma) of each cell's stain, per channel R, G, B, Y (HPA: the per-cell
#: mean intensity varies by a coefficient of variation of about 0.2-0.4 per channel).
_RL_CELL_GAIN_LOG_SD = (0.08, 0.15, 0.25, 0.3)
_RL_DIM_NUCLEUS_PROBABILITY = 0.12  # some nuclei dim ...
_RL_DIM_NUCLEUS_GAIN = (0.3, 0.55)  # ... by this factor (on top of the log-normal spread)
_RL_ER_GRANULE_PX_AT_2048 = 3.0  # fine granular texture of the ER stain ...
_RL_ER_GRANULARITY = 0.5  # ... and its relative strength
_RL_EXPOSURE_LOG_SD = 0.2
_RL_MIN_GREEN_PEAK = (
    0.02  # a green peak below this is no stain (Negative): no gain applied  # per field and channel: exposure varies
)
#: Real-like mix of the reference channels (peak 1 before gains): diffuse cytoplasm, fibres
#: or ER mesh, and the faint stain over the nucleus (HPA: red and yellow over the nucleus are
#: about 0.1-0.6 of the cytoplasm's); nuclei: chromatin level and texture amplitude.
_RL_RED_MIX = (0.08, 0.9, 0.02)
_RL_YELLOW_MIX = (0.05, 1.1, 0.02)
_RL_CHROMATIN = (0.8, 0.2)
_RL_CHROMATIN_PX_AT_2048 = 3.0  # real nuclei look finely grained
_RL_CHANNEL_LEVEL = (0.8, 0.42, 0.42, 1.0)  # full-scale level of a gain-1 structure, per channel R, G, B, Y
#: HPA sets the protein channel's gain per image to its stain: the brightest in-focus green
#: (:data:`_RL_GREEN_PEAK_PERCENTILE` of the cell pixels) is brought to this fraction of full
#: scale, drawn per image, whatever the classes; a Negative image stays dark.
_RL_GREEN_PEAK = (0.35, 0.65)
_RL_GREEN_PEAK_PERCENTILE = 99.5
_RL_GREEN_SAMPLE_STEP = 4  # the percentile is taken over every 4th row and column
#: Out-of-focus light around the cells: a near and a far haze, of these widths (px at 2048) ...
_RL_HAZE_SIGMA_PX_AT_2048 = (8.0, 40.0)
_RL_HAZE_WEIGHT = ((0.05, 0.12), (0.03, 0.10))  # ... and fractions of the in-focus signal
_RL_ILLUMINATION_SIGMA = 0.3  # uneven illumination: correlation length, fraction of the field ...
_RL_ILLUMINATION_AMPLITUDE = (0.05, 0.15)  # ... and relative standard deviation
_RL_VIGNETTING = (0.0, 0.2)  # the field's corners are dimmer than its centre by up to this fraction
#: A faint diffuse background (out-of-focus cells and debris), peak 8-bit level drawn per field
#: and channel R, G, B, Y, varying over this fraction of the field.
_RL_BACKGROUND_GLOW = ((1.0, 8.0), (0.0, 1.5), (0.0, 0.0), (0.5, 5.0))
_RL_BACKGROUND_GLOW_SIGMA = 0.08
_RL_READ_NOISE = (0.8, 1.6)  # camera read noise, 8-bit units
_RL_SHOT_NOISE = (0.8, 2.0)  # shot-noise variance per 8-bit unit of signal
#: Black level subtracted (then clipped at 0), in read-noise sigmas, per channel R, G, B, Y:
#: HPA's backgrounds are 85-100% exactly 0, the blue channel's almost all.
_RL_BLACK_LEVEL = ((1.0, 2.2), (1.5, 2.6), (3.0, 3.5), (1.0, 2.2))


def _green(s: Scene, cell_labels: list[tuple[int, ...]], expression: np.ndarray | None = None) -> np.ndarray:
    """The protein channel: the patterns of each class present, per-cell amplitude ``U(0.55, 1)``
    times ``expression`` (per cell id) when given."""
    n = s.n + 1
    green = np.zeros(s.shape, np.float32)
    present = sorted({lab for labs in cell_labels for lab in labs if lab != NEGATIVE})
    for lab in present:
        has = np.zeros(n, bool)
        has[1:] = [lab in labs for labs in cell_labels]
        amp = s.rng.uniform(0.55, 1.0, n) * has
        if expression is not None:
            amp = amp * expression
        green += PATTERNS[lab](s, has).astype(np.float32) * s.lut(amp) * np.float32(CLASS_GAIN[lab])
    return green


def _finish_compact(rng: np.random.Generator, plane: np.ndarray, blur: float) -> np.ndarray:
    """Background, slight blur and camera noise; float in [0, 1] -> uint8."""
    plane = ndimage.gaussian_filter(plane.astype(np.float32), blur)
    plane = (
        plane
        + np.float32(rng.uniform(*_BACKGROUND_LEVEL))
        + rng.standard_normal(plane.shape, dtype=np.float32) * np.float32(_NOISE_LEVEL)
    )
    return np.rint(np.clip(plane, 0, 1) * 255).astype(np.uint8)


def _render_compact(s: Scene, cell_labels: list[tuple[int, ...]]) -> np.ndarray:
    """Compact style: the four channels, ``(H, W, 4)`` uint8 (the earlier look, unchanged)."""
    rng, c = s.rng, s.cells
    n = s.n + 1
    mitotic_px = c.mitotic[s.cid] & s.in_cell

    dim = rng.random(n) < _DIM_NUCLEUS_PROBABILITY
    gain_b = np.where(dim, rng.uniform(*_DIM_NUCLEUS_GAIN, n), rng.uniform(0.6, 1.0, n)) * np.where(
        c.mitotic, _MITOTIC_BLUE_GAIN, 1.0
    )
    chromatin = 0.78 + 0.22 * s.noise(s.px(6, 0.8))
    blue = s.lut(gain_b) * s.in_nuc * chromatin * (1 - 0.45 * s.nucleoli)

    gain_r = rng.uniform(0.45, 1.0, n)
    red = s.lut(gain_r) * (
        s.cyto * (0.18 + 0.7 * s.microtubules) * s.thickness + 0.06 * s.in_nuc + mitotic_px * (0.15 + 0.85 * s.spindle)
    )

    gain_y = rng.uniform(0.45, 1.0, n)
    yellow = s.lut(gain_y) * ((0.1 * s.cyto + 0.75 * s.er_mesh) * s.thickness + 0.04 * s.in_nuc)

    green = _green(s, cell_labels)
    green *= np.float32(rng.uniform(0.8, 1.15))

    blur = s.px(_FINAL_BLUR_PX_AT_2048, _MIN_BLUR_PX)
    planes = {Channel.RED: red, Channel.GREEN: green, Channel.BLUE: blue, Channel.YELLOW: yellow}
    return np.stack([_finish_compact(rng, planes[ch], blur) for ch in Channel], axis=-1)


def _cell_gains(rng: np.random.Generator, n: int) -> np.ndarray:
    """(4, n) per-cell stain gains, channels R, G, B, Y: log-normal, mean 1; some nuclei dim."""
    sd = np.asarray(_RL_CELL_GAIN_LOG_SD)[:, None]
    gains = np.exp(rng.standard_normal((4, n)) * sd - 0.5 * sd**2)
    dim = rng.random(n) < _RL_DIM_NUCLEUS_PROBABILITY
    gains[Channel.BLUE] *= np.where(dim, rng.uniform(*_RL_DIM_NUCLEUS_GAIN, n), 1.0)
    return gains.astype(np.float32)


def _planes_real(s: Scene, cell_labels: list[tuple[int, ...]]) -> dict[Channel, np.ndarray]:
    """Real-like style: the four in-focus planes, gain-1 structures about 1."""
    c = s.cells
    gains = _cell_gains(s.rng, s.n + 1)
    mitotic_px = c.mitotic[s.cid] & s.in_cell
    base, texture = _RL_CHROMATIN
    chromatin = base + texture * s.noise(s.px(_RL_CHROMATIN_PX_AT_2048, _MIN_TEXTURE_PX))
    blue = (
        s.lut(gains[Channel.BLUE] * np.where(c.mitotic, _MITOTIC_BLUE_GAIN, 1.0))
        * s.in_nuc
        * chromatin
        * (1 - _NUCLEOLUS_DARKENING * s.nucleoli)
    )
    base, fibres, over_nucleus = _RL_RED_MIX
    spindle_base, spindle = _MITOTIC_RED_MIX
    red = s.lut(gains[Channel.RED]) * (
        s.cyto * (base + fibres * s.microtubules) * s.thickness
        + over_nucleus * s.in_nuc
        + mitotic_px * (spindle_base + spindle * s.spindle)
    )
    granules = np.clip(1 + _RL_ER_GRANULARITY * s.noise(s.px(_RL_ER_GRANULE_PX_AT_2048, _MIN_BLUR_PX)), 0, None)
    base, mesh, over_nucleus = _RL_YELLOW_MIX
    yellow = s.lut(gains[Channel.YELLOW]) * (
        (base * s.cyto + mesh * s.er_mesh * granules) * s.thickness + over_nucleus * s.in_nuc
    )
    green = _green(s, cell_labels, gains[Channel.GREEN])
    return {Channel.RED: red, Channel.GREEN: green, Channel.BLUE: blue, Channel.YELLOW: yellow}


def _green_level(s: Scene, green: np.ndarray) -> float:
    """Real-like style: the green channel's level (see :data:`_RL_GREEN_PEAK`)."""
    step = _RL_GREEN_SAMPLE_STEP
    inside = green[::step, ::step][s.in_cell[::step, ::step]]
    peak = float(np.percentile(inside, _RL_GREEN_PEAK_PERCENTILE)) if inside.size else 0.0
    target = s.rng.uniform(*_RL_GREEN_PEAK)
    return target / peak if peak > _RL_MIN_GREEN_PEAK else _RL_CHANNEL_LEVEL[Channel.GREEN]


def _camera(
    rng: np.random.Generator, plane: np.ndarray, level: float, channel: Channel, glow: np.ndarray
) -> np.ndarray:
    """Real-like style: in-focus plane (blurred, lit) times ``level`` (full scale = 1) plus ``glow``
    (0-1 pattern of the faint diffuse background) -> 8-bit camera image."""
    value = plane * np.float32(_FULL_SCALE * level)
    value = value + np.float32(rng.uniform(*_RL_BACKGROUND_GLOW[channel])) * glow
    read = np.float32(rng.uniform(*_RL_READ_NOISE))
    shot = np.float32(rng.uniform(*_RL_SHOT_NOISE))
    black = read * np.float32(rng.uniform(*_RL_BLACK_LEVEL[channel]))
    sd = np.sqrt(shot * np.maximum(value, 0) + read**2)
    value = value + sd * rng.standard_normal(value.shape, dtype=np.float32) - black
    return np.rint(np.clip(value, 0, _FULL_SCALE)).astype(np.uint8)


def _illumination(rng: np.random.Generator, size: int) -> np.ndarray:
    """Real-like style: relative illumination over the field, about 1: a smooth random
    variation times a vignetting that dims the corners."""
    light = 1 + rng.uniform(*_RL_ILLUMINATION_AMPLITUDE) * smooth_noise(
        rng, (size, size), _RL_ILLUMINATION_SIGMA * size, fast=True
    )
    centred = np.linspace(-1, 1, size, dtype=np.float32) ** 2
    vignette = 1 - np.float32(rng.uniform(*_RL_VIGNETTING) / 2) * (centred[:, None] + centred[None, :])
    return light * vignette


def _render_real(s: Scene, cell_labels: list[tuple[int, ...]]) -> np.ndarray:
    """Real-like style: the four channels, ``(H, W, 4)`` uint8."""
    planes = _planes_real(s, cell_labels)
    rng = s.rng
    blur = s.px(_RL_FINAL_BLUR_PX_AT_2048, _MIN_BLUR_PX)
    haze_sigma = tuple(s.px(sigma, 1.0) for sigma in _RL_HAZE_SIGMA_PX_AT_2048)
    light = _illumination(rng, s.size)
    glow = np.clip(smooth_noise(rng, s.shape, _RL_BACKGROUND_GLOW_SIGMA * s.size, fast=True), 0, None)
    out = []
    levels = [_RL_CHANNEL_LEVEL[ch] * rng.lognormal(0.0, _RL_EXPOSURE_LOG_SD) for ch in Channel]
    levels[Channel.GREEN] = _green_level(s, planes[Channel.GREEN])
    for ch in Channel:
        plane = ndimage.gaussian_filter(planes[ch], blur)
        haze = blur_large(plane, haze_sigma, tuple(rng.uniform(*w) for w in _RL_HAZE_WEIGHT))
        plane = (plane + haze) * light
        out.append(_camera(rng, plane, levels[ch], ch, glow))
    return np.stack(out, axis=-1)


def render(scene: Scene, cell_labels: list[tuple[int, ...]]) -> np.ndarray:
    """The four channels of ``scene``, ``(H, W, 4)`` uint8 RGBY, in the scene's style.

    Parameters
    ----------
    scene : Scene
    cell_labels : list of tuple of int
        Labels of cells 1..N (index 0 = cell 1).
    """
    if scene.style == "compact":
        return _render_compact(scene, cell_labels)
    return _render_real(scene, cell_labels)
