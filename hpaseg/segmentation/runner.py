"""Running a segmenter over a folder of images: resumable, sharded for job arrays,
in worker processes, with a progress bar."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import io
from ..classes import CHANNEL_NAMES, Channel
from ..errors import InputError
from ..runtime.dist import select_shard
from ..runtime.pool import spawn_pool
from .base import Segmenter

__all__ = ["SegmentSummary", "select_shard", "segment_ids", "segment_images"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentSummary:
    """What :func:`segment_images` did."""

    n_segmented: int
    n_skipped: int
    n_cells: int
    seconds: float

    def line(self) -> str:
        """One-line summary."""
        per_image = self.seconds / self.n_segmented if self.n_segmented else 0.0
        return (
            f"segmented {self.n_segmented} images, skipped {self.n_skipped} already done; "
            f"{self.n_cells} cells found; {per_image:.2f} s/image"
        )


_WORKER_SEGMENTER: Segmenter | None = None


def _init_worker(segmenter: Segmenter) -> None:
    global _WORKER_SEGMENTER
    _WORKER_SEGMENTER = segmenter


def _segment_and_write(
    segmenter: Segmenter | None, out_dir: Path, image_id: str, image: np.ndarray | tuple[int, ...]
) -> tuple[str, int]:
    """Segment one image and write its masks; ``image`` may be just its shape (for
    segmenters that need no pixels). ``segmenter=None`` uses the worker's own."""
    segmenter = segmenter if segmenter is not None else _WORKER_SEGMENTER
    if segmenter is None:
        raise RuntimeError("worker process not initialised with a segmenter")
    if isinstance(image, tuple):
        image = _shape_only(image)
    cells, nuclei = segmenter.segment(image, image_id)
    if cells.shape != image.shape[:2] or nuclei.shape != image.shape[:2]:
        raise RuntimeError(
            f"{image_id}: segmenter returned masks {cells.shape}/{nuclei.shape} for an image of {image.shape[:2]}"
        )
    io.write_mask_pair(out_dir, image_id, cells, nuclei)
    return image_id, int(cells.max())


def _iter_inputs(
    data_dir: Path, ids: Sequence[str], segmenter: Segmenter, read_threads: int
) -> Iterator[tuple[str, np.ndarray]]:
    if getattr(segmenter, "needs_pixels", True):
        yield from io.iter_rgby(data_dir, ids, workers=read_threads)
    else:
        for image_id in ids:
            yield image_id, _shape_only((*io.read_image_size(data_dir, image_id, all_channels=True), len(Channel)))


def _shape_only(shape: tuple[int, ...]) -> np.ndarray:
    """A zero-copy all-zero uint8 array of ``shape`` (for segmenters that need no pixels)."""
    return np.broadcast_to(np.zeros((), np.uint8), shape)


def segment_images(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    ids: Sequence[str] | None,
    segmenter: Segmenter,
    *,
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    overwrite: bool = False,
    read_threads: int = 4,
    progress: bool = True,
) -> SegmentSummary:
    """Segment a folder of images and write their mask pairs.

    Parameters
    ----------
    data_dir : path
        Folder of ``{ID}_{red,green,blue,yellow}.png`` files.
    out_dir : path
        Where ``{ID}_cellmask.png`` / ``{ID}_nucleimask.png`` go (written atomically,
        the cell mask last: its presence marks a finished image).
    ids : sequence of str, optional
        Images to do (default: all in ``data_dir``).
    segmenter : Segmenter
    workers : int
        Processes that segment (and write); 1 runs in this process.
    shard : (int, int), optional
        ``(I, N)``: do only every N-th ID of the sorted list, starting at I.
    overwrite : bool
        Redo images whose cell mask exists (default: skip them).
    read_threads : int
        Threads decoding images ahead of the segmenters.
    progress : bool
        Show a progress bar (on a terminal).

    Returns
    -------
    SegmentSummary

    Raises
    ------
    InputError
        No images, an unknown ID, a missing or corrupt image; images finished before
        the error keep their masks.
    """

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if workers < 1:
        raise InputError(f"workers: expected at least 1, got {workers}", param="workers")
    selected = segment_ids(data_dir, ids, shard)
    done = [] if overwrite else [i for i in selected if io.mask_paths(out_dir, i)[0].is_file()]
    todo = [i for i in selected if i not in set(done)]
    if done:
        log.info("skipping %d of %d images already segmented in %s", len(done), len(selected), out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    bar = tqdm(total=len(todo), unit="img", desc="segment", disable=None if progress else True, file=sys.stderr)
    inputs = _iter_inputs(data_dir, todo, segmenter, read_threads)
    try:
        if workers == 1:
            n_cells = sum(
                _segment_and_write(segmenter, out_dir, image_id, image)[1] for image_id, image in _counted(inputs, bar)
            )
        else:
            n_cells = _segment_in_pool(segmenter, out_dir, inputs, workers, bar)
    finally:
        bar.close()
    return SegmentSummary(len(todo), len(done), n_cells, time.perf_counter() - start)


def segment_ids(
    data_dir: str | os.PathLike, ids: Sequence[str] | None = None, shard: tuple[int, int] | None = None
) -> list[str]:
    """The IDs a run segments: all images of ``data_dir`` or ``ids`` (checked), then the shard."""
    data_dir = Path(data_dir)
    available = io.list_image_ids(data_dir)
    if not available:
        raise InputError(f"{data_dir}: no images; expected {{ID}}_{{{','.join(CHANNEL_NAMES)}}}.png files")
    if ids is None:
        selected = available
    else:
        known = set(available)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise InputError(
                f"ids: image(s) {', '.join(map(repr, unknown[:5]))} not in {data_dir} "
                f"(no {{ID}}_green file); it has {len(available)} images, e.g. {', '.join(available[:3])}",
                param="ids",
            )
        selected = sorted(set(ids))
    return select_shard(selected, *shard) if shard is not None else selected


def _counted(items: Iterator, bar: tqdm) -> Iterator:
    """``items``, advancing ``bar`` after each."""
    for item in items:
        yield item
        bar.update()


def _segment_in_pool(
    segmenter: Segmenter, out_dir: Path, inputs: Iterator[tuple[str, np.ndarray]], workers: int, bar: tqdm
) -> int:
    """Segment and write in ``workers`` processes, at most two images per worker in flight; returns the cells found."""
    pool = spawn_pool(workers, initializer=_init_worker, initargs=(segmenter,))
    pending: list[Future] = []
    n_cells = 0
    try:
        for image_id, image in inputs:
            payload = image if getattr(segmenter, "needs_pixels", True) else image.shape
            pending.append(pool.submit(_segment_and_write, None, out_dir, image_id, payload))
            while len(pending) >= 2 * workers:
                n_cells += pending.pop(0).result()[1]
                bar.update()
        for future in pending:
            n_cells += future.result()[1]
            bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return n_cells
