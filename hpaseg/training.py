"""What every hpaseg trainer shares: learning-rate schedules, checkpoints with resume,
metric logs (``metrics.jsonl`` + TensorBoard), seeds and config overrides.

Used by the Mask R-CNN trainer (``hpaseg.train``) and the classifier trainer.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from . import io
from .errors import InputError

__all__ = ["read_checkpoint", "lr_factor", "Checkpointer", "MetricsLogger", "seed_everything", "apply_opts", "save_config"]

_LAST = "last_checkpoint"


def lr_factor(iteration: int, *, max_iter: int, warmup_iters: int, warmup_factor: float, schedule: str, steps: Sequence[float] = (0.67, 0.89), gamma: float = 0.1) -> float:
    """Multiplier of the base learning rate at ``iteration``: linear warm-up, then
    ``"cosine"`` decay to 0 or ``"step"`` decay by ``gamma`` at the fractions ``steps`` of ``max_iter``.

    >>> [round(lr_factor(i, max_iter=100, warmup_iters=10, warmup_factor=0.1, schedule="step"), 3) for i in (0, 5, 10, 70, 95)]
    [0.1, 0.55, 1.0, 0.1, 0.01]
    >>> round(lr_factor(55, max_iter=100, warmup_iters=10, warmup_factor=0.1, schedule="cosine"), 3)
    0.5
    """
    if schedule not in ("cosine", "step"):
        raise InputError(f"schedule {schedule!r}: expected 'cosine' or 'step'")
    if iteration < warmup_iters:
        alpha = iteration / warmup_iters
        return warmup_factor * (1 - alpha) + alpha
    if schedule == "cosine":
        span = max(1, max_iter - warmup_iters)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (iteration - warmup_iters) / span)))
    return gamma ** sum(iteration >= s * max_iter for s in steps)


def read_checkpoint(path: str | Path, *, option: str, hint: str, weights_only: bool = True) -> Any:
    """Load a torch checkpoint file, with one-line InputErrors for a missing or unreadable file.

    Parameters
    ----------
    option : str
        The command-line option that named the file (``--weights``, ``--pretrained``).
    hint : str
        What to give instead, appended to the "no such file" message.
    weights_only : bool
        Passed to ``torch.load``; hpaseg's own checkpoints hold plain Python metadata too.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{option} {path}: no such file; {hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # torch raises many types for bad files
        raise InputError(f"{option} {path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from exc


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Checkpointer:
    """Saves ``{name}.pth`` files atomically in a run folder and remembers the last one.

    ``RUN/last_checkpoint`` holds the file name of the newest periodic checkpoint,
    which ``--resume`` loads.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)

    def save(self, name: str, state: dict, *, last: bool = True) -> Path:
        path = self.out_dir / f"{name}.pth"
        with io.atomic_write(path, "wb") as fh:
            torch.save(state, fh)
        if last:
            with io.atomic_write(self.out_dir / _LAST) as fh:
                fh.write(path.name)
        return path

    def last(self) -> Path | None:
        """The newest periodic checkpoint, or None when the run has none."""
        marker = self.out_dir / _LAST
        if not marker.is_file():
            return None
        path = self.out_dir / marker.read_text().strip()
        return path if path.is_file() else None

    @staticmethod
    def load(path: str | Path) -> dict:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # torch raises many types for bad files
            raise InputError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc}); delete it to start over") from exc


class MetricsLogger:
    """Appends one JSON object per log step to ``RUN/metrics.jsonl`` and mirrors scalars to
    TensorBoard (``RUN/tb``). Does nothing when ``enabled`` is False (non-main ranks)."""

    def __init__(self, out_dir: str | Path, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self._tb = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(out_dir) / "tb"))

    def log(self, iteration: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"iteration": iteration, **{k: float(v) for k, v in values.items()}}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        for key, value in values.items():
            self._tb.add_scalar(key, float(value), iteration)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _coerce(value: str, like: Any, key: str) -> Any:
    if isinstance(like, bool):
        if value.lower() in ("1", "true", "yes"):
            return True
        if value.lower() in ("0", "false", "no"):
            return False
        raise InputError(f"--opts {key} {value!r}: expected true or false")
    try:
        if isinstance(like, int):
            return int(value)
        if isinstance(like, float):
            return float(value)
        if isinstance(like, (tuple, list)):
            return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise InputError(f"--opts {key} {value!r}: expected a {type(like).__name__}") from None
    return None if value.lower() == "none" else value


def apply_opts(config: Any, opts: Sequence[str]) -> Any:
    """Override fields of a config dataclass from ``KEY VALUE`` pairs.

    Raises :class:`InputError` on an unknown key, naming the known ones.
    """
    if len(opts) % 2:
        raise InputError(f"--opts {' '.join(opts)}: expected KEY VALUE pairs")
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for key, value in zip(opts[0::2], opts[1::2]):
        name = key.lower().replace("-", "_")
        if name not in fields:
            raise InputError(f"--opts {key}: unknown key; expected one of {', '.join(sorted(fields))}")
        changes[name] = _coerce(value, getattr(config, name), key)
    return dataclasses.replace(config, **changes)


def save_config(path: str | Path, config: Any) -> None:
    """Write a config dataclass as YAML next to the run's outputs (atomically)."""
    import yaml

    data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}
    with io.atomic_write(path) as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
