"""Tests of the detectron2 engine against a real detectron2 (skipped when it is not installed)."""

from __future__ import annotations

import importlib.util

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
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 19 and cfg.MODEL.RESNETS.DEPTH == 101
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
    assert len(inst) == sum(len(v) for v in record["cells"].values())  # one instance per (cell, label)
    assert inst.gt_masks.tensor.shape[1:] == item["image"].shape[1:]
    assert int(inst.gt_classes.max()) <= 18
