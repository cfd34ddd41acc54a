"""The learned cell maps of the built-in segmenter (hpaseg.segmentation.cellmaps): features
that read dim and bright fields alike, a model that learns cells from reference masks, its
file round trip and errors, the shipped weights, and the segmenter using them."""

from __future__ import annotations

import numpy as np
import pytest

from hpaseg.errors import InputError
from hpaseg.evaluation.segmentation import score_segmentation
from hpaseg.segmentation import WatershedParams, segment_watershed
from hpaseg.segmentation.cellmaps import (
    DEFAULT_MODEL_PATH,
    FEATURE_VERSION,
    CellMapModel,
    load_cell_map_model,
    n_features,
    pixel_features,
)
from hpaseg.segmentation.fit_cellmaps import fit_cell_map_model, training_field, training_views
from hpaseg.synth import image_rng, synth_image


def _field(seed: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    drawn = synth_image(image_rng(seed, "test", 0), size)
    return np.asarray(drawn.image), np.asarray(drawn.cell_mask)


@pytest.fixture(scope="module")
def small_model() -> CellMapModel:
    fields = [training_field(*_field(seed)) for seed in (1, 2)]
    return fit_cell_map_model(fields, pixels_per_field=20_000, epochs=6, hidden=16, seed=0, names=["a", "b"])


def test_features_read_a_dimmer_field_alike():
    image, _ = _field(3)
    work = image.astype(np.float32)
    nuclei = np.zeros(work.shape[:2], np.int32)
    nuclei[100:120, 100:120] = 1
    bright = pixel_features(work, 0.125, nuclei)
    dim = pixel_features(work * 0.3, 0.125, nuclei)
    assert bright.shape == (256, 256, n_features())
    # background subtracted and divided by the typical stained level: a gain changes nothing
    assert np.abs(bright - dim).max() < 0.05 * np.abs(bright).max()


def test_fitted_model_finds_the_cells_of_a_field_it_never_saw(small_model):
    features, is_cell, distance = training_field(*_field(7))
    p_cell, p_distance = small_model.predict(features)
    assert p_cell.shape == is_cell.shape and p_cell.dtype == np.float32
    accuracy = np.mean((p_cell > 0.5) == is_cell)
    assert accuracy > 0.85, accuracy
    inside = is_cell
    assert np.corrcoef(p_distance[inside], distance[inside])[0, 1] > 0.5


def test_zoomed_views_show_the_field_with_larger_or_smaller_cells():
    image, cells = _field(4)
    plain = training_field(image, cells)
    small, same, large = training_views(image, cells, (0.8, 1.0, 1.25))
    for a, b in zip(same, plain):  # zoom 1 is the field as it is
        np.testing.assert_array_equal(a, b)
    # the cells are larger against the nominal scale at zoom 1.25: the distance to their edge
    # (in units of a nominal cell radius) is larger, and smaller at zoom 0.8
    depth = [float(d[fg].mean()) for _, fg, d in (small, same, large)]
    assert depth[0] < depth[1] < depth[2], depth
    with pytest.raises(InputError, match="zoom 0.0: expected a number > 0"):
        training_field(image, cells, zoom=0.0)
    with pytest.raises(InputError, match="zooms: expected at least one"):
        training_views(image, cells, ())


def test_a_field_with_several_views_counts_as_much_as_one_with_one():
    views = training_views(*_field(5), (0.8, 1.0, 1.25))
    one = training_field(*_field(6))
    model = fit_cell_map_model([views, one], pixels_per_field=3001, epochs=1, hidden=8, seed=0)
    assert model.meta["pixels"] == 2 * 3001  # 1001 + 1000 + 1000 from the views, 3001 from the other field


def test_model_file_round_trip(small_model, tmp_path):
    path = tmp_path / "maps.npz"
    small_model.save(path)
    loaded = load_cell_map_model(path)
    features = np.random.default_rng(0).normal(size=(5, 7, n_features())).astype(np.float32)
    for a, b in zip(small_model.predict(features), loaded.predict(features)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert "'a', 'b'" in loaded.meta["fitted"]  # provenance: the fields it was fitted on
    with pytest.raises(ValueError, match="expected 51 per pixel"):
        loaded.predict(features[..., :10])


def test_bad_model_files_are_one_line_errors_naming_them(small_model, tmp_path):
    with pytest.raises(InputError, match="no cell-map model there"):
        load_cell_map_model(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not an npz")
    with pytest.raises(InputError, match="junk.npz: cannot read a cell-map model"):
        load_cell_map_model(junk)
    old = tmp_path / "old.npz"
    small_model.save(old)
    data = dict(np.load(old))
    data["feature_version"] = np.array(FEATURE_VERSION + 1)
    np.savez(old, **data)
    with pytest.raises(InputError, match="feature version"):
        load_cell_map_model(old)
    with pytest.raises(InputError, match="cell_maps: expected one of learned, classical"):
        WatershedParams(cell_maps="unet")


def test_shipped_model_loads_and_was_fitted_on_real_fields():
    model = load_cell_map_model()
    assert DEFAULT_MODEL_PATH.is_file()
    assert model.mean.shape == (n_features(),)
    assert "-11e8-" in model.meta["fitted"]  # Kaggle HPA-SCC image IDs


def test_segmenter_uses_the_maps_it_is_given(small_model, tmp_path):
    image, truth = _field(9)
    classical, _ = segment_watershed(image, params=WatershedParams(cell_maps="classical"))
    shipped, _ = segment_watershed(image)
    in_memory, _ = segment_watershed(image, model=small_model)
    path = tmp_path / "m.npz"
    small_model.save(path)
    from_file, _ = segment_watershed(image, params=WatershedParams(cell_map_model=str(path)))
    np.testing.assert_array_equal(in_memory, from_file)
    for cells in (classical, shipped, in_memory):
        assert score_segmentation(truth, cells).f1_05 >= 0.7
    # a model that calls every pixel background leaves no cytoplasm beyond the nuclei
    w, b = small_model.layers[-1]
    empty = CellMapModel(
        small_model.layers[:-1] + ((np.zeros_like(w), np.array([-30.0, 0.0], np.float32)),),
        small_model.mean,
        small_model.std,
    )
    assert np.count_nonzero(segment_watershed(image, model=empty)[0]) < np.count_nonzero(in_memory)
