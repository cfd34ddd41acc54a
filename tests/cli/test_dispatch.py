"""The ``hpaseg <stage>`` dispatcher, the benchmarks' output format and the demo, end to end."""

from __future__ import annotations

import pytest

from hpaseg import cli


def test_usage_lists_every_stage(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for stage in cli.STAGES:
        assert f"  {stage}" in out


def test_unknown_stage(capsys):
    assert cli.main(["segmnt"]) == 2
    assert "unknown stage 'segmnt'" in capsys.readouterr().err


@pytest.mark.parametrize("stage", sorted(set(cli.STAGES) - {"bench"}))
def test_every_stage_has_help(stage, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([stage, "--help"])
    assert info.value.code == 0
    assert f"hpaseg {stage}" in capsys.readouterr().out
