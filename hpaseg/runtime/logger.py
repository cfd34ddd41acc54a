"""Metric logs of a training run: ``RUN/metrics.jsonl`` and TensorBoard scalars."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from ..errors import InputError
from ..io import atomic_write

__all__ = ["MetricsLogger", "read_metrics"]


class MetricsLogger:
    """Appends one JSON object per log step to ``RUN/metrics.jsonl`` and mirrors scalars to
    TensorBoard (``RUN/tb``). Does nothing when ``enabled`` is False (non-main ranks).

    ``start``: the iteration the run starts from (0 for a new run, the checkpoint's for a
    resumed one); records of later iterations, which a killed run logged after its last
    checkpoint (or an earlier run in the same folder), are dropped from ``metrics.jsonl``
    (this run logs them again). ``redo``: keys of records logged at ``start`` itself after
    the checkpoint (a final validation), dropped too.
    """

    def __init__(
        self, out_dir: str | Path, *, enabled: bool = True, start: int | None = None, redo: Sequence[str] = ()
    ) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self._tb = None
        if enabled:
            if start is not None:
                self._drop_after(start, redo)
            self._tb = SummaryWriter(str(Path(out_dir) / "tb"))

    def _drop_after(self, iteration: int, redo: Sequence[str]) -> None:
        if not self.path.is_file():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if _kept(line, iteration, redo)]
        if len(kept) != len(lines):
            with atomic_write(self.path) as fh:
                fh.writelines(kept)

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


def _kept(line: str, start: int, redo: Sequence[str]) -> bool:
    """Whether a ``metrics.jsonl`` line stays when a run restarts at ``start``: a record of an
    earlier iteration, or of ``start`` without a key of ``redo``; not a line that is not a
    record (one cut short when a run was killed while writing it)."""
    try:
        record = json.loads(line)
        iteration = float(record["iteration"])
    except (ValueError, KeyError, TypeError):
        return False
    return iteration < start or (iteration == start and not any(key in record for key in redo))


def read_metrics(out_dir: str | Path) -> list[dict[str, float]]:
    """The records :class:`MetricsLogger` appended to ``RUN/metrics.jsonl``, in order.

    Raises
    ------
    InputError
        No such file, or a line that is not a JSON object.
    """
    path = Path(out_dir) / "metrics.jsonl"
    if not path.is_file():
        raise InputError(f"{path}: no such file; expected the metrics log of a training run")
    records = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: line {number} is not JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise InputError(f"{path}: line {number} is not a JSON object")
            records.append(record)
    return records
