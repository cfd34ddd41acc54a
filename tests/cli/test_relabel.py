"""``hpaseg relabel`` on the command line."""

from __future__ import annotations

from hpaseg import io
from hpaseg.cli import relabel as relabel_cli
from hpaseg.labels import load_coco_split


def test_relabel_cli_writes_the_dataset_and_refuses_a_bad_table(tiny_dataset, tmp_path, capsys):
    cells = {
        r.image_id: dict(r.cells)
        for s in ("train", "val")
        for r in load_coco_split(tiny_dataset["dataset"] / f"{s}.json")
    }
    io.write_cell_labels_csv(tmp_path / "labels.csv", cells)
    out = tmp_path / "ds"
    assert (
        relabel_cli.main(
            ["--dataset", str(tiny_dataset["dataset"]), "--labels", str(tmp_path / "labels.csv"), "--out", str(out)]
        )
        == 0
    )
    assert "(0 changed)" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"train.json", "val.json", "cells.csv", "relabel.json"}
    (tmp_path / "bad.csv").write_text("ID,cell\n")
    code = relabel_cli.main(
        ["--dataset", str(tiny_dataset["dataset"]), "--labels", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "x")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "bad.csv" in err and "Label" in err and not (tmp_path / "x").exists()
