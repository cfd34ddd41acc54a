"""Tests of :func:`hpaseg.pipeline.demo.run_demo`'s input checks (the whole demo runs in
tests/cli/test_demo.py)."""

from __future__ import annotations

import pytest

from hpaseg.errors import InputError
from hpaseg.pipeline.demo import DemoConfig, run_demo


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"lr": -1.0}, "lr -1.0: expected a finite number > 0"),
        ({"lr": float("inf")}, "lr inf: expected a finite number > 0"),
        ({"batch_size": 0}, "batch_size 0: expected a positive integer"),
        ({"train_iters": -1}, "train_iters -1: expected an integer >= 0"),
        ({"fpn_channels": 0}, "fpn_channels 0: expected a positive integer"),
        ({"backbone": "vgg16"}, "backbone 'vgg16': unknown backbone"),
    ],
)
def test_bad_training_settings_are_refused_before_anything_is_written(tmp_path, setting, message):
    out = tmp_path / "demo"
    with pytest.raises(InputError, match=message.replace("(", r"\(")) as info:
        run_demo(DemoConfig(out=str(out), **setting))
    assert info.value.param == next(iter(setting))
    assert not out.exists()
