"""Metric logs of a training run: ``RUN/metrics.jsonl`` and TensorBoard scalars."""

from __future__ import annotations

import json
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

__all__ = ["MetricsLogger"]


class MetricsLogger:
    """Appends one JSON object per log step to ``RUN/metrics.jsonl`` and mirrors scalars to
    TensorBoard (``RUN/tb``). Does nothing when ``enabled`` is False (non-main ranks)."""

    def __init__(self, out_dir: str | Path, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self._tb = None
        if enabled:
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
