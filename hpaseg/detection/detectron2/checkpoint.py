"""Loading RGB (or BGR) pretrained detectron2 checkpoints into four-channel (RGBY) models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import InputError
from ...runtime.stems import rgb_to_rgby_weight

__all__ = ["RGBYCheckpointer", "STEM_KEY", "LABEL_HEAD_KEY", "check_checkpoint"]

#: State-dict key of the ResNet stem convolution in detectron2's FPN backbones.
STEM_KEY = "backbone.bottom_up.stem.conv1.weight"
#: State-dict key of the multi-label head: checkpoints without it are of the earlier
#: per-(cell, label) softmax model.
LABEL_HEAD_KEY = "roi_heads.label_head.1.weight"


def check_checkpoint(state: object, path: str | Path, *, param: str = "weights") -> None:
    """Refuse what is not a trained hpaseg detectron2 checkpoint (class-agnostic cells + multi-label head).

    Raises
    ------
    InputError
        No ``model`` state dict, or one without the multi-label head (an earlier model: retrain).
    """
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise InputError(f"{param} {path}: not a detectron2 checkpoint (no 'model' key)", param=param)
    if LABEL_HEAD_KEY not in state["model"]:
        raise InputError(
            f"{param} {path}: a checkpoint of the earlier per-(cell, label) softmax Mask R-CNN (no multi-label head); "
            "retrain it with 'hpaseg train --engine detectron2'",
            param=param,
        )


def RGBYCheckpointer(model, save_dir: str = "", *, pretrained_format: str = "BGR", **kwargs):
    """A ``DetectionCheckpointer`` that adapts a 3-channel stem to the model's 4 channels on load.

    ``pretrained_format`` is the channel order of the checkpoint's stem (``BGR`` for the
    MSRA ImageNet models of detectron2's zoo, ``RGB`` for FAIR's and torchvision's).
    """
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.checkpoint.c2_model_loading import align_and_update_state_dicts

    class _RGBYCheckpointer(DetectionCheckpointer):
        def _load_model(self, checkpoint):
            if checkpoint.get("matching_heuristics", False):
                self._convert_ndarray_to_tensor(checkpoint["model"])
                checkpoint["model"] = align_and_update_state_dicts(
                    self.model.state_dict(),
                    checkpoint["model"],
                    c2_conversion=checkpoint.get("__author__", None) == "Caffe2",
                )
                checkpoint["matching_heuristics"] = False
            weights = checkpoint["model"]
            own = self.model.state_dict()
            if STEM_KEY in weights and STEM_KEY in own:
                stem = (
                    torch.as_tensor(np.asarray(weights[STEM_KEY]))
                    if not isinstance(weights[STEM_KEY], torch.Tensor)
                    else weights[STEM_KEY]
                )
                if stem.shape[1] == 3 and own[STEM_KEY].shape[1] == 4:
                    if pretrained_format.upper() == "BGR":
                        stem = stem[:, [2, 1, 0]]
                    weights[STEM_KEY] = rgb_to_rgby_weight(stem)
                    self.logger.info("adapted the %s stem of the checkpoint to RGBY", pretrained_format)
            return super()._load_model(checkpoint)

    return _RGBYCheckpointer(model, save_dir, **kwargs)
