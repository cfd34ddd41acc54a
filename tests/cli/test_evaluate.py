"""Tests of the ``hpaseg evaluate`` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hpaseg.cli import evaluate as evaluate_cli
from hpaseg.submission import (
    Prediction,
    SubmissionRow,
    encode_binary_mask,
    write_submission,
)


def _rect(shape, y0, y1, x0, x1) -> str:
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return encode_binary_mask(m)


SHAPE = (20, 30)  # H, W of the synthetic images


A = _rect(SHAPE, 0, 10, 0, 10)  # 100 px


B = _rect(SHAPE, 10, 20, 0, 10)


C = _rect(SHAPE, 0, 10, 15, 25)


A_SHIFT3 = _rect(SHAPE, 0, 10, 3, 13)  # IoU with A: 70 / 130 = 0.538 -> no match


def _row(image_id, *preds, shape=SHAPE):
    return SubmissionRow(image_id, shape[1], shape[0], [Prediction(lab, conf, m) for lab, conf, m in preds])


def _write_pair(tmp_path):
    truth = [_row("i1", (0, 1, A), (0, 1, B)), _row("i2", (0, 1, C), (16, 1, C))]
    sub = [_row("i1", (0, 0.9, A), (0, 0.8, A_SHIFT3), (0, 0.3, B)), _row("i2", (0, 0.7, C))]
    write_submission(tmp_path / "truth.csv", truth)
    write_submission(tmp_path / "sub.csv", sub)
    return tmp_path / "truth.csv", tmp_path / "sub.csv"


def test_evaluate_cli_prints_table_and_map_last(tmp_path, capsys):
    truth, sub = _write_pair(tmp_path)
    out_json = tmp_path / "res" / "map.json"
    assert evaluate_cli.main(["--truth", str(truth), "--submission", str(sub), "--out-json", str(out_json)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    # class 0: TP, FP, TP, TP over 3 true -> 1/3 + 1/3 * 3/4 + 1/3 * 3/4 = 5/6; class 16: no prediction -> 0
    assert lines[-1] == "mAP=0.4167"
    assert lines[1].split()[:1] == ["0"] and lines[1].split()[-3:] == ["3", "4", "0.8333"]
    assert lines[17].split()[-3:] == ["1", "0", "0.0000"]
    assert lines[2].split()[-3:] == ["0", "0", "-"]
    assert "absent from" not in "\n".join(lines)  # every truth image is in the submission
    saved = json.loads(out_json.read_text())
    assert saved["mAP"] == pytest.approx(5 / 12)
    assert saved["classes"][0]["ap"] == pytest.approx(5 / 6) and saved["classes"][1]["ap"] is None
    assert evaluate_cli.main(["--truth", str(truth), "--submission", str(truth)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "mAP=1.0000"


def test_evaluate_cli_rejects_bad_input(tmp_path, capsys):
    truth, sub = _write_pair(tmp_path)
    out_json = tmp_path / "map.json"
    args = ["--truth", str(truth), "--submission", str(sub), "--out-json", str(out_json)]
    sub.write_text(sub.read_text().replace("i2,30,20,", "i2,31,20,"))
    rc = evaluate_cli.main(args)
    line = _one_line(capsys, rc)
    assert str(truth) in line and str(sub) in line and "'i2': size 31x20" in line
    sub.write_text("ID,ImageWidth,ImageHeight,PredictionString\ni1,30,20,0 0.5\n")
    line = _one_line(capsys, evaluate_cli.main(args))
    assert f"{sub}, line 2, PredictionString: 2 tokens" in line
    line = _one_line(capsys, evaluate_cli.main(args[:2] + ["--submission", str(tmp_path / "none.csv")]))
    assert "none.csv: no such file" in line
    line = _one_line(capsys, evaluate_cli.main(args[:4] + ["--iou", "1.5"]))
    assert "--iou 1.5" in line
    line = _one_line(capsys, evaluate_cli.main(args[:4] + ["--iou", "x"]))
    assert "--iou" in line
    assert not out_json.exists()


def test_evaluate_cli_refuses_images_absent_from_the_truth(tmp_path, capsys):
    """A submission for other images scored 0.0000 with exit 0; it is now refused, naming
    the first three absent IDs and the file."""
    truth, sub = _write_pair(tmp_path)
    others = [_row(f"other{k}", (0, 0.9, A)) for k in range(5)]
    write_submission(sub, others)
    line = _one_line(capsys, evaluate_cli.main(["--truth", str(truth), "--submission", str(sub)]))
    assert line.startswith(f"hpaseg evaluate: error: --submission {sub}: 5 images are not in the truth ({truth}):")
    assert "'other0', 'other1', 'other2' and 2 more" in line
    assert capsys.readouterr().out == ""
    # One absent image among the truth's is refused too.
    write_submission(sub, [_row("i1", (0, 0.9, A)), _row("i2", (0, 0.7, C)), _row("zz", (1, 0.5, A))])
    line = _one_line(capsys, evaluate_cli.main(["--truth", str(truth), "--submission", str(sub)]))
    assert "1 image is not in the truth" in line and "'zz'" in line


def test_evaluate_cli_scores_truth_images_missing_from_the_submission_as_missed(tmp_path, capsys):
    truth, sub = _write_pair(tmp_path)
    write_submission(sub, [_row("i1", (0, 0.9, A), (0, 0.8, A_SHIFT3), (0, 0.3, B))])
    assert evaluate_cli.main(["--truth", str(truth), "--submission", str(sub)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[-2] == f"1 of 2 truth images are absent from {sub}, their cells scored as missed: 'i2'"
    # class 0: TP, FP, TP over 3 true (i2's cell missed) -> 1/3 + 1/3 * 2/3 = 5/9; class 16: 0
    assert lines[-1] == "mAP=0.2778"
    assert captured.err == ""


def _one_line(capsys, rc):
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpaseg evaluate: error: "), err
    return lines[0]
