"""Tests of ``python -m hpaseg.bench synth``: the statistics of real and synthetic fields side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpaseg.bench import synth as bench_synth

REAL_FIELDS = "hpa_kaggle_fields"


def test_cli_prints_the_table(shared_data: Path, capsys):
    real = shared_data / REAL_FIELDS
    if not real.is_dir():
        pytest.skip(f"{real} not found")
    assert bench_synth.main([str(real), "--n", "1", "--size", "256"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| statistic | real |") and any(
        line.startswith("| cells touching another |") for line in out
    )
