"""Checkpoint files: reading torch checkpoints with clear errors, and saving a run's
checkpoints atomically with a ``last_checkpoint`` marker for ``--resume``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..io import atomic_write

__all__ = ["read_checkpoint", "Checkpointer", "LAST_CHECKPOINT"]

#: File in a run folder naming its newest periodic checkpoint.
LAST_CHECKPOINT = "last_checkpoint"


def read_checkpoint(path: str | Path, *, param: str, hint: str, weights_only: bool = True) -> Any:
    """Load a torch checkpoint file, with one-line InputErrors for a missing or unreadable file.

    Parameters
    ----------
    param : str
        The parameter that named the file (``weights``, ``pretrained``), for the message.
    hint : str
        What to give instead, appended to the "no such file" message.
    weights_only : bool
        Passed to ``torch.load``; hpaseg's own checkpoints hold plain Python metadata too.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{param} {path}: no such file; {hint}", param=param)
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # torch raises many types for bad files
        raise InputError(f"{param} {path}: cannot read checkpoint ({type(exc).__name__}: {exc})", param=param) from exc


class Checkpointer:
    """Saves ``{name}.pth`` files atomically in a run folder and remembers the last one.

    ``RUN/last_checkpoint`` holds the file name of the newest periodic checkpoint,
    which ``--resume`` loads.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)

    def save(self, name: str, state: dict, *, last: bool = True) -> Path:
        path = self.out_dir / f"{name}.pth"
        with atomic_write(path, "wb") as fh:
            torch.save(state, fh)
        if last:
            with atomic_write(self.out_dir / LAST_CHECKPOINT) as fh:
                fh.write(path.name)
        return path

    def last(self) -> Path | None:
        """The newest periodic checkpoint, or None when the run has none."""
        marker = self.out_dir / LAST_CHECKPOINT
        if not marker.is_file():
            return None
        path = self.out_dir / marker.read_text().strip()
        return path if path.is_file() else None

    @staticmethod
    def load(path: str | Path) -> dict:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # torch raises many types for bad files
            raise InputError(
                f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc}); delete it to start over"
            ) from exc
