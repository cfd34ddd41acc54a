"""``hpaseg predict --shard I/N [--resume]`` and ``hpaseg merge``: the parts of a predict job
array, joined into the submission one unsharded run writes, byte for byte."""

from __future__ import annotations

from hpaseg import io
from hpaseg.cli import merge as merge_cli
from hpaseg.cli import predict as predict_cli
from hpaseg.submission import read_submission


def _argv(cell_run, tiny, out, *extra) -> list[str]:
    return [
        "--classifier",
        str(cell_run),
        "--masks",
        str(tiny["masks"]),
        "--data",
        str(tiny["test"]),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]


def test_predict_shards_merge_into_the_unsharded_submission(cell_run, tiny_dataset, tmp_path, capsys):
    test = tiny_dataset["test"]
    ids = io.list_image_ids(test)
    assert predict_cli.main(_argv(cell_run, tiny_dataset, tmp_path / "whole.csv")) == 0
    parts = [tmp_path / "parts" / f"part-{i}-of-2.csv" for i in range(2)]
    for i, part in enumerate(parts):
        extra = ("--shard", f"{i}/2", "--save-masks", str(tmp_path / "saved"))
        assert predict_cli.main(_argv(cell_run, tiny_dataset, part, *extra)) == 0
        assert f"(shard {i}/2: a part for 'hpaseg merge')" in capsys.readouterr().out
        assert [r.image_id for r in read_submission(part)] == ids[i::2]
    assert sorted(p.name for p in (tmp_path / "saved").glob("cells*.csv")) == ["cells.0-of-2.csv", "cells.1-of-2.csv"]
    out = tmp_path / "sub.csv"
    assert merge_cli.main([*map(str, parts), "--out", str(out), "--data", str(test)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"merged 2 parts: {out}: {len(ids)} images") and printed[-1] == "OK"
    assert out.read_bytes() == (tmp_path / "whole.csv").read_bytes()


def test_predict_resume_keeps_a_finished_part(cell_run, tiny_dataset, tmp_path, capsys):
    part = tmp_path / "part-0-of-2.csv"
    part.write_text("kept as it is\n")
    assert predict_cli.main(_argv(cell_run, tiny_dataset, part, "--shard", "0/2", "--resume")) == 0
    assert f"kept {part}" in capsys.readouterr().out and part.read_text() == "kept as it is\n"
    assert predict_cli.main(_argv(cell_run, tiny_dataset, part, "--shard", "0/2")) == 0  # without: predicted again
    assert part.read_text().startswith("ID,ImageWidth,ImageHeight,PredictionString")


def test_bad_shards_and_parts_are_one_line_errors(cell_run, tiny_dataset, tmp_path, capsys):
    n = len(io.list_image_ids(tiny_dataset["test"]))
    for shard, message in (
        ("2/1", "--shard: expected I/N with 0 <= I < N"),
        (f"{n}/{n + 1}", f"use at most {n} shards"),
    ):
        assert predict_cli.main(_argv(cell_run, tiny_dataset, tmp_path / "p.csv", "--shard", shard)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "p.csv").exists()
    part = tmp_path / "part-0-of-2.csv"
    assert predict_cli.main(_argv(cell_run, tiny_dataset, part, "--shard", "0/2")) == 0
    capsys.readouterr()
    out = tmp_path / "sub.csv"
    assert merge_cli.main([str(part), "--out", str(out), "--data", str(tiny_dataset["test"])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("hpaseg merge: error:") and "are in none of the 1 parts" in err
    assert merge_cli.main([str(part), str(part), "--out", str(out)]) == 2
    assert "PART: " in capsys.readouterr().err
    assert not out.exists()
