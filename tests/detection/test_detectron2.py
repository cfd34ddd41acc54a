"""Tests of the detectron2 engine against a real detectron2 (skipped when it is not installed)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from hpaseg.errors import InputError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("detectron2") is None,
    reason="detectron2 is not installed (not on PyPI; see README 'Optional: detectron2')",
)


CONFIGS = ["mask_rcnn_R_101_FPN_hpa.yaml", "mask_rcnn_X_101_32x8d_FPN_hpa.yaml"]


def _engine():
    import hpaseg.detection.detectron2 as engine

    return engine


def test_no_registration_on_import():
    from detectron2.data import DatasetCatalog

    _engine()
    import importlib

    import hpaseg.detection.detectron2.data as mod

    importlib.reload(mod)
    # Reloading the module registers nothing new.
    before = set(DatasetCatalog.list())
    importlib.reload(mod)
    assert set(DatasetCatalog.list()) == before


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_load_with_four_channels(name):
    eng = _engine()
    cfg = eng.load_config(eng.config_dir() / name)
    assert len(cfg.MODEL.PIXEL_MEAN) == 4 and len(cfg.MODEL.PIXEL_STD) == 4
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1 and cfg.MODEL.RESNETS.DEPTH == 101  # class-agnostic cells
    assert cfg.MODEL.ROI_HEADS.NAME == eng.ROI_HEADS_NAME
    assert cfg.MODEL.ANCHOR_GENERATOR.SIZES == [[32], [64], [128], [256], [512]]  # from HPA.IMAGE_SIZE 1024
    if "X_101" in name:
        assert cfg.MODEL.RESNETS.NUM_GROUPS == 32 and cfg.HPA.PRETRAINED_FORMAT == "RGB"


def test_config_errors(tmp_path):
    eng = _engine()
    with pytest.raises(InputError, match="no such file"):
        eng.load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(f'_BASE_: "{eng.config_dir() / "Base-HPA-MaskRCNN.yaml"}"\nMODEL:\n  NO_SUCH_KEY: 1\n')
    with pytest.raises(InputError, match="unknown key|NO_SUCH_KEY"):
        eng.load_config(bad)
    with pytest.raises(InputError, match="opts HPA.NOPE"):
        eng.load_config(eng.config_dir() / CONFIGS[0], ["HPA.NOPE", "1"])
    three = tmp_path / "three.yaml"
    three.write_text(
        f'_BASE_: "{eng.config_dir() / "Base-HPA-MaskRCNN.yaml"}"\nMODEL:\n  PIXEL_MEAN: [1.0, 2.0, 3.0]\n  PIXEL_STD: [1.0, 1.0, 1.0]\n'
    )
    with pytest.raises(InputError, match="four values"):
        eng.load_config(three)


def test_checkpointer_adapts_rgb_stem(tmp_path):
    """An RGB (BGR-ordered) checkpoint file, randomly initialised, loads into the RGBY model."""
    from detectron2.modeling import build_model

    eng = _engine()
    cfg4 = eng.load_config(eng.config_dir() / CONFIGS[0], ["MODEL.DEVICE", "cpu", "MODEL.RESNETS.DEPTH", "50"])
    cfg3 = cfg4.clone()
    cfg3.MODEL.PIXEL_MEAN = [103.53, 116.28, 123.675]
    cfg3.MODEL.PIXEL_STD = [1.0, 1.0, 1.0]
    rgb_model = build_model(cfg3)
    path = tmp_path / "rgb.pth"
    torch.save({"model": rgb_model.state_dict()}, path)
    model = build_model(cfg4)
    eng.RGBYCheckpointer(model, pretrained_format="BGR").load(str(path))
    bgr = rgb_model.state_dict()["backbone.bottom_up.stem.conv1.weight"]
    stem = model.state_dict()["backbone.bottom_up.stem.conv1.weight"]
    assert stem.shape[1] == 4
    torch.testing.assert_close(stem[:, :3], bgr[:, [2, 1, 0]])
    torch.testing.assert_close(stem[:, 3], (bgr[:, 2] + bgr[:, 1]) / 2)
    torch.testing.assert_close(
        model.state_dict()["roi_heads.mask_head.mask_fcn1.weight"],
        rgb_model.state_dict()["roi_heads.mask_head.mask_fcn1.weight"],
    )


def test_mapper_reads_four_channels(tiny_dataset):
    eng = _engine()
    cfg = eng.load_config(
        eng.config_dir() / CONFIGS[0],
        ["HPA.IMAGE_SIZE", "128"],
        **{"HPA.DATASET_DIR": str(tiny_dataset["dataset"]), "HPA.DATA_DIR": str(tiny_dataset["train"])},
    )
    counts = eng.register_hpa_datasets(cfg, progress=False)
    assert counts["hpa_train"] == 3 and counts["hpa_val"] == 1
    from detectron2.data import DatasetCatalog

    record = DatasetCatalog.get("hpa_train")[0]
    item = eng.HPADatasetMapper(cfg, True)(record)
    assert item["image"].shape[0] == 4 and max(item["image"].shape[1:]) == 128
    inst = item["instances"]
    assert 0 < len(inst) <= len(record["cells"])  # one instance per cell (that survived resizing)
    assert inst.gt_masks.tensor.shape[1:] == item["image"].shape[1:]
    assert inst.gt_classes.tolist() == [0] * len(inst)
    assert inst.gt_multilabels.shape == (len(inst), 19)
    per_cell = sorted(tuple(row.nonzero().flatten().tolist()) for row in inst.gt_multilabels)
    assert set(per_cell) <= {tuple(sorted(v)) for v in record["cells"].values()}
    assert not inst.has("gt_label_probs")  # no teacher


def test_a_teachers_probabilities_reach_the_instances(tiny_dataset, tmp_path):
    from detectron2.data import DatasetCatalog

    from hpaseg import io

    eng = _engine()
    overrides = {"HPA.DATASET_DIR": str(tiny_dataset["dataset"]), "HPA.DATA_DIR": str(tiny_dataset["train"])}
    cfg = eng.load_config(eng.config_dir() / CONFIGS[0], ["HPA.IMAGE_SIZE", "128"], **overrides)
    eng.register_hpa_datasets(cfg, progress=False)
    record = DatasetCatalog.get("hpa_train")[0]
    teacher = tmp_path / "probs.csv"
    io.write_cell_probabilities_csv(teacher, {record["image_id"]: {c: np.full(19, 0.5) for c in record["cells"]}})
    cfg = eng.load_config(
        eng.config_dir() / CONFIGS[0], ["HPA.IMAGE_SIZE", "128", "HPA.TEACHER", str(teacher)], **overrides
    )
    eng.register_hpa_datasets(cfg, progress=False)
    inst = eng.HPADatasetMapper(cfg, True)(DatasetCatalog.get("hpa_train")[0])["instances"]
    assert inst.gt_label_probs.shape == (len(inst), 19) and bool((inst.gt_label_probs == 0.5).all())


def _tiny_model(eng, *opts):
    from detectron2.modeling import build_model

    cfg = eng.load_config(
        eng.config_dir() / CONFIGS[0],
        ["MODEL.DEVICE", "cpu", "MODEL.RESNETS.DEPTH", "50", "HPA.IMAGE_SIZE", "64", *opts],
    )
    return build_model(cfg)


def test_multilabel_heads_train_and_predict_label_probabilities():
    from detectron2.structures import BitMasks, Boxes, Instances
    from detectron2.utils.events import EventStorage

    from hpaseg.detection import target_from_cells

    eng = _engine()
    torch.manual_seed(0)
    model = _tiny_model(eng, "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0")
    assert type(model.roi_heads).__name__ == eng.ROI_HEADS_NAME
    assert model.roi_heads.box_predictor.cls_score.out_features == 2  # cell + background
    assert model.roi_heads.label_head.num_labels == 19
    cells = np.zeros((64, 64), np.int32)
    cells[4:30, 6:28], cells[34:60, 30:62] = 1, 2
    target = target_from_cells(cells, {1: (0, 16), 2: (18,)})
    inst = Instances((64, 64))
    inst.gt_boxes, inst.gt_masks = Boxes(target["boxes"]), BitMasks(target["masks"].bool())
    inst.gt_classes, inst.gt_multilabels = torch.zeros(2, dtype=torch.int64), target["multilabels"]
    image = torch.rand(4, 64, 64) * 255
    model.train()
    with EventStorage(0):
        losses = model([{"image": image, "instances": inst, "height": 64, "width": 64}])
    assert "loss_labels" in losses and torch.isfinite(losses["loss_labels"])
    losses["loss_labels"].backward()
    assert all(p.grad is not None for p in model.roi_heads.label_head.parameters())
    assert all(p.grad is not None for p in model.roi_heads.pixel_head.parameters())  # it reads the RoIs' pixels
    # with a teacher: its probabilities pull the targets, (1 - d) hard + d soft
    inst.gt_label_probs = torch.full((2, 19), 0.5)
    model.roi_heads.distill_weight = 1.0
    with EventStorage(0):
        torch.manual_seed(1)
        taught = model([{"image": image, "instances": inst, "height": 64, "width": 64}])["loss_labels"]
        model.roi_heads.distill_weight = 0.0
        torch.manual_seed(1)
        untaught = model([{"image": image, "instances": inst, "height": 64, "width": 64}])["loss_labels"]
    assert float(taught) != pytest.approx(float(untaught))
    model.eval()
    with torch.no_grad():
        out = model([{"image": image, "height": 64, "width": 64}])[0]["instances"]
    assert out.label_probs.shape == (len(out), 19)
    assert set(out.pred_classes.tolist()) <= {0}
    if len(out):  # the image head's inputs: the pixel head's features of each detection
        assert out.label_features.shape == (len(out), model.roi_heads.pixel_head.num_features)


def test_old_configs_and_checkpoints_are_refused(tmp_path):
    from hpaseg.detection.detectron2 import Detectron2Predictor

    eng = _engine()
    old = tmp_path / "old.yaml"
    old.write_text(
        f'_BASE_: "{eng.config_dir() / "Base-HPA-MaskRCNN.yaml"}"\nMODEL:\n  ROI_HEADS:\n    NAME: "StandardROIHeads"\n'
    )
    with pytest.raises(InputError, match="StandardROIHeads.*retrain"):
        eng.load_config(old)
    state = _tiny_model(eng).state_dict()
    state = {k: v for k, v in state.items() if "label_head" not in k}
    weights = tmp_path / "model_final.pth"
    torch.save({"model": state}, weights)
    with pytest.raises(InputError, match="earlier per-\\(cell, label\\) softmax.*retrain") as info:
        Detectron2Predictor.from_checkpoint(weights)
    assert info.value.params == ("weights",)


#: Iterations of the fixed-batch run.
OVERFIT_ITERS = 15


def test_training_on_one_fixed_batch_lowers_the_total_and_label_losses(tiny_dataset):
    """detectron2's SimpleTrainer and optimizer on hpaseg's config, RoI heads and mapper, one
    batch repeated: the total loss and the multi-label head's ``loss_labels`` fall well below
    where they start (the twin of the torchvision engine's test in test_trainer.py). Random
    weights train with BatchNorm (FrozenBN suits pretrained weights only) and a small rate."""
    pytest.importorskip("detectron2", reason="detectron2 is not installed (not on PyPI; see README)")
    import itertools

    from detectron2.data import DatasetCatalog
    from detectron2.engine import SimpleTrainer
    from detectron2.modeling import build_model
    from detectron2.solver import build_optimizer

    eng = _engine()
    opts = {
        "MODEL.DEVICE": "cpu",
        "MODEL.RESNETS.DEPTH": "50",
        "MODEL.RESNETS.NORM": "BN",
        "MODEL.BACKBONE.FREEZE_AT": "0",
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": "64",
        "SOLVER.BASE_LR": "0.002",
        "HPA.IMAGE_SIZE": "128",
        "HPA.AUGMENT": "False",  # the same batch every step
    }
    cfg = eng.load_config(
        eng.config_dir() / CONFIGS[0],
        [x for pair in opts.items() for x in pair],
        **{"HPA.DATASET_DIR": str(tiny_dataset["dataset"]), "HPA.DATA_DIR": str(tiny_dataset["train"])},
    )
    eng.register_hpa_datasets(cfg, progress=False)
    batch = [eng.HPADatasetMapper(cfg, True)(DatasetCatalog.get("hpa_train")[0])]
    assert len(batch[0]["instances"]) >= 5 and batch[0]["instances"].gt_multilabels.sum() > 0
    torch.manual_seed(0)
    model = build_model(cfg)
    trainer = SimpleTrainer(model, itertools.repeat(batch), build_optimizer(cfg, model))
    trainer.train(0, OVERFIT_ITERS)
    total = [v for v, _ in trainer.storage.history("total_loss").values()]
    labels = [v for v, _ in trainer.storage.history("loss_labels").values()]
    assert len(total) == len(labels) == OVERFIT_ITERS
    assert sum(labels[-3:]) / 3 < 0.7 * labels[0], labels
    assert sum(total[-3:]) / 3 < 0.7 * total[0], total


def test_the_pixel_head_is_fitted_on_the_cells_and_frozen_before_training(tiny_dataset):
    """The detectron2 twin of the torchvision engine's ``_pixel_head_first``: fitted on
    ``hpa_train``'s cell crops (its BatchNorm statistics are theirs), then no gradients and
    kept in eval mode while the rest trains."""
    from detectron2.modeling import build_model

    from hpaseg.detection.detectron2.trainer import fit_pixel_head_on_cells

    eng = _engine()
    overrides = {"HPA.DATASET_DIR": str(tiny_dataset["dataset"]), "HPA.DATA_DIR": str(tiny_dataset["train"])}
    opts = ["MODEL.DEVICE", "cpu", "MODEL.RESNETS.DEPTH", "50", "HPA.IMAGE_SIZE", "128", "HPA.LABEL_EPOCHS", "2"]
    opts += ["HPA.IMAGE_EPOCHS", "3"]
    cfg = eng.load_config(eng.config_dir() / CONFIGS[0], opts, **overrides)
    eng.register_hpa_datasets(cfg, progress=False)
    torch.manual_seed(0)
    model = build_model(cfg)
    heads = model.roi_heads
    assert float(heads.pixel_head.features[0][1].running_mean.abs().sum()) == 0.0
    before = {k: v.clone() for k, v in heads.image_head.state_dict().items()}
    fit_pixel_head_on_cells(cfg, model)
    # then the image head, on the frozen pixel head's features: fitted, and never trained by the detector
    after = heads.image_head.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in heads.image_head.parameters())
    assert float(heads.pixel_head.features[0][1].running_mean.abs().sum()) > 0
    model.train()
    assert not heads.pixel_head.training and not any(p.requires_grad for p in heads.pixel_head.parameters())
    assert not heads.image_head.training
    assert all(p.requires_grad for p in heads.label_head.parameters())
    # no image head without a pixel head fitted first
    cfg.HPA.LABEL_EPOCHS = 0
    assert build_model(cfg).roi_heads.image_head is None


def test_kept_cells_pool_into_the_image_probabilities():
    """``instances_to_cells`` with an image head: the kept cells' ``label_features`` become
    the image's probabilities (as the torchvision engine's ``cells_from_output``); without
    the head or the features, none."""
    from detectron2.structures import Boxes, Instances

    from hpaseg.detection import PostprocessConfig
    from hpaseg.detection.detectron2.evaluator import instances_to_cells
    from hpaseg.weak import ImageHead

    inst = Instances((64, 64))
    masks = torch.zeros(2, 64, 64)
    masks[0, 4:30, 6:28], masks[1, 34:60, 30:62] = 1.0, 1.0
    inst.pred_boxes = Boxes(torch.tensor([[6.0, 4.0, 28.0, 30.0], [30.0, 34.0, 62.0, 60.0]]))
    inst.scores = torch.tensor([0.9, 0.8])
    inst.pred_classes = torch.zeros(2, dtype=torch.int64)
    inst.pred_masks = masks
    inst.label_probs = torch.full((2, 19), 0.3)
    inst.label_features = torch.randn(2, 8)
    torch.manual_seed(0)
    head = ImageHead(8).eval()
    cells = instances_to_cells(inst, (64, 64), (64, 64), PostprocessConfig(), head)
    assert len(cells.probabilities) == 2
    with torch.no_grad():
        expected = torch.sigmoid(head(inst.label_features)).numpy()
    assert expected.shape == (19,)  # one image: pooled over its kept cells
    np.testing.assert_allclose(cells.image_probabilities, expected, rtol=1e-5)
    assert instances_to_cells(inst, (64, 64), (64, 64), PostprocessConfig()).image_probabilities is None
