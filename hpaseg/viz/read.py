"""Reading what the figures show: images, predicted cells and their labels, weak labels and
truth, checked against each other, as panels to draw (backs ``hpaseg visualize`` and the
evaluation notebooks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import io
from ..classes import CLASS_NAMES
from ..errors import InputError
from ..submission import SubmissionRow, read_cell_labels, read_submission
from .cells import (
    CellClasses,
    CellPanel,
    cells_from_submission_row,
    group_cell_labels,
    weak_cell_classes,
)

__all__ = ["read_image_panels"]


def _check_shape(
    shape: tuple[int, int], image_shape: tuple[int, int], what: str, image_id: str, data_dir: Path
) -> None:
    if tuple(shape) != tuple(image_shape):
        raise InputError(
            f"{what}: mask is {shape[0]}x{shape[1]} px but image {image_id!r} in {data_dir} is "
            f"{image_shape[0]}x{image_shape[1]}; masks must be at the image's original resolution"
        )


def _weak_mask_dir(weak_labels: Path) -> Path:
    """The masks folder recorded by ``hpaseg propagate`` next to its ``cells.csv``."""

    summary = weak_labels.parent / "propagate.json"
    if summary.is_file():
        masks = io.read_json(summary).get("options", {}).get("masks")
        if masks:
            return Path(masks)
    raise InputError(
        f"weak_labels {weak_labels}: no propagate.json with the masks folder next to it; give the segmentation masks as weak_masks",
        param=("weak_labels", "weak_masks"),
    )


def _describe_labels(cells: CellClasses) -> str:
    classes = sorted({k for pairs in cells.values() for k, _ in pairs})
    return ", ".join(CLASS_NAMES[k] for k in classes) if classes else "none"


def read_image_panels(
    data_dir: str | Path,
    image_ids: Sequence[str],
    *,
    masks: str | Path | None = None,
    cells_csv: str | Path | None = None,
    submission: str | Path | None = None,
    weak_labels: str | Path | None = None,
    weak_masks: str | Path | None = None,
    truth: str | Path | None = None,
    require_all: bool = True,
) -> dict[str, tuple[np.ndarray, list[CellPanel]]]:
    """Read images, predictions, weak labels and truth, checked, as panels to draw.

    This function reads files (it backs ``hpaseg visualize`` and the notebooks); the
    drawing is :func:`plot_cell_panels`.

    Parameters
    ----------
    data_dir : path
        Folder of ``{ID}_{red,green,blue,yellow}.png``.
    image_ids : sequence of str
    masks : path, optional
        Predicted ``{ID}_cellmask.png`` (``hpaseg predict --save-masks``), with their
        labels in ``cells_csv`` (default ``masks/cells.csv``).
    submission : path, optional
        A submission CSV instead of ``masks`` (each distinct mask string is a cell).
    weak_labels : path, optional
        ``DATASET/cells.csv`` of ``hpaseg propagate`` (or ``cell_labels.csv`` of
        ``hpaseg synth``), drawn on the cell masks in ``weak_masks`` (default: the
        masks folder recorded in ``DATASET/propagate.json``).
    truth : path, optional
        True cells in the submission format (``hpaseg synth``'s ``truth.csv``).
    require_all : bool
        When true, an image missing from ``weak_labels`` or ``truth`` is an error;
        when false its panel is left out.

    Returns
    -------
    dict
        ``{ID: (image (H, W, 4) uint8, panels)}`` in the order of ``image_ids``.

    Raises
    ------
    InputError
        An unknown ID, a missing file, or a mask whose size differs from its image's;
        nothing is returned half-read.
    """

    data_dir = Path(data_dir)
    if not image_ids:
        raise InputError("ids: no image IDs given; expected at least one ID", param="ids")
    if masks is not None and submission is not None:
        raise InputError(
            "give the prediction either as masks or as a submission, not both", param=("masks", "submission")
        )
    available = set(io.list_image_ids(data_dir))
    unknown = [i for i in image_ids if i not in available]
    if unknown:
        raise InputError(
            f"image {unknown[0]!r} is not in data {data_dir} ({len(available)} images there); expected IDs of {{ID}}_green.png files",
            param="data",
        )
    sources = _Sources(data_dir, masks, cells_csv, submission, weak_labels, weak_masks, truth, require_all)
    out: dict[str, tuple[np.ndarray, list[CellPanel]]] = {}
    for image_id in image_ids:
        image = io.read_rgby(data_dir, image_id)
        panels = [
            sources.prediction(image_id, image.shape[:2]),
            sources.weak(image_id, image.shape[:2]),
            sources.truth_panel(image_id, image.shape[:2]),
        ]
        out[image_id] = (image, [p for p in panels if p is not None])
    return out


class _Sources:
    """What the panels of every image are read from, each table read once."""

    def __init__(
        self, data_dir: Path, masks, cells_csv, submission, weak_labels, weak_masks, truth, require_all: bool
    ) -> None:
        self.data_dir, self.require_all = data_dir, require_all
        self.masks = Path(masks) if masks is not None else None
        self.cells_csv = (
            (Path(cells_csv) if cells_csv is not None else self.masks / "cells.csv") if self.masks is not None else None
        )
        self.pred_cells: dict[str, CellClasses] = (
            group_cell_labels(read_cell_labels(self.cells_csv)) if self.cells_csv is not None else {}
        )
        self.submission = submission
        self.sub_rows: dict[str, SubmissionRow] = (
            {r.image_id: r for r in read_submission(submission)} if submission is not None else {}
        )
        self.weak_labels = Path(weak_labels) if weak_labels is not None else None
        self.weak_cells: dict[str, CellClasses] = {}
        if self.weak_labels is not None:
            self.weak_cells = weak_cell_classes(
                io.read_table(self.weak_labels, ("ID", "cell", "Label")), source=str(self.weak_labels)
            )
            self.weak_masks = Path(weak_masks) if weak_masks is not None else _weak_mask_dir(self.weak_labels)
        self.truth = truth
        self.truth_rows: dict[str, SubmissionRow] = (
            {r.image_id: r for r in read_submission(truth)} if truth is not None else {}
        )

    def prediction(self, image_id: str, shape: tuple[int, int]) -> CellPanel | None:
        if self.masks is not None:
            path = io.mask_paths(self.masks, image_id)[0]
            labels = io.read_mask(path)
            _check_shape(labels.shape, shape, str(path), image_id, self.data_dir)
            cells = self.pred_cells.get(image_id, {})
            present = set(np.unique(labels).tolist())
            stray = sorted(c for c in cells if c not in present)
            if stray:
                raise InputError(
                    f"{self.cells_csv}: cell {stray[0]} of image {image_id!r} is not in {path}; the table and the masks must come from the same run"
                )
            return CellPanel(f"Prediction: {len(present - {0})} cells (top class, confidence)", labels, cells, "top")
        if self.submission is not None:
            row = self.sub_rows.get(image_id)
            if row is None:
                raise InputError(
                    f"submission {self.submission}: no row for image {image_id!r}; expected one row per image",
                    param="submission",
                )
            _check_shape(
                (row.height, row.width), shape, f"{self.submission}, image {image_id!r}", image_id, self.data_dir
            )
            labels, cells = cells_from_submission_row(row)
            return CellPanel(f"Prediction: {len(cells)} cells (top class, confidence)", labels, cells, "top")
        return None

    def weak(self, image_id: str, shape: tuple[int, int]) -> CellPanel | None:
        if self.weak_labels is None:
            return None
        if image_id not in self.weak_cells:
            if self.require_all:
                raise InputError(
                    f"weak_labels {self.weak_labels}: no cells of image {image_id!r}; weak labels exist only for images of the training CSV given to hpaseg propagate",
                    param="weak_labels",
                )
            return None
        path = io.mask_paths(self.weak_masks, image_id)[0]
        labels = io.read_mask(path)
        _check_shape(labels.shape, shape, str(path), image_id, self.data_dir)
        cells = self.weak_cells[image_id]
        return CellPanel(f"Segmentation + weak labels: {_describe_labels(cells)}", labels, cells, "none")

    def truth_panel(self, image_id: str, shape: tuple[int, int]) -> CellPanel | None:
        if self.truth is None:
            return None
        row = self.truth_rows.get(image_id)
        if row is None:
            if self.require_all:
                raise InputError(
                    f"truth {self.truth}: no row for image {image_id!r}; expected the true cells of every image asked for",
                    param="truth",
                )
            return None
        _check_shape((row.height, row.width), shape, f"{self.truth}, image {image_id!r}", image_id, self.data_dir)
        labels, cells = cells_from_submission_row(row)
        return CellPanel(f"Truth: {len(cells)} cells (all classes)", labels, cells, "all")
