"""Worker processes for per-image work (segmentation, synthesis)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

__all__ = ["spawn_pool"]


def spawn_pool(workers: int, *, initializer: Callable | None = None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started afresh ("spawn"), not forked: forking a
    process whose torch or OpenMP threads have started can leave a worker hung.

    >>> with spawn_pool(1) as pool:
    ...     list(pool.map(abs, [-1, 2]))
    [1, 2]
    """
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=initializer, initargs=initargs)
