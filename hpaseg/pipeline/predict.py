"""The one predict loop: any predictor over a folder of images -> submission rows, and the
cells and labels saved for inspection.

A predictor (:class:`Predictor`) takes a batch of ``(H, W, 4)`` uint8 RGBY images (and
their cell masks, when it labels given cells) and returns, per image, a label image at
the original resolution and each cell's (class, confidence) pairs:
:class:`hpaseg.detection.MaskRCNNPredictor`, :class:`hpaseg.detection.detectron2.Detectron2Predictor`,
:class:`hpaseg.classification.CellClassifierPredictor`, and the hybrid
:class:`RescoredPredictor` (Mask R-CNN finds the cells, the cell classifier labels them).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from .. import io
from ..classes import CHANNEL_NAMES
from ..detection import MaskRCNNPredictor, PostprocessConfig
from ..detection.detectron2 import Detectron2Predictor
from ..errors import InputError
from ..runtime.dist import select_shard
from ..submission import (
    SubmissionRow,
    submission_row,
    write_cell_labels,
    write_submission,
)

__all__ = [
    "Predictor",
    "CellScores",
    "CELLS_FILE",
    "ENGINES",
    "RescoredPredictor",
    "open_maskrcnn",
    "check_images",
    "predict_folder",
    "write_predictions",
]

#: The per-cell label table that ``save_masks`` writes beside the masks.
CELLS_FILE = "cells.csv"
#: Per-cell (class, confidence) pairs of one image.
CellScores = dict[int, list[tuple[int, float]]]


class Predictor(Protocol):
    """What :func:`predict_folder` runs."""

    #: True when the predictor labels given cells (it needs each image's cell mask).
    needs_cells: bool

    def __call__(
        self, images: Sequence[np.ndarray], cells: Sequence[np.ndarray | None] | None = None
    ) -> list[tuple[np.ndarray, CellScores]]:
        """Per image: a label image at the image's size (cells 1..N) and each cell's (class, confidence) pairs."""
        ...


class RescoredPredictor:
    """The hybrid route: ``finder`` (a Mask R-CNN predictor) finds the cells, ``labeller``
    (a predictor of given cells, e.g. :class:`hpaseg.classification.CellClassifierPredictor`)
    scores them; the finder's own labels are dropped.

    Parameters
    ----------
    finder : Predictor
        Needs no cells.
    labeller : Predictor
        Labels given cells.
    """

    needs_cells = False

    def __init__(self, finder: Predictor, labeller: Predictor) -> None:
        if finder.needs_cells or not labeller.needs_cells:
            raise InputError(
                "the hybrid route needs a cell finder (Mask R-CNN weights) and a cell labeller (a cell classifier run)",
                param=("weights", "classifier"),
            )
        self.finder = finder
        self.labeller = labeller

    def __call__(
        self, images: Sequence[np.ndarray], cells: Sequence[np.ndarray | None] | None = None
    ) -> list[tuple[np.ndarray, CellScores]]:
        """Per image: the finder's label image and the labeller's scores of its cells."""
        found = [label_image for label_image, _ in self.finder(images)]
        return self.labeller(images, found)


#: Mask R-CNN engines.
ENGINES: tuple[str, ...] = ("torchvision", "detectron2")


def open_maskrcnn(
    weights: str | os.PathLike,
    *,
    engine: str = "torchvision",
    device: str = "cpu",
    config_file: str | os.PathLike | None = None,
    postprocess: PostprocessConfig = PostprocessConfig(),
) -> Predictor:
    """The Mask R-CNN predictor of a run of ``hpaseg train`` (``RUN/model_final.pth``), either engine.

    Parameters
    ----------
    weights : path
    engine : {"torchvision", "detectron2"}
    device : str
    config_file : path, optional
        detectron2: the run's config (default ``config.yaml`` next to the weights).
    postprocess : PostprocessConfig
    """
    if engine not in ENGINES:
        raise InputError(f"engine {engine!r}: expected torchvision or detectron2", param="engine")
    if engine == "detectron2":
        return Detectron2Predictor.from_checkpoint(weights, config_file=config_file, device=device, config=postprocess)
    return MaskRCNNPredictor.from_checkpoint(weights, device=device, config=postprocess)


def check_images(
    data_dir: str | os.PathLike,
    ids: Sequence[str] | None,
    masks_dir: str | os.PathLike | None = None,
    *,
    shard: tuple[int, int] | None = None,
) -> list[str]:
    """The image IDs to predict, every channel file (and cell mask) checked before a model runs.

    Parameters
    ----------
    data_dir : path
    ids : sequence of str, optional
        Only these images (default: all in ``data_dir``, sorted).
    masks_dir : path, optional
        Check that each image has its ``{ID}_cellmask.png`` here.
    shard : (int, int), optional
        ``(I, N)``: only the images of task I of N (:func:`hpaseg.runtime.dist.select_shard`;
        the IDs sorted, then every N-th from I), e.g. for the array tasks of one predict job.

    Raises
    ------
    InputError
        No images, an ID without all four channels, or (with ``masks_dir``) without a cell mask.
    """
    ids = list(ids) if ids else io.list_image_ids(data_dir)
    if not ids:
        raise InputError(f"data {data_dir}: no images ({{ID}}_green.png files) found", param="data")
    if shard is not None:
        n_all, ids = len(ids), select_shard(ids, *shard)
        if not ids:
            raise InputError(
                f"shard {shard[0]}/{shard[1]}: none of the {n_all} images of {data_dir} falls in this shard; use at most {n_all} shards",
                param="shard",
            )
    for image_id in ids:
        for channel in CHANNEL_NAMES:
            io.find_channel_file(data_dir, image_id, channel)
    if masks_dir is not None:
        if not Path(masks_dir).is_dir():
            raise InputError(f"masks {masks_dir}: no such folder", param="masks")
        for image_id in ids:
            if not io.mask_paths(masks_dir, image_id)[0].is_file():
                raise InputError(
                    f"masks {masks_dir}: no {image_id}_cellmask.png for image {image_id!r} of {data_dir}; run 'hpaseg segment' on the test images first",
                    param="masks",
                )
    return ids


def _read_cells(masks_dir: Path, image_id: str, shape: tuple[int, int], data_dir: str | os.PathLike) -> np.ndarray:
    mask_path = io.mask_paths(masks_dir, image_id)[0]
    label_image = io.read_mask(mask_path)
    if label_image.shape != shape:
        raise InputError(
            f"{mask_path}: mask is {label_image.shape[0]}x{label_image.shape[1]} px but image {image_id!r} in {data_dir} is {shape[0]}x{shape[1]}; masks must be at the image's original resolution"
        )
    return label_image


def predict_folder(
    predictor: Predictor,
    data_dir: str | os.PathLike,
    ids: Sequence[str] | None = None,
    *,
    masks_dir: str | os.PathLike | None = None,
    batch_size: int = 2,
    workers: int = 4,
    progress: bool = True,
) -> Iterator[tuple[str, np.ndarray, CellScores]]:
    """Run ``predictor`` over the images of ``data_dir``, ``batch_size`` at a time.

    Parameters
    ----------
    predictor : Predictor
    data_dir : path
        Folder of ``{ID}_{red,green,blue,yellow}.png``.
    ids : sequence of str, optional
        Only these images (default: all), checked first (:func:`check_images`).
    masks_dir : path, optional
        ``{ID}_cellmask.png`` of the images; needed when ``predictor.needs_cells``.
    batch_size, workers : int
        Images per predictor call; image-reading threads.
    progress : bool

    Yields
    ------
    (ID, label image, cell scores)
        In image order.
    """
    if batch_size < 1:
        raise InputError(f"batch_size {batch_size}: expected a positive integer", param="batch_size")
    if predictor.needs_cells and masks_dir is None:
        raise InputError(
            "masks: this predictor labels given cells and needs the folder of {ID}_cellmask.png of the images",
            param="masks",
        )
    ids = check_images(data_dir, ids, masks_dir if predictor.needs_cells else None)
    batch: list[tuple[str, np.ndarray]] = []

    def flush() -> Iterator[tuple[str, np.ndarray, CellScores]]:
        cells = (
            [_read_cells(Path(masks_dir), i, image.shape[:2], data_dir) for i, image in batch]
            if predictor.needs_cells
            else None
        )
        for (image_id, _), (label_image, scores) in zip(batch, predictor([image for _, image in batch], cells)):
            yield image_id, label_image, scores
        batch.clear()

    for image_id, image in tqdm(
        io.iter_rgby(data_dir, ids, workers=workers),
        total=len(ids),
        desc="predict",
        unit="img",
        disable=not progress,
        file=sys.stderr,
    ):
        batch.append((image_id, image))
        if len(batch) == batch_size:
            yield from flush()
    if batch:
        yield from flush()


def write_predictions(
    predictions: Iterator[tuple[str, np.ndarray, CellScores]] | Sequence[tuple[str, np.ndarray, CellScores]],
    out_csv: str | os.PathLike,
    *,
    save_masks: str | os.PathLike | None = None,
    cells_name: str = CELLS_FILE,
) -> list[SubmissionRow]:
    """Write the submission of ``predictions`` and, with ``save_masks``, each image's cell mask
    (``{ID}_cellmask.png``) and the table ``cells_name`` (``ID,cell,label,confidence``). Every
    file is written after all predictions are made (so an error leaves nothing half-written),
    the submission last: its presence marks a finished run.

    Returns
    -------
    list of SubmissionRow
    """
    rows, saved = [], []
    for image_id, label_image, scores in predictions:
        rows.append(submission_row(image_id, label_image, scores))
        if save_masks is not None:
            saved.append((image_id, label_image, scores))
    if save_masks is not None:
        out = Path(save_masks)
        for image_id, label_image, _ in saved:
            io.write_mask_png(out / f"{image_id}_cellmask.png", label_image)
        write_cell_labels(out / cells_name, ((image_id, scores) for image_id, _, scores in saved))
    write_submission(out_csv, rows)
    return rows
