"""What several benchmarks share: step timers, peak memory, pinning to cores, synthetic folders."""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import pandas as pd
import torch

from ..errors import InputError
from ..labels import propagate_dataset
from ..synth import generate_dataset

__all__ = [
    "StepTimer",
    "plus_minus",
    "peak_rss_mb",
    "pinned_cores",
    "synth_folder",
    "synth_training_set",
    "sync",
    "machine",
]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (``ru_maxrss``; KiB on Linux, bytes on macOS).

    >>> peak_rss_mb() > 0
    True
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer:
    """Seconds spent per named step, summed over repeats, in first-use order.

    >>> t = StepTimer()
    >>> with t("read"):
    ...     pass
    >>> list(t.seconds)
    ['read']
    """

    def __init__(self, device: torch.device | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.device = device or torch.device("cpu")

    @contextlib.contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        """Time the ``with`` block as ``step`` (CUDA work synchronised before and after)."""
        sync(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - start

    @property
    def total(self) -> float:
        """Seconds of all steps."""
        return sum(self.seconds.values())

    def shares(self) -> dict[str, float]:
        """Each step's fraction of :attr:`total`."""
        total = self.total or 1.0
        return {k: v / total for k, v in self.seconds.items()}


@contextlib.contextmanager
def pinned_cores(cores: int) -> Iterator[list[int]]:
    """Within the block, this process runs on its first ``cores`` allowed CPU cores, with torch
    and OpenCV set to as many threads; all three are restored after. Yields the cores used.

    Raises
    ------
    InputError
        ``cores`` is not between 1 and the number of cores this process may use.
    """
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if not 1 <= cores <= len(allowed):
        raise InputError(f"cores {cores}: expected 1 to {len(allowed)} (the cores this process may use)", param="cores")
    used = allowed[:cores]
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, used)
    torch.set_num_threads(cores)
    cv2.setNumThreads(cores)
    try:
        yield used
    finally:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, allowed)
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)


def synth_folder(out: str | Path, *, n_images: int, size: int, seed: int = 0, split: str = "test") -> Path:
    """Write ``n_images`` synthetic RGBY fields of ``size`` px (:func:`hpaseg.synth.generate_dataset`)
    into ``out`` and return the folder of their channel PNGs (``out/test`` or ``out/train``).
    The true masks are in ``out/masks``."""
    n_train, n_test = (n_images, 0) if split == "train" else (0, n_images)
    generate_dataset(out, n_train, n_test, size, seed, progress=False, overwrite=True)
    return Path(out) / split


def synth_training_set(root: str | Path, *, n_images: int, size: int, seed: int = 0) -> tuple[Path, Path]:
    """Synthetic training fields in ``root/data`` (:func:`synth_folder`) with their true masks
    propagated into a COCO dataset in ``root/dataset`` (no validation split); returns
    ``(image folder, dataset folder)``."""
    root = Path(root)
    data = synth_folder(root / "data", n_images=n_images, size=size, seed=seed, split="train")
    propagate_dataset(
        root / "data" / "train.csv",
        root / "data" / "masks",
        root / "dataset",
        data_dir=data,
        val_fraction=0.0,
        progress=False,
    )
    return data, root / "dataset"


def machine(device: torch.device) -> str:
    """The device in words: the GPU's name, or the CPU with torch's thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads, {len(os.sched_getaffinity(0))} cores allowed)"


def plus_minus(mean: float, sd: float) -> str:
    """``"mean ± sd"`` to 3 decimals; ``"mean"`` when ``sd`` is missing (one value), ``"–"`` when ``mean`` is.

    >>> plus_minus(0.8766, 0.0123), plus_minus(0.5, float("nan")), plus_minus(float("nan"), 0.1)
    ('0.877 ± 0.012', '0.500', '–')
    """
    if pd.isna(mean):
        return "–"
    return f"{mean:.3f}" if pd.isna(sd) else f"{mean:.3f} ± {sd:.3f}"
