"""Tests of hpaseg.detection.predictor: output format, raw probabilities, checkpoint refusal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpaseg.detection import (
    DetectedCells,
    MaskRCNNPredictor,
    PostprocessConfig,
    build_maskrcnn,
    load_checkpoint,
)
from hpaseg.detection.predictor import MODEL_KIND
from hpaseg.errors import InputError
from hpaseg.weak import fuse_scores


class _FixedDetections(torch.nn.Module):
    """Stands in for Mask R-CNN in eval mode: two cells and a duplicate of the first, on a 32x32 working image."""

    def forward(self, images):
        masks = torch.zeros(3, 1, 32, 32)
        masks[0, 0, 2:14, 2:14] = 0.95
        masks[1, 0, 2:14, 3:14] = 0.9  # duplicate of the first cell
        masks[2, 0, 18:30, 16:30] = 0.8
        probs = torch.full((3, 19), 0.05)
        probs[0, 0], probs[1, 5], probs[2, 16] = 0.9, 0.9, 0.7
        out = {
            "boxes": torch.tensor([[2.0, 2.0, 14.0, 14.0], [3.0, 2.0, 14.0, 14.0], [16.0, 18.0, 30.0, 30.0]]),
            "labels": torch.ones(3, dtype=torch.int64),
            "scores": torch.tensor([0.95, 0.7, 0.85]),
            "masks": masks,
            "label_probs": probs,
        }
        return [dict(out) for _ in images]


def _predictor(config=PostprocessConfig()):
    return MaskRCNNPredictor(
        _FixedDetections(), image_size=32, backbone="densenet121", device=torch.device("cpu"), config=config
    )


def test_predictor_returns_cells_at_original_size_with_every_class_ranked():
    images = [np.zeros((64, 64, 4), np.uint8), np.zeros((96, 96, 4), np.uint8)]
    results = _predictor()(images)
    assert len(results) == 2
    for (label_image, scores), image in zip(results, images):
        assert label_image.shape == image.shape[:2] and label_image.dtype == np.int32
        assert set(np.unique(label_image)) == {0, 1, 2}  # the duplicate was suppressed
        assert sorted(scores) == [1, 2]
        for pairs in scores.values():
            assert sorted(k for k, _ in pairs) == list(range(19))
            assert all(isinstance(k, int) and 0.0 <= s <= 1.0 for k, s in pairs)
        assert [s for _, s in scores[1]] == sorted((s for _, s in scores[1]), reverse=True)  # best first
        first, second = dict(scores[1]), dict(scores[2])
        assert first[0] > second[0] and second[16] > first[16]  # each cell ranked by its own evidence


def test_probabilities_and_detect_expose_the_raw_cells():
    image = np.zeros((64, 64, 4), np.uint8)
    ((label_image, probs),) = _predictor().probabilities([image])
    assert sorted(probs) == [1, 2] and all(p.shape == (19,) for p in probs.values())
    assert probs[1][0] == pytest.approx(0.9) and probs[2][16] == pytest.approx(0.7)
    detected = _predictor().detect([image])[0]
    assert isinstance(detected, DetectedCells)
    assert detected.probabilities.shape == (2, 19) and detected.detection_scores.tolist() == pytest.approx([0.95, 0.85])
    np.testing.assert_array_equal(detected.label_image, label_image)
    fused = fuse_scores(detected.probabilities)
    assert dict(detected.cell_scores()[2]) == pytest.approx({c: 0.85 * fused[1, c] for c in range(19)})


def _save(tmp_path, label_inputs="pixels+features", *, recorded=True, **extra):
    """A checkpoint as the trainer writes it (``recorded``: with its ``label_inputs``)."""
    model = build_maskrcnn("densenet121", image_size=64, label_inputs=label_inputs)
    ckpt = {"model": model.state_dict(), "backbone": "densenet121", "image_size": 64, **extra}
    if recorded:
        ckpt["label_inputs"] = label_inputs
    path = tmp_path / "model_final.pth"
    torch.save(ckpt, path)
    return path


def test_checkpoints_of_the_earlier_softmax_model_are_refused(tmp_path):
    path = _save(tmp_path)  # no kind: written before the class-agnostic model
    with pytest.raises(InputError, match="softmax Mask R-CNN.*retrain it with 'hpaseg train'") as info:
        load_checkpoint(path)
    assert info.value.params == ("weights",) and "\n" not in str(info.value)
    with pytest.raises(InputError, match="retrain"):
        MaskRCNNPredictor.from_checkpoint(path)
    path = _save(tmp_path, kind=MODEL_KIND, label_inputs="pixels+features")
    predictor = MaskRCNNPredictor.from_checkpoint(path)
    assert predictor.image_size == 64 and predictor.backbone == "densenet121"
    assert predictor.model.roi_heads.pixel_head is not None
    # a checkpoint from before the pixel head (no "label_inputs"): its features-only head
    path = _save(tmp_path, label_inputs="features", recorded=False, kind=MODEL_KIND)
    assert MaskRCNNPredictor.from_checkpoint(path).model.roi_heads.pixel_head is None
