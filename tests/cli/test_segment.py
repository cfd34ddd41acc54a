"""Tests of the ``hpaseg segment`` CLI: the runner (skip, shard, workers), the three methods and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hpaseg import io
from hpaseg import segmentation as seg
from hpaseg.cli import segment as segment_cli
from hpaseg.errors import InputError
from hpaseg.segmentation import hpacellseg as hpacellseg_adapter
from hpaseg.synth import synthetic_field


def _dataset(folder: Path, n: int, shape=(128, 160), seed: int = 0) -> list[str]:
    ids = [f"img{k:02d}" for k in range(n)]
    for k, image_id in enumerate(ids):
        image, _ = synthetic_field(np.random.default_rng(seed + k), shape)
        io.write_rgby(folder, image_id, image)
    return ids


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = segment_cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hpaseg segment: error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _assert_convention(cells: np.ndarray, nuclei: np.ndarray, *, min_inside: float = 0.99) -> None:
    """Cells 1..N contiguous, nucleus ids = cell ids, nucleus k inside cell k."""
    n = int(cells.max())
    assert set(np.unique(cells)) == set(range(n + 1))
    assert set(np.unique(nuclei)) == set(range(n + 1))
    inside = nuclei > 0
    if inside.any():
        assert np.mean(cells[inside] == nuclei[inside]) >= min_inside


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")] if folder.exists() else True


def test_cli_writes_16bit_masks_at_original_size(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "masks"
    ids = _dataset(data, 2, shape=(200, 264))
    rc, stdout, err = _run(capsys, "--data", data, "--out", out)
    assert rc == 0, err
    assert "segmented 2 images" in stdout.strip().splitlines()[-1]
    for image_id in ids:
        cell_path, nuc_path = io.mask_paths(out, image_id)
        for path in (cell_path, nuc_path):
            with Image.open(path) as img:
                assert img.mode == "I;16" and img.size == (264, 200)
        cells, nuclei = io.read_mask_pair(out, image_id)
        assert cells.max() > 5
        _assert_convention(cells, nuclei)
    assert _no_temp_files(out)


def test_rerun_skips_finished_images(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "masks"
    ids = _dataset(data, 3, shape=(96, 96))
    assert _run(capsys, "--data", data, "--out", out, "--ids", ids[0], ids[1])[0] == 0
    stamps = {i: io.mask_paths(out, i)[0].stat().st_mtime_ns for i in ids[:2]}
    rc, stdout, _ = _run(capsys, "--data", data, "--out", out)
    assert rc == 0
    assert "skipping 2 of 3" in stdout and "segmented 1 images, skipped 2" in stdout
    assert {i: io.mask_paths(out, i)[0].stat().st_mtime_ns for i in ids[:2]} == stamps
    assert io.mask_paths(out, ids[2])[0].is_file()


def test_shards_partition_the_ids(tmp_path, capsys):
    ids = [f"id{k}" for k in range(7)]
    parts = [seg.select_shard(ids[::-1], i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == ids and sum(map(len, parts)) == 7
    data = tmp_path / "data"
    _dataset(data, 5, shape=(48, 48))
    seen = []
    for i in range(2):
        out = tmp_path / f"shard{i}"
        assert _run(capsys, "--data", data, "--out", out, "--shard", f"{i}/2")[0] == 0
        seen.append({p.name[: -len("_cellmask.png")] for p in out.glob("*_cellmask.png")})
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(io.list_image_ids(data))
    assert seen[0] == {"img00", "img02", "img04"}


@pytest.mark.parametrize("shard", ["3/2", "a/b", "1/0", "-1/2", "2"])
def test_bad_shard(tmp_path, capsys, shard):
    _dataset(tmp_path / "data", 1, shape=(32, 32))
    rc, _, err = _run(capsys, "--data", tmp_path / "data", "--out", tmp_path / "m", f"--shard={shard}")
    _assert_one_line_error(rc, err, "--shard", shard)


def test_workers_give_the_same_masks(tmp_path, capsys):
    data = tmp_path / "data"
    ids = _dataset(data, 3, shape=(128, 128))
    assert _run(capsys, "--data", data, "--out", tmp_path / "w1")[0] == 0
    assert _run(capsys, "--data", data, "--out", tmp_path / "w2", "--workers", "2")[0] == 0
    for image_id in ids:
        for a, b in zip(io.read_mask_pair(tmp_path / "w1", image_id), io.read_mask_pair(tmp_path / "w2", image_id)):
            np.testing.assert_array_equal(a, b)


def test_missing_channel_file(tmp_path, capsys):
    data = tmp_path / "data"
    _dataset(data, 2, shape=(48, 48))
    (data / "img01_red.png").unlink()
    rc, _, err = _run(capsys, "--data", data, "--out", tmp_path / "m")
    _assert_one_line_error(rc, err, "img01_red", "missing red channel")


def test_channels_of_different_sizes(tmp_path, capsys):
    data = tmp_path / "data"
    _dataset(data, 1, shape=(48, 48))
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(data / "img00_yellow.png")
    rc, _, err = _run(capsys, "--data", data, "--out", tmp_path / "m")
    _assert_one_line_error(rc, err, "img00_yellow.png", "same size")


def test_corrupt_png_leaves_no_partial_masks(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "masks"
    _dataset(data, 3, shape=(64, 64))
    (data / "img01_blue.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    rc, _, err = _run(capsys, "--data", data, "--out", out, "--read-threads", "1")
    _assert_one_line_error(rc, err, "img01_blue.png", "cannot decode")
    assert io.mask_paths(out, "img00")[0].is_file()  # finished before the bad image: kept
    assert not any(p.is_file() for p in io.mask_paths(out, "img01"))
    assert _no_temp_files(out)


def test_unknown_method_and_unknown_id(tmp_path, capsys):
    _dataset(tmp_path / "data", 1, shape=(32, 32))
    rc, _, err = _run(capsys, "--data", tmp_path / "data", "--out", tmp_path / "m", "--method", "cellpose")
    _assert_one_line_error(rc, err, "--method", "cellpose")
    rc, _, err = _run(capsys, "--data", tmp_path / "data", "--out", tmp_path / "m", "--ids", "img00", "nope")
    _assert_one_line_error(rc, err, "--ids", "'nope'")
    with pytest.raises(InputError, match="unknown segmentation method"):
        seg.make_segmenter("cellpose")
    with pytest.raises(InputError, match="unknown option"):
        seg.make_segmenter("watershed", sigma=3)


def test_precomputed_png_and_npz_are_renumbered(tmp_path, capsys):
    data, pre, out = tmp_path / "data", tmp_path / "pre", tmp_path / "masks"
    _dataset(data, 2, shape=(40, 50))
    cells = np.zeros((40, 50), np.int32)
    cells[2:20, 2:20], cells[22:38, 25:48] = 40, 7
    nuclei = np.zeros_like(cells)
    nuclei[8:14, 8:14], nuclei[28:32, 30:40] = 1, 2  # own numbering
    io.write_mask_pair(pre, "img00", cells, nuclei)
    np.savez(pre / "img01.npz", cellmask=cells, nucleimask=nuclei)
    rc, stdout, err = _run(capsys, "--data", data, "--out", out, "--method", "precomputed", "--precomputed", pre)
    assert rc == 0, err
    for image_id in ("img00", "img01"):
        c, n = io.read_mask_pair(out, image_id)
        assert c[10, 10] == 2 and c[30, 30] == 1  # cells numbered in order of their old ids
        assert n[10, 10] == 2 and n[30, 35] == 1
        _assert_convention(c, n)


def test_precomputed_wrong_size(tmp_path, capsys):
    data, pre = tmp_path / "data", tmp_path / "pre"
    _dataset(data, 1, shape=(40, 50))
    io.write_mask_pair(pre, "img00", np.ones((40, 40), np.int32), np.ones((40, 40), np.int32))
    rc, _, err = _run(capsys, "--data", data, "--out", tmp_path / "m", "--method", "precomputed", "--precomputed", pre)
    _assert_one_line_error(rc, err, "img00_cellmask.png", "40x40", "50x40")


def test_precomputed_npz_missing_keys(tmp_path, capsys):
    data, pre = tmp_path / "data", tmp_path / "pre"
    _dataset(data, 1, shape=(40, 50))
    pre.mkdir()
    np.savez(pre / "img00.npz", cells=np.ones((40, 50), np.int32), masks=np.ones((40, 50), np.int32))
    rc, _, err = _run(capsys, "--data", data, "--out", tmp_path / "m", "--method", "precomputed", "--precomputed", pre)
    _assert_one_line_error(rc, err, "img00.npz", "'cells'", "'masks'", "'cell_mask'", "'nucleimask'")


def test_precomputed_cell_mask_alone_is_an_error(tmp_path, capsys):
    data, pre, out = tmp_path / "data", tmp_path / "pre", tmp_path / "m"
    _dataset(data, 1, shape=(40, 50))
    io.write_mask_png(pre / "img00_cellmask.png", np.ones((40, 50), np.int32))
    rc, _, err = _run(capsys, "--data", data, "--out", out, "--method", "precomputed", "--precomputed", pre)
    _assert_one_line_error(rc, err, "img00_nucleimask.png", "both")
    np.savez(pre / "img00.npz", cell_mask=np.ones((40, 50), np.int32))
    (pre / "img00_cellmask.png").unlink()
    rc, _, err = _run(capsys, "--data", data, "--out", out, "--method", "precomputed", "--precomputed", pre)
    _assert_one_line_error(rc, err, "img00.npz", "'cell_mask'")
    assert not out.exists() or not list(out.iterdir())


def test_precomputed_needs_its_folder(tmp_path, capsys):
    _dataset(tmp_path / "data", 1, shape=(32, 32))
    rc, _, err = _run(capsys, "--data", tmp_path / "data", "--out", tmp_path / "m", "--method", "precomputed")
    _assert_one_line_error(rc, err, "--precomputed")
    rc, _, err = _run(capsys, "--data", tmp_path / "data", "--out", tmp_path / "m", "--precomputed", tmp_path)
    _assert_one_line_error(rc, err, "--precomputed", "--method precomputed")


def _tiny_hpa_net(weights, threshold, gain):
    """A 1x1 conv standing in for a DPN-UNet: logits (background 0, border -20,
    interior gain x (weighted channel mean on 0-1 values - threshold)), undoing the
    package's input normalisation."""
    import torch

    conv = torch.nn.Conv2d(3, 3, kernel_size=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        w = torch.tensor(weights, dtype=torch.float32)
        conv.weight[2, :, 0, 0] = gain * w * hpacellseg_adapter._HPA_NORMALIZE_STD
        conv.bias[2] = gain * (float((w * torch.tensor(hpacellseg_adapter._HPA_NORMALIZE_MEAN)).sum()) - threshold)
        conv.bias[1] = -20.0
    return conv


def _tiny_hpa_models():
    return _tiny_hpa_net([1 / 3] * 3, 0.2, 12.0), _tiny_hpa_net([0.5, 0.5, 0.25], 0.04, 100.0)


def _hpa_scene():
    """Three touching cells at HPA's full resolution (its size thresholds are in
    full-resolution pixels: nuclei >= 2500 px, cells >= 5500 px), non-square."""
    return synthetic_field(
        np.random.default_rng(3),
        (384, 512),
        scale=1.0,
        centres=np.array([(130, 140), (150, 380), (300, 260)], float),
        nucleus_brightness_u8=[150, 60, 120],
        cytoplasm_brightness_u8=[80, 40, 100],
    )


def test_hpacellseg_missing_weights(tmp_path, capsys):
    pytest.importorskip("hpacellseg.utils", reason="hpacellseg (HPA-Cell-Segmentation) not installed")
    _dataset(tmp_path / "data", 1, shape=(32, 32))
    rc, _, err = _run(
        capsys,
        "--data",
        tmp_path / "data",
        "--out",
        tmp_path / "m",
        "--method",
        "hpacellseg",
        "--nuclei-model",
        tmp_path / "nope.pth",
        "--cell-model",
        tmp_path / "c.pth",
    )
    _assert_one_line_error(rc, err, "--nuclei-model", "nope.pth", "zenodo")
    rc, _, err = _run(capsys, "--data", tmp_path / "data", "--out", tmp_path / "m", "--method", "hpacellseg")
    _assert_one_line_error(rc, err, "--nuclei-model", "--cell-model")


def test_hpacellseg_cli_loads_pickled_models(tmp_path, capsys):
    pytest.importorskip("hpacellseg.utils", reason="hpacellseg (HPA-Cell-Segmentation) not installed")
    import torch

    nuclei_net, cell_net = _tiny_hpa_models()
    torch.save(nuclei_net, tmp_path / "nuclei.pth")  # whole pickled modules, as HPA publishes
    torch.save(cell_net, tmp_path / "cell.pth")
    image, _ = _hpa_scene()
    io.write_rgby(tmp_path / "data", "scene", image)
    rc, stdout, err = _run(
        capsys,
        "--data",
        tmp_path / "data",
        "--out",
        tmp_path / "m",
        "--method",
        "hpacellseg",
        "--nuclei-model",
        tmp_path / "nuclei.pth",
        "--cell-model",
        tmp_path / "cell.pth",
        "--device",
        "cpu",
    )
    assert rc == 0, err
    assert "3 cells found" in stdout
    (tmp_path / "bad.pth").write_bytes(b"not a model")
    rc, _, err = _run(
        capsys,
        "--data",
        tmp_path / "data",
        "--out",
        tmp_path / "m2",
        "--method",
        "hpacellseg",
        "--nuclei-model",
        tmp_path / "bad.pth",
        "--cell-model",
        tmp_path / "cell.pth",
    )
    _assert_one_line_error(rc, err, "--nuclei-model", "bad.pth", "cannot load")


def test_reference_scores_real_fields_and_precomputed_cell_masks_alone(shared_data, tmp_path, capsys):
    """``--reference`` on the real Kaggle fields (HPA-Cell-Segmentation's masks), with the
    built-in segmenter and with those masks read back as precomputed cells + blue nuclei."""
    import shutil

    fields = shared_data / "hpa_kaggle_fields"
    data, ref = tmp_path / "data", tmp_path / "ref"
    data.mkdir()
    ref.mkdir()
    for path in fields.glob("*.png"):
        shutil.copy(path, (ref if path.name.endswith("_cellmask.png") else data) / path.name)
    rc, stdout, err = _run(capsys, "--data", data, "--out", tmp_path / "m", "--reference", ref, "--quiet")
    assert rc == 0, err
    table = io.read_table(
        tmp_path / "m" / "reference_scores.csv",
        ["ID", "n_true", "n_pred", "f1_iou05", "f1_iou06", "mean_best_iou", "splits", "merges"],
    )
    assert table["ID"].tolist()[-1] == "pooled" and len(table) == 5
    assert all(float(v) >= 0.85 for v in table["f1_iou06"]), table  # learned maps (classical: 0.97-1)
    assert float(table["f1_iou06"].iloc[-1]) >= 0.9, table
    assert "pooled: 55 reference cells" in stdout
    rc, stdout, err = _run(
        capsys,
        "--data",
        data,
        "--out",
        tmp_path / "p",
        "--method",
        "precomputed",
        "--precomputed",
        ref,
        "--nuclei-from",
        "blue",
        "--reference",
        ref,
    )
    assert rc == 0, err
    assert "F1 1.000 at IoU 0.5, 1.000 at IoU 0.6" in stdout
    image_id = table["ID"].iloc[0]
    cells, nuclei = io.read_mask_pair(tmp_path / "p", image_id)
    assert cells.max() == int(table["n_true"].iloc[0]) and len(np.unique(nuclei)) - 1 >= 0.9 * cells.max()
    # Errors: the option of another method, a missing reference folder.
    rc, _, err = _run(capsys, "--data", data, "--out", tmp_path / "x", "--nuclei-from", "blue")
    _assert_one_line_error(rc, err, "--nuclei-from", "--method precomputed")
    rc, _, err = _run(capsys, "--data", data, "--out", tmp_path / "x", "--reference", tmp_path / "none")
    _assert_one_line_error(rc, err, "--reference", "no such folder")


def test_cell_maps_options(tmp_path, capsys):
    _dataset(tmp_path / "data", 1, shape=(64, 64))
    rc, _, _ = _run(capsys, "--data", tmp_path / "data", "--out", tmp_path / "c", "--cell-maps", "classical")
    assert rc == 0 and (tmp_path / "c" / "img00_cellmask.png").is_file()
    rc, _, err = _run(
        capsys, "--data", tmp_path / "data", "--out", tmp_path / "m", "--cell-map-model", tmp_path / "none.npz"
    )
    _assert_one_line_error(rc, err, "none.npz", "no cell-map model there")
    assert not (tmp_path / "m" / "img00_cellmask.png").exists()
    rc, _, err = _run(
        capsys,
        "--data",
        tmp_path / "data",
        "--out",
        tmp_path / "p",
        "--method",
        "precomputed",
        "--precomputed",
        tmp_path / "c",
        "--cell-map-model",
        tmp_path / "none.npz",
    )
    _assert_one_line_error(rc, err, "--cell-map-model", "--method watershed")
