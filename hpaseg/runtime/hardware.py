"""Defaults that depend on the machine: the compute device and the number of data-loader workers."""

from __future__ import annotations

import os

import torch

__all__ = ["default_device", "default_workers"]

#: Most data-loader workers given by default (more rarely helps one GPU).
_MAX_DEFAULT_WORKERS = 8


def default_device() -> str:
    """``"cuda"`` when a CUDA device is visible, else ``"cpu"``."""

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_workers() -> int:
    """Data-loader workers: the CPUs this process may use, minus one, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(_MAX_DEFAULT_WORKERS, cpus - 1))
