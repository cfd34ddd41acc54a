"""Tests of ``hpaseg synth --style``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hpaseg import io, synth
from hpaseg.cli import synth as synth_cli
from hpaseg.errors import InputError


def test_style_option_is_recorded_and_changes_the_images(tmp_path: Path):
    args = ["--n-train", "1", "--n-test", "0", "--size", "128", "--seed", "2", "--quiet"]
    assert synth_cli.main([str(tmp_path / "r"), *args]) == 0
    assert synth_cli.main([str(tmp_path / "c"), *args, "--style", "compact"]) == 0
    assert io.read_json(tmp_path / "r" / "synth.json")["style"] == "real-like"
    assert io.read_json(tmp_path / "c" / "synth.json")["style"] == "compact"
    name = "train/synth_train_0000_red.png"
    assert (tmp_path / "r" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()


def test_bad_style_exits_2_with_one_line(tmp_path: Path, capsys):
    assert synth_cli.main([str(tmp_path / "o"), "--style", "fancy", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--style" in err and err.count("\n") == 1
    with pytest.raises(InputError, match="style"):
        synth.synth_image(np.random.default_rng(0), 128, style="fancy")
