"""The built-in segmenter against HPA-Cell-Segmentation's masks of real Kaggle HPA-SCC
fields (../shared/data/hpa_kaggle_fields), and precomputed cell masks alone with nuclei
found in the blue channel.

Classical maps, measured when the thresholds were set: F1 at IoU 0.6 of 1.000, 1.000,
0.973 and 1.000 on the four fields (pooled 0.991, mean best IoU 0.880); with the whole
image dimmed to 0.2x or brightened to 1.4x every field stays >= 0.9. The learned maps
(the default; fitted on these four and three more fields) are held to a looser bar: their
point is fields never seen (leave-one-field-out below and in benchmarks/RESULTS.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hpaseg import io
from hpaseg.evaluation.segmentation import pool_scores, score_segmentation
from hpaseg.segmentation import PrecomputedSegmenter, WatershedParams, segment_watershed


@pytest.fixture(scope="module")
def kaggle_fields(shared_data) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder = shared_data / "hpa_kaggle_fields"
    ids = sorted(p.name[: -len("_cellmask.png")] for p in folder.glob("*_cellmask.png"))
    assert len(ids) == 4
    return {i: (io.read_rgby(folder, i), io.read_mask(folder / f"{i}_cellmask.png")) for i in ids}


#: (per-field, pooled) F1 at IoU 0.6 each kind of cell maps must reach on the four fields.
BARS = {"classical": (0.9, 0.95), "learned": (0.85, 0.9)}


def _scores(fields, gain: float = 1.0, maps: str = "learned"):
    out = {}
    for image_id, (image, reference) in fields.items():
        if gain != 1.0:
            image = np.clip(np.rint(image.astype(np.float32) * gain), 0, 255).astype(np.uint8)
        cells, nuclei = segment_watershed(image, params=WatershedParams(cell_maps=maps))
        assert cells.shape == reference.shape and cells.dtype == np.int32
        inside = nuclei > 0
        assert (cells[inside] == nuclei[inside]).all()  # nucleus k inside cell k
        assert set(np.unique(nuclei)) == set(np.unique(cells))  # one nucleus per cell
        out[image_id] = score_segmentation(reference, cells)
    return out


@pytest.mark.parametrize("maps", sorted(BARS))
def test_every_real_field_agrees_with_hpa_cell_segmentation(kaggle_fields, maps):
    field_bar, pooled_bar = BARS[maps]
    scores = _scores(kaggle_fields, maps=maps)
    for image_id, s in scores.items():
        assert s.f1_06 >= field_bar, (image_id, s.row())
    pooled = pool_scores(list(scores.values()))
    assert pooled.f1_06 >= pooled_bar and pooled.mean_best_iou >= 0.8, pooled.row()


@pytest.mark.parametrize("maps", sorted(BARS))
@pytest.mark.parametrize("gain", [0.2, 1.4])
def test_agreement_holds_for_dimmer_and_brighter_fields(kaggle_fields, gain, maps):
    for image_id, s in _scores(kaggle_fields, gain, maps).items():
        assert s.f1_06 >= BARS[maps][0], (gain, image_id, s.row())


def test_precomputed_cell_masks_alone_get_nuclei_from_blue(kaggle_fields, tmp_path):
    for image_id, (_, reference) in kaggle_fields.items():
        io.write_mask_png(tmp_path / f"{image_id}_cellmask.png", reference)
    segmenter = PrecomputedSegmenter(Path(tmp_path), nuclei_from="blue")
    assert segmenter.needs_pixels
    for image_id, (image, reference) in kaggle_fields.items():
        cells, nuclei = segmenter.segment(image, image_id)
        assert score_segmentation(reference, cells).f1_06 == 1.0  # the cells as given, renumbered
        with_nucleus = set(np.unique(nuclei)) - {0}
        assert len(with_nucleus) >= 0.9 * cells.max(), (image_id, len(with_nucleus), cells.max())
        inside = nuclei > 0
        assert (cells[inside] == nuclei[inside]).all()


def test_learned_maps_hold_on_real_fields_left_out(shared_data, tmp_path, capsys):
    """Leave-one-field-out over the four real fields: the cell-map model fitted on three
    (a smaller fit than the shipped one) segments the fourth as HPA does."""
    from hpaseg.bench import segreal

    argv = [str(shared_data / "hpa_kaggle_fields"), "--maps", "learned", "--seeds", "1", "--quiet"]
    argv += ["--epochs", "8", "--pixels-per-field", "40000", "--out-json", str(tmp_path / "s.json")]
    assert segreal.main(argv) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    lofo = float(last.split()[0].split("=")[1])
    assert lofo >= 0.85, last  # measured 0.883 with this small fit
    scores = io.read_json(tmp_path / "s.json")["learned"]["lofo"]["0"]
    assert len(scores) == 4
