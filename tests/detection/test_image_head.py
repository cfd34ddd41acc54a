"""Mask R-CNN's image head (issue 19): the cell classifier's image head (one owner,
hpaseg.weak.ImageHead) on the pixel head's features of an image's cells, fitted after the
pixel head, pooled over the kept cells at prediction and mixed in by the score rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hpaseg.detection import MaskRCNNPredictor, PostprocessConfig, TrainConfig, build_maskrcnn, train_torchvision
from hpaseg.detection.postprocess import cell_scores
from hpaseg.detection.predictor import cells_from_output, load_checkpoint
from hpaseg.errors import InputError
from hpaseg.weak import ImageHead, ScoreRule, fuse_scores


def test_the_image_head_needs_the_pixel_head_and_never_trains_with_the_detector():
    with pytest.raises(InputError, match="image head reads the pixel head's features"):
        build_maskrcnn("densenet121", image_size=64, label_inputs="features", image_head=True)
    heads = build_maskrcnn("densenet121", image_size=64, image_head=True).roi_heads
    assert isinstance(heads.image_head, ImageHead) and heads.image_head.mean.numel() == heads.pixel_head.num_features
    assert not any(p.requires_grad for p in heads.image_head.parameters())
    heads.train()
    assert not heads.image_head.training  # its dropout stays off
    assert build_maskrcnn("densenet121", image_size=64).roi_heads.image_head is None


def test_detections_carry_pixel_features_that_the_predictor_pools_into_image_probabilities():
    torch.manual_seed(0)
    model = build_maskrcnn("densenet121", image_size=64, score_threshold=0.0, image_head=True).eval()
    with torch.no_grad():
        [out] = model([torch.rand(4, 64, 64)])
    n = len(out["boxes"])
    assert n > 0 and out["label_features"].shape == (n, model.roi_heads.pixel_head.num_features)
    config = PostprocessConfig(min_detection_score=0.0)
    cells = cells_from_output(out, (64, 64), (64, 64), config, model.roi_heads.image_head)
    k = len(cells.probabilities)
    assert k > 0 and cells.image_probabilities.shape == (19,)
    # the image probabilities are the head's on the kept cells' features, not on every detection's
    rows = []
    for cell in range(1, k + 1):
        match = [
            i for i in range(n) if np.allclose(out["label_probs"][i].double().numpy(), cells.probabilities[cell - 1])
        ]
        rows.append(match[0])
    with torch.no_grad():
        expected = torch.sigmoid(model.roi_heads.image_head(out["label_features"][rows])).double().numpy()
    assert np.allclose(cells.image_probabilities, expected, atol=1e-6)
    # and the score rule mixes them in, as for the cell classifier
    mixed = cell_scores(cells.probabilities, cells.detection_scores, config, cells.image_probabilities)
    fused = fuse_scores(cells.probabilities, cells.image_probabilities, ScoreRule())
    assert [v for _, v in sorted(mixed[1])] == pytest.approx(list(fused[0] * cells.detection_scores[0]))
    assert cells_from_output(out, (64, 64), (64, 64), config).image_probabilities is None  # no head: none


@pytest.fixture(scope="module")
def image_head_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("imagehead") / "run"
    cfg = TrainConfig(
        dataset=str(tiny_dataset["dataset"]),
        data=str(tiny_dataset["train"]),
        out=str(out),
        backbone="resnet18_fpn",
        device="cpu",
        image_size=128,
        max_iter=2,
        batch_size=1,
        checkpoint_period=1,
        eval_period=0,
        workers=0,
        label_epochs=2,
        image_epochs=5,
    )
    train_torchvision(cfg, progress=False)
    return cfg


def test_a_run_fits_the_image_head_keeps_it_through_training_and_loads_it(image_head_run):
    cfg = image_head_run
    final = load_checkpoint(f"{cfg.out}/model_final.pth")
    first = torch.load(f"{cfg.out}/model_0000001.pth", weights_only=False)
    assert final["image_head"] is True
    head_keys = [k for k in final["model"] if k.startswith("roi_heads.image_head.")]
    assert head_keys and all(torch.equal(final["model"][k], first["model"][k]) for k in head_keys)
    assert not torch.equal(
        final["model"]["roi_heads.image_head.mean"], torch.zeros_like(final["model"]["roi_heads.image_head.mean"])
    )
    predictor = MaskRCNNPredictor.from_checkpoint(f"{cfg.out}/model_final.pth")
    assert predictor.model.roi_heads.image_head is not None
    with pytest.raises(InputError, match="image head True"):
        train_torchvision(dataclasses.replace(cfg, image_epochs=0, max_iter=3), resume=True, progress=False)
