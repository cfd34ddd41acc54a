"""Tests of hpaseg.segmentation: quality on real and synthetic images, the methods' library parts."""

from __future__ import annotations

import numpy as np
import pytest

from hpaseg import segmentation as seg
from hpaseg.classes import Channel
from hpaseg.errors import InputError
from hpaseg.evaluation import match_label_images
from hpaseg.segmentation import hpacellseg as hpacellseg_adapter
from hpaseg.synth import synthetic_field

CELL_IOU = 0.6


def _assert_convention(cells: np.ndarray, nuclei: np.ndarray, *, min_inside: float = 0.99) -> None:
    """Cells 1..N contiguous, nucleus ids = cell ids, nucleus k inside cell k."""
    n = int(cells.max())
    assert set(np.unique(cells)) == set(range(n + 1))
    assert set(np.unique(nuclei)) == set(range(n + 1))
    inside = nuclei > 0
    if inside.any():
        assert np.mean(cells[inside] == nuclei[inside]) >= min_inside


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


def test_hpacellseg_missing_package_is_explained(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "hpacellseg.utils", None)  # as if not installed
    with pytest.raises(InputError, match=r"pip install 'hpaseg\[hpacellseg\]'"):
        seg.make_segmenter("hpacellseg", nuclei_model="n.pth", cell_model="c.pth")


def test_hpacellseg_adapter_with_tiny_networks():
    """The real package's label_cell on predictions of tiny networks. Measured: 3/3 cells
    at mean IoU 0.94, 3/3 nuclei at 0.93."""
    pytest.importorskip("hpacellseg.utils", reason="hpacellseg (HPA-Cell-Segmentation) not installed")
    nuclei_net, cell_net = _tiny_hpa_models()
    segmenter = seg.make_segmenter(
        "hpacellseg", nuclei_model=nuclei_net, cell_model=cell_net, device="cpu", scale_factor=0.25
    )
    image, truth = _hpa_scene()
    cells, nuclei = segmenter.segment(image, "scene")
    assert cells.shape == nuclei.shape == (384, 512) and cells.dtype == np.int32  # original, non-square size
    _assert_convention(cells, nuclei, min_inside=1.0)
    m = match_label_images(truth.cell_mask, cells, iou_threshold=CELL_IOU)
    assert m.n_matched >= 3 and m.precision == 1.0, m
    assert match_label_images(truth.nuclei_mask, nuclei, iou_threshold=CELL_IOU).n_matched >= 3
    padded = seg.HpaCellSegSegmenter(nuclei_net, cell_net, padding=True).segment(image, "scene")[0]
    assert match_label_images(truth.cell_mask, padded, iou_threshold=CELL_IOU).n_matched >= 3


def test_hpacellseg_predictions_equal_the_packages_own_runner(monkeypatch):
    """CellSegmentator.pred_* (needs OpenCV) give the same bytes as our runner on a square
    image, once its removed skimage argument (multichannel) is translated."""
    pytest.importorskip("hpacellseg.utils", reason="hpacellseg (HPA-Cell-Segmentation) not installed")
    pytest.importorskip("cv2", reason="OpenCV (an hpacellseg dependency) not installed")
    import types

    import hpacellseg.cellsegmentator as cellsegmentator
    from skimage import transform

    def rescale(image, scale, multichannel=False, **kwargs):
        return transform.rescale(image, scale, channel_axis=-1 if multichannel else None, **kwargs)

    monkeypatch.setattr(cellsegmentator, "transform", types.SimpleNamespace(rescale=rescale))
    np.testing.assert_allclose(cellsegmentator.NORMALIZE["mean"], hpacellseg_adapter._HPA_NORMALIZE_MEAN)
    nuclei_net, cell_net = _tiny_hpa_models()
    ours = seg.HpaCellSegSegmenter(nuclei_net, cell_net)
    theirs = cellsegmentator.CellSegmentator(
        nuclei_model=nuclei_net, cell_model=cell_net, device="cpu", scale_factor=0.25
    )
    image = _hpa_scene()[0][:384, :384]
    red, blue, yellow = image[..., Channel.RED], image[..., Channel.BLUE], image[..., Channel.YELLOW]
    their_nuclei = theirs.pred_nuclei([np.dstack([red, yellow, blue])])[0]
    their_cells = theirs.pred_cells([[red], [yellow], [blue]])[0]
    np.testing.assert_array_equal(their_nuclei, ours.predict(ours.nuclei_model, np.dstack([blue, blue, blue])))
    np.testing.assert_array_equal(their_cells, ours.predict(ours.cell_model, np.dstack([red, yellow, blue])))
