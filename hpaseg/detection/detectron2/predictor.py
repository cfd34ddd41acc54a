"""The detectron2 Mask R-CNN predictor: a checkpoint of ``hpaseg train --engine detectron2``
applied to images, with the same post-processing and outputs as the torchvision one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ...errors import InputError
from ...transforms import resize_image
from ..postprocess import PostprocessConfig
from ..predictor import CellDetector, DetectedCells
from .checkpoint import check_checkpoint
from .config import load_config, require_detectron2
from .evaluator import instances_to_cells

__all__ = ["Detectron2Predictor"]


class Detectron2Predictor(CellDetector):
    """A trained detectron2 Mask R-CNN applied to whole RGBY images (see
    :class:`hpaseg.detection.predictor.MaskRCNNPredictor` for the interface: ``__call__``,
    ``probabilities``, ``detect``)."""

    def __init__(
        self, model: torch.nn.Module, *, image_size: int, config: PostprocessConfig = PostprocessConfig()
    ) -> None:
        self.model = model.eval()
        self.image_size = int(image_size)
        self.config = config

    @classmethod
    def from_checkpoint(
        cls,
        weights: str | Path,
        *,
        config_file: str | Path | None = None,
        device: str = "cpu",
        config: PostprocessConfig = PostprocessConfig(),
    ) -> Detectron2Predictor:
        """Load ``RUN/model_final.pth`` with the run's ``config.yaml`` (next to it unless ``config_file`` is given)."""
        require_detectron2()
        from detectron2.modeling import build_model

        weights = Path(weights)
        if not weights.is_file():
            raise InputError(
                f"weights {weights}: no such file; give RUN/model_final.pth from 'hpaseg train --engine detectron2'",
                param="weights",
            )
        state = torch.load(weights, map_location="cpu", weights_only=False)
        check_checkpoint(state, weights)
        config_file = Path(config_file) if config_file else weights.parent / "config.yaml"
        cfg = load_config(config_file, [], **{"MODEL.DEVICE": device, "MODEL.WEIGHTS": str(weights)})
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = config.min_detection_score
        if not any(k.startswith("roi_heads.image_head.") for k in state["model"]):
            cfg.HPA.IMAGE_EPOCHS = 0  # a run from before the image head
        model = build_model(cfg).eval()
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise InputError(
                f"weights {weights}: weights do not fit the model of {config_file} ({str(exc).splitlines()[0]})",
                param="weights",
            ) from exc
        return cls(model, image_size=cfg.HPA.IMAGE_SIZE, config=config)

    @torch.no_grad()
    def detect(self, images: Sequence[np.ndarray]) -> list[DetectedCells]:
        """Cells, their label probabilities and detection scores for ``(H, W, 4)`` uint8 RGBY images."""
        smalls = [resize_image(image, self.image_size) for image in images]
        inputs = [
            {
                "image": torch.as_tensor(np.ascontiguousarray(s.transpose(2, 0, 1))).float(),
                "height": s.shape[0],
                "width": s.shape[1],
            }
            for s in smalls
        ]
        outputs = self.model(inputs)
        image_head = getattr(self.model.roi_heads, "image_head", None)
        return [
            instances_to_cells(out["instances"], small.shape[:2], image.shape[:2], self.config, image_head)
            for out, small, image in zip(outputs, smalls, images)
        ]
