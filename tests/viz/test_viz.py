"""Tests of hpaseg.viz: colours, drawn cells, evaluation figures, feature maps, the classifier study's figures."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.colors import to_hex

from hpaseg import io, viz
from hpaseg.classes import CLASS_NAMES, NEGATIVE, NUM_CLASSES
from hpaseg.errors import InputError
from hpaseg.evaluation import competition_map, study
from hpaseg.submission import (
    CellLabel,
    Prediction,
    SubmissionRow,
    encode_label_image,
)


def test_class_colors_fixed_distinct_and_visible_on_dark_images():
    from skimage.color import deltaE_ciede2000, rgb2lab

    assert len(viz.CLASS_COLORS) == len(viz.CLASS_SHORT_NAMES) == NUM_CLASSES
    assert (
        viz.CLASS_COLORS[0] == "#56B4E9" and viz.CLASS_COLORS[16] == "#E69F00"
    )  # pinned: same in every figure and run
    assert len({c.lower() for c in viz.CLASS_COLORS}) == NUM_CLASSES
    r, g, b = viz.class_rgb(NEGATIVE)
    assert r == g == b  # Negative is grey
    lab = rgb2lab(np.array([viz.class_rgb(k) for k in range(NUM_CLASSES)], float)[None] / 255)[0]
    assert lab[:, 0].min() >= 45  # light enough to see on a dark fluorescence image
    n = NUM_CLASSES
    d = deltaE_ciede2000(lab[:, None, :].repeat(n, 1), lab[None, :, :].repeat(n, 0))
    assert d[~np.eye(n, dtype=bool)].min() >= 7.5  # no two classes look alike to normal vision
    assert max(len(s) for s in viz.CLASS_SHORT_NAMES) <= 15


def test_stretch_and_display_keep_shape():
    img = np.zeros((5, 7, 4), np.uint8)
    img[2, 3, 1] = 40
    shown = viz.display_rgb(img)
    assert shown.shape == (5, 7, 3) and shown.dtype == np.uint8
    assert shown[2, 3, 1] == 255  # a dim channel is stretched to full range for display


def _three_cells() -> np.ndarray:
    labels = np.zeros((60, 90), np.int32)
    labels[5:30, 5:40] = 1
    labels[5:30, 40:80] = 2  # touches cell 1
    labels[35:55, 10:50] = 3
    return labels


def _segments_by_color(ax) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {}
    for coll in ax.collections:
        if isinstance(coll, LineCollection):
            color = to_hex(coll.get_colors()[0]).upper()
            out.setdefault(color, []).extend(coll.get_segments())
    return out


def test_outlines_coloured_by_top_class_ties_dashed_unlabelled_white():
    labels = _three_cells()
    image = np.zeros(labels.shape + (4,), np.uint8)
    cells = {1: [(0, 0.9), (16, 0.4)], 2: [(5, 1.0), (16, 1.0)]}  # cell 3 has no label
    fig = viz.plot_cell_panels(image, [viz.CellPanel("pred", labels, cells, "top")])
    ax = fig.axes[0]
    segs = _segments_by_color(ax)

    def inside(seg, cell):
        return labels[np.clip(np.rint(seg[:, 1]).astype(int), 0, 59), np.clip(np.rint(seg[:, 0]).astype(int), 0, 89)]

    # cell 1 in Nucleoplasm's colour, its outline inside cell 1 (not on cell 2's side of the shared edge)
    assert set(np.unique(np.concatenate([inside(s, 1) for s in segs[viz.CLASS_COLORS[0]]]))) == {1}
    assert viz.CLASS_COLORS[16] in segs  # cell 2: tied top classes take turns along the outline
    tied = [
        c
        for c in ax.collections
        if isinstance(c, LineCollection)
        and to_hex(c.get_colors()[0]).upper() in (viz.CLASS_COLORS[5], viz.CLASS_COLORS[16])
    ]
    assert all(c.get_linestyle()[0][1] is not None for c in tied)  # dashed
    assert set(np.unique(np.concatenate([inside(s, 2) for s in segs[viz.CLASS_COLORS[5]]]))) == {2}
    assert viz.UNLABELLED_COLOR in segs  # cell 3
    # the 16 (Cytosol) of cell 1 is not its top class: no Cytosol outline around cell 1
    assert set(np.unique(np.concatenate([inside(s, 2) for s in segs[viz.CLASS_COLORS[16]]]))) == {2}
    texts = [t.get_text() for t in ax.texts]
    assert "Nucleoplasm\n0.90" in texts


def test_panels_legend_names_classes_and_image_keeps_its_aspect():
    labels = _three_cells()
    image = np.zeros(labels.shape + (4,), np.uint8)
    pred = viz.CellPanel("Prediction", labels, {1: [(16, 0.8)], 2: [(0, 0.7)], 3: [(NEGATIVE, 0.6)]}, "top")
    truth = viz.CellPanel("Truth", labels, {1: [(16, 1.0)], 2: [(0, 1.0), (2, 1.0)]}, "all")
    fig = viz.plot_cell_panels(image, [pred, truth], title="img")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [
        CLASS_NAMES[0],
        CLASS_NAMES[2],
        CLASS_NAMES[16],
        CLASS_NAMES[NEGATIVE],
        "no label",
    ]  # names, class order
    for ax in fig.axes:
        assert ax.get_images()[0].get_array().shape[:2] == labels.shape  # not resampled
        assert ax.get_aspect() == 1.0  # square pixels
    assert "Nuc. membrane" not in [t.get_text() for t in fig.axes[1].texts]
    assert "Nucleoli\nNucleoplasm" in [t.get_text() for t in fig.axes[1].texts] or "Nucleoplasm\nNucleoli" in [
        t.get_text() for t in fig.axes[1].texts
    ]
    rgb = viz.figure_to_rgb(fig)
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8
    with pytest.raises(ValueError, match="labels are"):
        viz.plot_cell_panels(image[:10], [pred])


def test_real_hpa_field_outlines_at_full_resolution(shared_data):
    """1000_A12_2 (2048 px, green channel only, 21 reference cells): every cell outlined
    inside itself, text only in the cells, missing channels titled empty."""
    folder = shared_data / "hpa_1000_A12_2"
    green = io.read_channel(folder / "1000_A12_2_green.png")
    image = np.zeros(green.shape + (4,), np.uint8)
    image[..., 1] = green
    labels = io.read_mask(folder / "1000_A12_2_cellmask.png")
    cells = {c: [(0, 0.8), (16, 0.3)] if c % 2 else [(16, 0.7)] for c in range(1, int(labels.max()) + 1)}
    fig = viz.plot_cell_panels(image, [viz.CellPanel("prediction", labels, cells, "top")], pixel_size_um=0.1)
    ax = fig.axes[0]
    segs = _segments_by_color(ax)
    for k, cell_parity in ((0, 1), (16, 0)):
        points = np.concatenate(segs[viz.CLASS_COLORS[k]])
        owners = labels[np.rint(points[:, 1]).astype(int), np.rint(points[:, 0]).astype(int)]
        assert (owners % 2 == cell_parity).all() and (owners > 0).all()  # on their own cells, inset from the edge
    texts = [t for t in ax.texts if t.get_text().startswith(("Nucleoplasm", "Cytosol"))]
    assert len(texts) == 21
    for t in texts:
        x, y = t.get_position()
        assert 0 <= x < 2048 and 0 <= y < 2048
    titles = [a.get_title() for a in viz.plot_channels(image).axes]
    assert titles[2] == "Protein (green)" and titles[1].endswith("empty")


def test_plot_channels_has_composite_and_four_named_channels():
    fig = viz.plot_channels(np.zeros((20, 30, 4), np.uint8), title="x", pixel_size_um=0.5)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Composite (RGBY)"] + [
        f"{n}: empty" for n in ("Microtubules (red)", "Protein (green)", "Nucleus (blue)", "ER (yellow)")
    ]
    assert "30 × 20 px" in fig._suptitle.get_text()


def test_cells_from_submission_row_and_grouping():
    labels = np.array([[1, 1, 0, 2]])
    enc = encode_label_image(labels)
    row = SubmissionRow(
        "a", 4, 1, [Prediction(0, 0.3, enc[2]), Prediction(16, 0.9, enc[1]), Prediction(5, 0.6, enc[2])]
    )
    out, cells = viz.cells_from_submission_row(row)
    assert out.tolist() == [[2, 2, 0, 1]]  # numbered in order of first appearance
    assert cells == {1: [(5, 0.6), (0, 0.3)], 2: [(16, 0.9)]}
    grouped = viz.group_cell_labels([CellLabel("a", 2, 3, 0.1), CellLabel("b", 1, 0, 0.5), CellLabel("a", 2, 7, 0.8)])
    assert grouped == {"a": {2: [(7, 0.8), (3, 0.1)]}, "b": {1: [(0, 0.5)]}}


def _hand_truth_and_submission():
    labels = np.zeros((4, 6), np.int32)
    labels[:2, :3], labels[:2, 3:], labels[2:, :] = 1, 2, 3
    enc = encode_label_image(labels)
    truth = [
        SubmissionRow("good", 6, 4, [Prediction(0, 1.0, enc[1]), Prediction(16, 1.0, enc[2])]),
        SubmissionRow("bad", 6, 4, [Prediction(0, 1.0, enc[1]), Prediction(5, 1.0, enc[3])]),
        SubmissionRow("empty", 6, 4, []),
    ]
    sub = [
        SubmissionRow("good", 6, 4, [Prediction(0, 0.9, enc[1]), Prediction(16, 0.8, enc[2])]),
        SubmissionRow("bad", 6, 4, [Prediction(16, 0.9, enc[1]), Prediction(0, 0.2, enc[2])]),
    ]
    return truth, sub


def test_ap_bars_one_per_class_with_true_cells():
    truth, sub = _hand_truth_and_submission()
    result = competition_map(truth, sub)
    fig = viz.plot_class_ap(result, title="t")
    ax = fig.axes[0]
    n_with_truth = sum(1 for k in range(NUM_CLASSES) if result.n_true[k])
    assert len(ax.patches) == n_with_truth == 3
    assert [t.get_text() for t in ax.get_yticklabels()] == list(CLASS_NAMES)
    assert any("mAP = " in t.get_text() for t in fig.legends[0].get_texts())
    assert any("(1 true, 0 predicted)" in t.get_text() for t in ax.texts)  # Nuclear bodies: missed


def test_confusion_grid_shape_and_hide_empty():
    conf = np.zeros((NUM_CLASSES, 2, 2), np.int64)
    conf[:, 0, 0] = 10
    conf[3] = [[5, 1], [2, 3]]
    conf[7] = [[6, 0], [1, 0]]
    fig = viz.plot_confusion_grid(conf, ncols=5)
    assert len([a for a in fig.axes if a.get_visible() and a.axison]) == NUM_CLASSES
    assert len(fig.axes) == 20  # 4 rows x 5
    fig = viz.plot_confusion_grid(conf, hide_empty=True)
    shown = [a for a in fig.axes if a.axison]
    assert [a.get_title().replace("\n", " ") for a in shown] == ["Nucleoli fibrillar center", "Golgi apparatus"]
    assert "3\n60%" in [t.get_text() for t in shown[0].texts]  # TP count and share of the true row
    with pytest.raises(ValueError, match=r"expected \(C, 2, 2\)"):
        viz.plot_confusion_grid(np.zeros((3, 2)))


def test_feature_maps_hook_shape_keeps_aspect_and_names_layers():
    import torch

    from hpaseg.detection.models import build_maskrcnn

    torch.manual_seed(0)
    model = build_maskrcnn("densenet121", image_size=64, pretrained=None)
    model.train()
    image = np.random.default_rng(0).integers(0, 255, (64, 96, 4), dtype=np.uint8)  # 2:3 -> 43 x 64 working size
    maps = viz.feature_maps(model, image, "denseblock1")
    assert maps.shape == (256, 11, 16) and maps.dtype == np.float32  # stride 4, padding cropped off
    assert model.training  # mode restored
    assert viz.feature_maps(model, torch.rand(4, 64, 64), "backbone.body.transition1").shape[0] == 128
    with pytest.raises(InputError, match="layer 'denseblock9' is not in the model; expected one of .*denseblock4"):
        viz.feature_maps(model, image, "denseblock9")
    grid, channels = viz.feature_grid(maps, n_channels=6, ncols=3)
    assert grid.shape == (2 * 11 + 1, 3 * 16 + 2) and len(channels) == 6
    assert channels == viz.top_channels(maps, 6)
    fig = viz.plot_feature_maps(maps, layer="denseblock1", image=image, n_channels=6, ncols=4)
    assert sum(1 for a in fig.axes if a.axison) == 7


def _write_csv(path: Path, header, rows) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture()
def ablation_dir(tmp_path) -> Path:
    """A tiny results folder in the exact format of ``hpaseg ablation``."""
    configs = ["resnet50-bce-standard", "resnet50-focal-cutmix", "efficientnet_b0-bce-standard"]
    _write_csv(
        tmp_path / "results.csv",
        study.RESULTS_COLUMNS,
        [
            [c, "image", c.split("-")[0], c.split("-")[1], c.split("-")[2], "rgby", 64, 2, f1, f1t, ap, 12.5]
            for c, f1, f1t, ap in zip(configs, ["0.21", "0.35", "0.1"], ["0.3", "", "0.2"], ["0.4", "0.55", "0.25"])
        ],
    )
    _write_csv(
        tmp_path / "per_class_ap.csv",
        study.PER_CLASS_AP_COLUMNS,
        [
            [c, k, CLASS_NAMES[k], "" if k in (3, 11) else f"{(i + k) % 10 / 10:.2f}"]
            for i, c in enumerate(configs)
            for k in range(NUM_CLASSES)
        ],
    )
    _write_csv(
        tmp_path / "confusion.csv",
        study.CONFUSION_COLUMNS,
        [[c, k, CLASS_NAMES[k], 20, k % 3, 1, k % 4] for c in configs for k in range(NUM_CLASSES)],
    )
    return tmp_path


def test_ablation_tables_and_plots(ablation_dir):
    rows = io.read_table(ablation_dir / "results.csv", study.RESULTS_COLUMNS)
    results = study.ablation_results(rows)
    assert results["config"].tolist()[0] == "resnet50-bce-standard"
    assert results.iloc[0]["image_size"] == 64 and math.isnan(results.iloc[1]["macro_f1_tuned"])
    assert study.best_configuration(results) == "resnet50-focal-cutmix"
    table = viz.results_markdown(results)
    assert table.splitlines()[2].startswith("| resnet50-focal-cutmix |") and "| – |" in table
    fig = viz.plot_ablation_metrics(results)
    assert len(fig.axes[0].patches) == 3 * 3  # configurations x metrics
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][0] == "resnet50-focal-cutmix"  # best on top
    configs, ap = study.per_class_ap_matrix(
        io.read_table(ablation_dir / "per_class_ap.csv", study.PER_CLASS_AP_COLUMNS)
    )
    assert ap.shape == (3, NUM_CLASSES) and np.isnan(ap[:, [3, 11]]).all() and not np.isnan(ap[:, 0]).any()
    fig = viz.plot_ap_heatmap(configs, ap)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(viz.CLASS_SHORT_NAMES)
    assert sum(1 for t in fig.axes[0].texts if t.get_text() == "–") == 2 * 3
    confusions = study.confusion_by_config(io.read_table(ablation_dir / "confusion.csv", study.CONFUSION_COLUMNS))
    ids, conf = confusions["resnet50-bce-standard"]
    assert (
        ids == list(range(NUM_CLASSES)) and conf.shape == (NUM_CLASSES, 2, 2) and conf[5].tolist() == [[20, 2], [1, 1]]
    )
