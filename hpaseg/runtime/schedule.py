"""Learning-rate schedules from ``torch.optim.lr_scheduler``: linear warm-up, then
constant, cosine decay to 0, or step decay.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.optim import lr_scheduler as lrs

from ..errors import InputError

__all__ = ["SCHEDULES", "build_scheduler"]

#: Schedules after the warm-up.
SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    schedule: str,
    max_iter: int,
    warmup_iters: int = 0,
    warmup_factor: float = 0.001,
    steps: Sequence[float] = (0.67, 0.89),
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LRScheduler:
    """A scheduler stepped once per iteration: ``LinearLR`` from ``warmup_factor`` to 1 over
    ``warmup_iters``, then ``ConstantLR`` (``"constant"``), ``CosineAnnealingLR`` to 0 at
    ``max_iter`` (``"cosine"``) or ``MultiStepLR`` by ``gamma`` at the fractions ``steps`` of
    ``max_iter`` (``"step"``), chained with ``SequentialLR``.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    schedule : {"constant", "cosine", "step"}
    max_iter : int
        Iterations of the whole run.
    warmup_iters : int
        Iterations of the linear warm-up (0: none).
    warmup_factor : float
        Multiplier of the base learning rate at iteration 0.
    steps : sequence of float
        ``"step"``: fractions of ``max_iter`` at which the rate is multiplied by ``gamma``.
    gamma : float

    Examples
    --------
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> sched = build_scheduler(opt, schedule="step", max_iter=100, warmup_iters=10, warmup_factor=0.1)
    >>> lrs = []
    >>> for it in range(100):
    ...     lrs.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    >>> [round(lrs[i], 3) for i in (0, 5, 10, 70, 95)]
    [0.1, 0.55, 1.0, 0.1, 0.01]
    """

    if schedule not in SCHEDULES:
        raise InputError(f"schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    if max_iter < 1 or warmup_iters < 0:
        raise InputError(
            f"max_iter {max_iter}, warmup_iters {warmup_iters}: expected max_iter >= 1 and warmup_iters >= 0"
        )
    warmup_iters = min(warmup_iters, max_iter)
    span = max(1, max_iter - warmup_iters)
    if schedule == "constant":
        main: lrs.LRScheduler = lrs.ConstantLR(optimizer, factor=1.0, total_iters=0)
    elif schedule == "cosine":
        main = lrs.CosineAnnealingLR(optimizer, T_max=span, eta_min=0.0)
    else:
        milestones = sorted({max(1, round(s * max_iter) - warmup_iters) for s in steps})
        main = lrs.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
    if warmup_iters == 0:
        return main
    warmup = lrs.LinearLR(optimizer, start_factor=warmup_factor, end_factor=1.0, total_iters=warmup_iters)
    return lrs.SequentialLR(optimizer, [warmup, main], milestones=[warmup_iters])
