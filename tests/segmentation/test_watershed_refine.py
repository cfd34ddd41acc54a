"""Tests of the refinements of the watershed segmenter chosen by leave-one-field-out on
real fields (``python -m hpaseg.bench segreal``): joining a nucleus split across a wide
neck, the distance cost of the cell flood, and the LOFO bench itself."""

from __future__ import annotations

import numpy as np
import pytest

from hpaseg import io
from hpaseg.bench import segreal
from hpaseg.errors import InputError
from hpaseg.evaluation.segmentation import SegmentationScore
from hpaseg.segmentation import WatershedParams, grow_cells, segment_nuclei
from hpaseg.segmentation.cellmaps import load_cell_map_model
from hpaseg.segmentation.watershed import InteriorMap, _join_wide_necks


def _peanut(waist: int) -> np.ndarray:
    """Two overlapping discs (radius 12 px) 20 px apart, joined by a waist ``waist`` px wide."""
    yy, xx = np.mgrid[:64, :80]
    blobs = ((yy - 32) ** 2 + (xx - 28) ** 2 <= 144) | ((yy - 32) ** 2 + (xx - 52) ** 2 <= 144)
    bridge = (np.abs(yy - 32) <= waist // 2) & (xx >= 28) & (xx <= 52)
    return np.where(blobs | bridge, 120.0, 0.0).astype(np.float32)


def test_join_wide_necks_joins_only_passes_above_the_fraction():
    labels = np.array([[1, 1, 2, 2, 3, 3]])
    relief = np.array([[1.0, 3.0, 2.5, 3.0, 1.0, 2.0]])
    assert _join_wide_necks(labels, relief, 0.7).tolist() == [[1, 1, 1, 1, 2, 2]]
    assert _join_wide_necks(labels, relief, 0.9).tolist() == labels.tolist()
    assert _join_wide_necks(labels, relief, 0.3).tolist() == [[1, 1, 1, 1, 1, 1]]


def test_nucleus_with_a_wide_waist_stays_whole_two_pressed_nuclei_stay_apart():
    params = WatershedParams(nucleus_split_height_px_at_2048=5.0, nucleus_merge_neck_fraction=0.7)
    wide = segment_nuclei(_peanut(20), scale=0.1, params=params)
    narrow = segment_nuclei(_peanut(4), scale=0.1, params=params)
    assert int(wide.max()) == 1
    assert int(narrow.max()) == 2
    # without the join, the wide waist is split by the absolute height alone
    split = segment_nuclei(
        _peanut(20),
        scale=0.1,
        params=WatershedParams(nucleus_split_height_px_at_2048=5.0, nucleus_merge_neck_fraction=0.0),
    )
    assert int(split.max()) == 2


def test_distance_cost_moves_the_boundary_between_even_cells_towards_the_middle():
    """Two nuclei in one bright slab whose brightness rises to the right: the flood of plain
    intensity lets the right cell take most of the slab; with the distance cost the
    boundary comes back towards the midpoint between the nuclei."""
    nuclei = np.zeros((40, 120), np.int32)
    nuclei[15:25, 20:30] = 1
    nuclei[15:25, 90:100] = 2
    ramp = np.tile(np.linspace(0.6, 1.4, 120, dtype=np.float32), (40, 1))
    stain = InteriorMap(ramp * 80, 10.0, ramp, 0.1)
    base = WatershedParams(relief_edge_weight=0.0, seam_fraction=0.0, min_cell_area_px_at_2048=0.0)
    plain = grow_cells(nuclei, stain, scale=0.1, params=base)
    dist = grow_cells(nuclei, stain, scale=0.1, params=WatershedParams(**{**vars(base), "relief_distance_weight": 1.0}))
    middle = 60
    border_plain = int(np.argmax(plain[20] == 2))
    border_dist = int(np.argmax(dist[20] == 2))
    assert abs(border_dist - middle) < abs(border_plain - middle)
    assert abs(border_dist - middle) <= 6


@pytest.mark.parametrize(
    "kw",
    [{"nucleus_merge_neck_fraction": 1.0}, {"nucleus_merge_neck_fraction": -0.1}, {"relief_distance_weight": -1.0}],
)
def test_new_parameters_are_checked(kw):
    with pytest.raises(InputError):
        WatershedParams(**kw)


def test_choose_lofo_never_uses_the_left_out_field():
    s = SegmentationScore
    good, bad = s(4, 4, 4, 4, 0, 0), s(4, 4, 0, 0, 0, 0)
    # setting 0 (the defaults) is perfect on a only; setting 1 on b, c and d
    scores = [{"a": good, "b": bad, "c": bad, "d": bad}, {"a": bad, "b": good, "c": good, "d": good}]
    chosen = segreal.choose_lofo(scores, ["a", "b", "c", "d"])
    assert chosen == {"a": 1, "b": 1, "c": 1, "d": 1, "all": 1}
    # with only a and b, leaving b out picks setting 0 (perfect on a), leaving a out setting 1
    assert segreal.choose_lofo(scores, ["a", "b"]) == {"a": 1, "b": 0, "all": 0}
    # a tie goes to the earlier candidate (grid order), never to today's defaults as such
    tie = [{"a": good, "b": good}, {"a": good, "b": good}, {"a": good, "b": good}]
    assert segreal.choose_lofo(tie, ["a", "b"])["all"] == 0
    assert segreal.choose_lofo(tie, ["a", "b"], candidates=[2, 1])["all"] == 2


def test_grid_settings_rejects_unknown_parameters():
    with pytest.raises(InputError, match="unknown parameter"):
        segreal.grid_settings({"no_such_knob": [1]})


def test_bench_segreal_runs_on_small_fields_with_and_without_green(tmp_path, capsys):
    from hpaseg.synth import image_rng, synth_image

    for k, folder in enumerate(("a", "a", "b")):
        drawn = synth_image(image_rng(k, "test", 0), 256)
        image, cells = np.asarray(drawn.image), np.asarray(drawn.cell_mask)
        out = tmp_path / folder
        out.mkdir(exist_ok=True)
        io.write_rgby(out, f"f{k}", image)
        io.write_mask_png(out / f"f{k}_cellmask.png", cells)
    (tmp_path / "b" / "f2_green.png").unlink()
    grid = tmp_path / "grid.json"
    io.write_json(grid, {"nucleus_merge_neck_fraction": [0.0, 0.7]})
    model = tmp_path / "maps.npz"
    argv = [str(tmp_path / "a"), "--check", str(tmp_path / "b"), "--grid", str(grid), "--quiet"]
    fast = [
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--pixels-per-field",
        "3000",
        "--save-model",
        str(model),
        "--synthetic",
        "1",
        "--zooms",
        "0.8",
        "1",
    ]
    assert segreal.main(argv + fast + ["--out-json", str(tmp_path / "s.json")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any("f2: no green file" in line for line in lines)
    assert any(line.startswith("check f2 (classical):") for line in lines)
    assert any(line.startswith("check f2 (learned, fitted on all fields):") for line in lines)
    assert lines[-1].startswith("lofo_f1=") and "fields=2 settings=2 seeds=2 synthetic=1 zooms=0.8,1" in lines[-1]
    result = io.read_json(tmp_path / "s.json")
    assert result["learned"]["synthetic"] == {"fields": 1, "seed": segreal.SYNTHETIC_SEED}
    assert result["learned"]["zooms"] == [0.8, 1.0]
    # LOFO: each field scored by a model fitted without it; the saved model is the all-fields one
    assert set(result["learned"]["lofo"]["0"]) == {"f0", "f1"} and len(result["learned"]["pooled_f1_06"]["lofo"]) == 2
    fitted = load_cell_map_model(model).meta["fitted"]
    assert "'f0', 'f1', 'synthetic:synth_test_0000'" in fitted  # the real fields and the synthetic one
    assert segreal.main(argv[:1] + ["--synthetic", "-1"]) == 2
    assert "--synthetic: expected a count >= 0, got -1" in capsys.readouterr().err
    assert segreal.main(argv[:1] + ["--zooms", "1", "0"]) == 2
    assert "--zooms: expected factors > 0, got 1 0" in capsys.readouterr().err
    assert segreal.main([str(tmp_path / "a"), "--maps", "classical", "--grid", str(grid), "--quiet"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("seeds=0 synthetic=0 zooms=-")
    assert segreal.main([str(tmp_path / "a"), "--maps", "classical", "--save-model", str(model)]) == 2
    assert "--save-model: needs --maps learned" in capsys.readouterr().err
