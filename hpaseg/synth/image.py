"""One synthetic field: :func:`synth_image` draws an HPA-like field of view with its true
cell and nucleus masks and per-cell labels, in one of :data:`STYLES`; :func:`image_rng` is
the random stream of image ``i`` of a split of a dataset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..classes import image_labels_of_cells
from ..errors import InputError
from .labels import MITOTIC_SPINDLE, assign_cell_labels, check_labels, draw_image_labels
from .layout import build_geometry
from .render import render
from .scene import Scene

__all__ = [
    "MIN_SIZE_PX",
    "STYLES",
    "DEFAULT_STYLE",
    "SPLITS",
    "SynthImage",
    "synth_image",
    "image_id",
    "image_rng",
    "check_style",
]

#: Smallest ``size`` accepted: below it cells would be a few pixels across.
MIN_SIZE_PX = 128
#: Field styles: ``real-like`` (dense irregular colonies imaged like HPA's fields) and
#: ``compact`` (the earlier look: compact cells, flat grey background; unchanged byte for byte).
STYLES = ("real-like", "compact")
DEFAULT_STYLE = "real-like"
#: Dataset splits, in the order of their random streams.
SPLITS = ("train", "test")
_LAYOUT_TRIES = 10
_MITOTIC_CELLS = (1, 2)  # mitotic cells of an image labelled Mitotic spindle


@dataclass
class SynthImage:
    """One synthetic field of view and its truth.

    Attributes
    ----------
    image : ndarray, shape (H, W, 4), uint8
        RGBY channels (see :class:`hpaseg.classes.Channel`).
    cell_mask, nuclei_mask : ndarray, shape (H, W), int32
        0 = background, cells 1..N; nucleus k lies inside cell k.
    cell_labels : dict
        ``{cell id: sorted class ids}`` for cells 1..N; a cell without protein is ``(18,)``.
    """

    image: np.ndarray
    cell_mask: np.ndarray
    nuclei_mask: np.ndarray
    cell_labels: dict[int, tuple[int, ...]]

    @property
    def image_labels(self) -> tuple[int, ...]:
        """The image-level label of train.csv, as the Kaggle data writes it: the classes
        0-17 of its cells, Negative (18) only when no cell shows any
        (:func:`hpaseg.classes.image_labels_of_cells`)."""
        return image_labels_of_cells(self.cell_labels.values())


def check_style(style: str) -> str:
    """``style`` if it is one of :data:`STYLES`, else InputError."""
    if style not in STYLES:
        raise InputError(f"style {style!r}: expected one of {', '.join(STYLES)}", param="style")
    return style


def synth_image(
    rng: np.random.Generator,
    size: int,
    *,
    image_labels: Sequence[int] | None = None,
    vary_cells: bool | None = None,
    style: str = DEFAULT_STYLE,
) -> SynthImage:
    """Draw one synthetic HPA field of view with its true masks and cell labels (no disk I/O).

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness: the same generator state gives the same image.
    size : int
        Height and width in px, at least :data:`MIN_SIZE_PX`; cell sizes scale with ``size / 2048``.
    image_labels : sequence of int, optional
        Force the image's drawn labels (class ids 0-18) instead of :func:`draw_image_labels`.
        ``(18,)`` makes every cell Negative; 18 with other labels makes at least one cell
        Negative; 11 goes to the one or two mitotic cells only.
    vary_cells : bool, optional
        True: one label is missing from some cells; False: every interphase cell carries all
        labels (but 11); None (default): decided at random (about 40% of images).
    style : {"real-like", "compact"}
        The look of the field (see :data:`STYLES`); labels and patterns are the same.

    Returns
    -------
    SynthImage
        ``image`` (size, size, 4) uint8 RGBY; ``cell_mask`` and ``nuclei_mask`` (size, size)
        int32 with cells 1..N; ``cell_labels`` {cell: labels}. The image label is
        ``SynthImage.image_labels``: the classes 0-17 of the cells, Negative only when no
        cell has another (Kaggle convention); it may lack a forced label whose only cells
        fell outside the image (rare).

    Examples
    --------
    >>> img = synth_image(np.random.default_rng(1), 128, image_labels=[0])
    >>> img.image.shape, img.image.dtype, int(img.cell_mask.max()) == len(img.cell_labels)
    ((128, 128, 4), dtype('uint8'), True)
    >>> bool(np.all(img.cell_mask[img.nuclei_mask > 0] == img.nuclei_mask[img.nuclei_mask > 0]))
    True
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE_PX:
        raise InputError(f"size {size!r}: expected an integer of at least {MIN_SIZE_PX} px")
    size, style = int(size), check_style(style)
    labels = draw_image_labels(rng) if image_labels is None else check_labels(image_labels)
    n_mitotic = int(rng.integers(_MITOTIC_CELLS[0], _MITOTIC_CELLS[1] + 1)) if MITOTIC_SPINDLE in labels else 0
    for _ in range(_LAYOUT_TRIES):  # a layout without any cell is redrawn (never seen in practice)
        cid, nuc, cells = build_geometry(rng, size, n_mitotic, style)
        if len(cells) > 1:
            break
    else:
        raise RuntimeError(f"no cell survived {_LAYOUT_TRIES} layouts of a {size} px image")
    cell_labels = assign_cell_labels(rng, labels, cells.mitotic[1:], vary_cells)
    image = render(Scene(rng, cid, nuc, cells, style), cell_labels)
    return SynthImage(
        image=image,
        cell_mask=cid.astype(np.int32),
        nuclei_mask=nuc.astype(np.int32),
        cell_labels={k + 1: labs for k, labs in enumerate(cell_labels)},
    )


def image_id(split: str, index: int) -> str:
    """ID of image ``index`` of ``split`` (``"train"`` or ``"test"``).

    >>> image_id("test", 7)
    'synth_test_0007'
    """
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    return f"synth_{split}_{index:04d}"


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of one image: independent of the other images and of the counts.

    >>> a = image_rng(3, "test", 0).random(); b = image_rng(3, "test", 0).random()
    >>> a == b, a == image_rng(3, "train", 0).random()
    (True, False)
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split), index)))
