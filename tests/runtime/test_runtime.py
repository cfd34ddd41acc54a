"""Tests of hpaseg.runtime: schedules, checkpoints, config overrides."""

from __future__ import annotations

import pytest
import torch

from hpaseg.detection import TrainConfig
from hpaseg.errors import InputError
from hpaseg.runtime.checkpoint import Checkpointer
from hpaseg.runtime.config import apply_opts
from hpaseg.runtime.schedule import build_scheduler


def _lr_at(iteration: int, **kwargs) -> float:
    """The learning-rate factor after ``iteration`` steps of a scheduler on base rate 1."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = build_scheduler(opt, **kwargs)
    for _ in range(iteration):
        opt.step()
        sched.step()
    return opt.param_groups[0]["lr"]


def test_lr_schedule_and_checkpointer(tmp_path):
    assert _lr_at(0, max_iter=10, warmup_iters=0, warmup_factor=0.1, schedule="cosine") == 1.0
    with pytest.raises(InputError):
        _lr_at(0, max_iter=10, warmup_iters=0, warmup_factor=0.1, schedule="poly")
    ck = Checkpointer(tmp_path)
    assert ck.last() is None
    ck.save("model_0000005", {"a": 1})
    assert ck.last() == tmp_path / "model_0000005.pth" and ck.load(ck.last()) == {"a": 1}
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read checkpoint"):
        ck.load(tmp_path / "bad.pth")


def test_apply_opts():
    cfg = apply_opts(TrainConfig(), ["warmup_iters", "7", "schedule", "step", "amp", "false", "steps", "0.5,0.8"])
    assert (cfg.warmup_iters, cfg.schedule, cfg.amp, cfg.steps) == (7, "step", False, (0.5, 0.8))
    with pytest.raises(InputError, match="unknown key"):
        apply_opts(TrainConfig(), ["no_such_key", "1"])
    with pytest.raises(InputError, match="expected a int"):
        apply_opts(TrainConfig(), ["max_iter", "many"])


def test_schedules_match_the_former_hand_written_factors():
    """The torch schedulers give the factors the hand-written lr_factor gave: linear warm-up
    from 0.1 over 10 iterations, then step decay at 67% and 89% of 100, or cosine to 0."""
    step = dict(max_iter=100, warmup_iters=10, warmup_factor=0.1, schedule="step")
    assert [round(_lr_at(i, **step), 3) for i in (0, 5, 10, 70, 95)] == [0.1, 0.55, 1.0, 0.1, 0.01]
    assert round(_lr_at(55, max_iter=100, warmup_iters=10, warmup_factor=0.1, schedule="cosine"), 3) == 0.5
