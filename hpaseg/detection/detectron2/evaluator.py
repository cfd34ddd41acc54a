"""detectron2 outputs as cells, and the competition mAP on the validation split as a
detectron2 ``DatasetEvaluator``."""

from __future__ import annotations

import numpy as np
import torch

from ...classes import NUM_CLASSES
from ...evaluation import competition_map
from ...labels import cache_paths
from ...submission import Prediction, SubmissionRow, encode_label_image, submission_row
from ..postprocess import PostprocessConfig
from ..predictor import DetectedCells, cells_from_output

__all__ = ["instances_to_cells", "HPAEvaluator"]


def instances_to_cells(
    instances,
    image_shape: tuple[int, int],
    out_shape: tuple[int, int],
    config: PostprocessConfig,
    image_head: torch.nn.Module | None = None,
) -> DetectedCells:
    """One image's predicted ``Instances`` (``scores``, ``pred_masks``, ``label_probs``) at
    working size ``image_shape`` as cells at ``out_shape`` (the torchvision engine's
    post-processing); with the model's ``image_head`` and the instances' ``label_features``,
    the image's probabilities from its kept cells."""
    inst = instances.to("cpu")
    n = len(inst)
    masks = inst.pred_masks.float() if inst.has("pred_masks") else torch.zeros((n,) + tuple(image_shape))
    output = {
        "scores": inst.scores,
        "masks": masks,
        "label_probs": inst.label_probs if inst.has("label_probs") else torch.zeros((n, NUM_CLASSES)),
    }
    if inst.has("label_features"):
        output["label_features"] = inst.label_features
    working = tuple(masks.shape[-2:]) if n else tuple(image_shape)
    return cells_from_output(output, working, tuple(out_shape), config, image_head)


class HPAEvaluator:
    """Competition mAP on ``hpa_val`` against the propagated (weak) cell labels, at the working size.

    Follows detectron2's ``DatasetEvaluator`` protocol (reset / process / evaluate).
    """

    def __init__(self, dataset_name: str, max_images: int = 50) -> None:
        from detectron2.data import DatasetCatalog

        self.records = {r["image_id"]: r for r in DatasetCatalog.get(dataset_name)}
        self.max_images = max_images
        self.reset()

    def reset(self) -> None:
        self._truth, self._preds = [], []

    def process(self, inputs, outputs) -> None:
        for inp, out in zip(inputs, outputs):
            if len(self._truth) >= self.max_images:
                return
            rec = self.records[inp["image_id"]]
            cells = np.load(cache_paths(rec["cache_dir"], rec["image_id"])[1])
            encoded = encode_label_image(cells, list(rec["cells"]))
            self._truth.append(
                SubmissionRow(
                    rec["image_id"],
                    cells.shape[1],
                    cells.shape[0],
                    [
                        Prediction(k, 1.0, encoded[c])
                        for c, ks in rec["cells"].items()
                        if (cells == c).any()
                        for k in ks
                    ],
                )
            )
            detected = instances_to_cells(out["instances"], cells.shape, cells.shape, PostprocessConfig())
            self._preds.append(submission_row(rec["image_id"], detected.label_image, detected.cell_scores()))

    def evaluate(self) -> dict:
        from detectron2.utils import comm

        truth = sum(comm.gather(self._truth, dst=0), [])
        preds = sum(comm.gather(self._preds, dst=0), [])
        if not comm.is_main_process():
            return {}
        value = float(competition_map(truth, preds).mAP) if truth else float("nan")
        return {"hpa": {"mAP": value, "images": len(truth)}}
