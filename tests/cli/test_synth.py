"""Tests of the ``hpaseg synth`` CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hpaseg import io, synth
from hpaseg.cli import synth as synth_cli

SIZE = 256


N_TRAIN, N_TEST, SEED = 3, 2, 7


def _run(out: Path, *args: str) -> int:
    return synth_cli.main([str(out), *args, "--quiet"])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    assert _run(out, "--n-train", str(N_TRAIN), "--n-test", str(N_TEST), "--size", str(SIZE), "--seed", str(SEED)) == 0
    return out


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    args = ["--n-train", "2", "--n-test", "1", "--size", "160"]
    assert _run(tmp_path / "a", *args, "--seed", "3") == 0
    assert _run(tmp_path / "b", *args, "--seed", "3") == 0
    assert _run(tmp_path / "c", *args, "--seed", "4") == 0
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys()
    assert a["train/synth_train_0000_green.png"] != c["train/synth_train_0000_green.png"]
    # different images of one run differ
    assert a["train/synth_train_0000_blue.png"] != a["train/synth_train_0001_blue.png"]
    # test images do not depend on the number of training images
    assert _run(tmp_path / "d", "--n-train", "0", "--n-test", "1", "--size", "160", "--seed", "3") == 0
    d = _files(tmp_path / "d")
    for name in ("test/synth_test_0000_red.png", "masks/synth_test_0000_cellmask.png", "truth.csv"):
        assert d[name] == a[name]


def test_16_bit_pngs_read_back_as_the_8_bit_values(tmp_path):
    args = ["--n-train", "1", "--n-test", "0", "--size", "128", "--seed", "5"]
    assert _run(tmp_path / "b8", *args) == 0
    assert _run(tmp_path / "b16", *args, "--bit-depth", "16") == 0
    path16 = tmp_path / "b16" / "train" / "synth_train_0000_green.png"
    raw16 = np.asarray(Image.open(path16))
    raw8 = np.asarray(Image.open(tmp_path / "b8" / "train" / "synth_train_0000_green.png"))
    assert raw16.dtype == np.uint16 and raw8.dtype == np.uint8
    assert np.array_equal(raw16, raw8.astype(np.uint16) * 257)
    iid = synth.image_id("train", 0)
    assert np.array_equal(io.read_rgby(tmp_path / "b16" / "train", iid), io.read_rgby(tmp_path / "b8" / "train", iid))


@pytest.mark.parametrize(
    "args",
    [
        ["--size", "100"],
        ["--n-train", "-1"],
        ["--n-train", "0", "--n-test", "0"],
        ["--bit-depth", "12"],
        ["--seed", "-3"],
        ["--size", "big"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args):
    out = tmp_path / "out"
    assert synth_cli.main([str(out), *args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpaseg synth: error: ") and err.count("\n") == 1
    assert not out.exists()


def test_refuses_a_foreign_folder_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "foreign"
    out.mkdir()
    (out / "keep.txt").write_text("not ours")
    args = ["--n-train", "1", "--n-test", "0", "--size", "128"]
    assert _run(out, *args) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert _run(out, *args, "--overwrite") == 0
    assert (out / "keep.txt").read_text() == "not ours"
    assert (out / "train.csv").is_file()


def test_rerun_in_own_folder_removes_stale_images(tmp_path):
    out = tmp_path / "data"
    assert _run(out, "--n-train", "2", "--n-test", "1", "--size", "128") == 0
    assert _run(out, "--n-train", "1", "--n-test", "1", "--size", "128") == 0
    assert io.list_image_ids(out / "train") == ["synth_train_0000"]
    assert not (out / "masks" / "synth_train_0001_cellmask.png").exists()
    assert list(io.read_labels_csv(out / "train.csv")) == ["synth_train_0000"]


def test_interrupted_rerun_leaves_no_stale_tables(tmp_path, monkeypatch):
    out = tmp_path / "data"
    assert _run(out, "--n-train", "1", "--n-test", "1", "--size", "128") == 0
    real = synth.synth_image
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synth.dataset, "synth_image", failing)  # generate_dataset's own reference
    with pytest.raises(KeyboardInterrupt):
        synth.generate_dataset(out, 1, 1, 128, seed=9, progress=False)
    assert io.read_json(out / "synth.json")["complete"] is False
    assert not any(
        (out / name).exists() for name in ("train.csv", "truth.csv", "sample_submission.csv", "cell_labels.csv")
    )
    assert not list(out.rglob(".*.tmp"))


def test_main_prints_a_summary(tmp_path, capsys):
    assert synth_cli.main([str(tmp_path / "s"), "--n-train", "1", "--n-test", "1", "--size", "128", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert synth_cli.main([str(tmp_path / "s"), "--n-train", "1", "--n-test", "1", "--size", "128"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote 1 train + 1 test images (128 px, 8-bit)")
