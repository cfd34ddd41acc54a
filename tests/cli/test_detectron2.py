"""Tests of the detectron2 engine against a real detectron2 (skipped where it is not installed)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("detectron2") is None,
    reason="detectron2 is not installed (not on PyPI; see README 'Optional: detectron2')",
)


CONFIGS = ["mask_rcnn_R_101_FPN_hpa.yaml", "mask_rcnn_X_101_32x8d_FPN_hpa.yaml"]


# Small, fast settings for CPU tests.
TINY = [
    "MODEL.WEIGHTS",
    "",
    "MODEL.DEVICE",
    "cpu",
    "HPA.IMAGE_SIZE",
    "128",
    "SOLVER.IMS_PER_BATCH",
    "1",
    "SOLVER.MAX_ITER",
    "2",
    "SOLVER.WARMUP_ITERS",
    "1",
    "SOLVER.STEPS",
    "()",
    "SOLVER.CHECKPOINT_PERIOD",
    "1",
    "TEST.EVAL_PERIOD",
    "0",
    "DATALOADER.NUM_WORKERS",
    "0",
    "MODEL.RPN.POST_NMS_TOPK_TRAIN",
    "100",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
    "32",
    "MODEL.RESNETS.DEPTH",
    "50",
]


def _engine():
    import hpaseg.detection.detectron2 as engine

    return engine


def test_train_and_predict_on_cpu(tiny_dataset, tmp_path, capsys):
    from hpaseg.cli import predict as predict_cli
    from hpaseg.cli import train as train_cli
    from hpaseg.submission import validate_submission

    run = tmp_path / "d2run"
    argv = [
        "--engine",
        "detectron2",
        "--config",
        str(_engine().config_dir() / CONFIGS[0]),
        "--dataset",
        str(tiny_dataset["dataset"]),
        "--data",
        str(tiny_dataset["train"]),
        "--out",
        str(run),
        "--device",
        "cpu",
        "--quiet",
        "--opts",
        *TINY,
    ]
    assert train_cli.main(argv) == 0
    assert (run / "model_final.pth").is_file() and (run / "config.yaml").is_file()
    lines = [json.loads(x) for x in (run / "metrics.json").read_text().splitlines()]
    losses = [x for x in lines if "total_loss" in x]
    assert losses[-1]["iteration"] == 1 and np.isfinite(losses[-1]["total_loss"])  # detectron2 counts from 0
    assert any("hpa/mAP" in x for x in lines)  # the HPA evaluator ran on the validation split
    out = tmp_path / "sub.csv"
    assert (
        predict_cli.main(
            [
                "--engine",
                "detectron2",
                "--weights",
                str(run / "model_final.pth"),
                "--data",
                str(tiny_dataset["test"]),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    assert validate_submission(out, tiny_dataset["test"]).n_images == 2
    # the run's image head (fitted on its pixel features before training) is in the weights
    # (test_detectron2.py::test_kept_cells_pool_into_the_image_probabilities: what the predictor makes of it)
    import torch

    from hpaseg.detection.detectron2 import Detectron2Predictor

    state = torch.load(run / "model_final.pth", map_location="cpu", weights_only=False)["model"]
    assert any(k.startswith("roi_heads.image_head.") for k in state)
    predictor = Detectron2Predictor.from_checkpoint(run / "model_final.pth")
    assert predictor.model.roi_heads.image_head is not None  # built from the run's config, its weights loaded
    # a run from before the image head (no such weights) still loads, without one
    old = {k: v for k, v in state.items() if not k.startswith("roi_heads.image_head.")}
    torch.save(
        {**torch.load(run / "model_final.pth", map_location="cpu", weights_only=False), "model": old},
        tmp_path / "old.pth",
    )
    (tmp_path / "config.yaml").write_text((run / "config.yaml").read_text())
    assert Detectron2Predictor.from_checkpoint(tmp_path / "old.pth").model.roi_heads.image_head is None
    # Missing config is a one-line error.
    assert (
        train_cli.main(
            [
                "--engine",
                "detectron2",
                "--config",
                str(tmp_path / "none.yaml"),
                "--dataset",
                str(tiny_dataset["dataset"]),
                "--data",
                str(tiny_dataset["train"]),
                "--out",
                str(tmp_path / "r2"),
            ]
        )
        == 2
    )
    assert "none.yaml: no such file" in capsys.readouterr().err
