"""The torchvision Mask R-CNN predictor: a checkpoint of ``hpaseg train`` applied to images.

``MaskRCNNPredictor.from_checkpoint(path)(images)`` returns, per image, a label image at
the image's original resolution (cells 1..N) and each cell's (class, confidence) pairs;
the CLI (``hpaseg predict``), the notebooks and the SLURM scripts share it. Images are
resized so their longer side is the model's working size, run in one batch, and
post-processed by :mod:`hpaseg.detection.postprocess`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..labels import cell_labels
from ..runtime.checkpoint import read_checkpoint
from ..transforms import resize_image, to_tensor
from .models import build_maskrcnn
from .postprocess import PostprocessConfig, compose_label_image, group_detections

__all__ = ["CellScores", "load_checkpoint", "build_model_from_checkpoint", "predict_tensors", "MaskRCNNPredictor"]

#: Per-cell (class, confidence) pairs of one image: ``{cell: [(class, confidence), ...]}``.
CellScores = dict[int, list[tuple[int, float]]]


def load_checkpoint(path: str | Path) -> dict:
    """Read a Mask R-CNN checkpoint written by ``hpaseg train`` (parameter ``weights``)."""
    ckpt = read_checkpoint(
        path, param="weights", hint="give RUN/model_final.pth from 'hpaseg train'", weights_only=False
    )
    if not isinstance(ckpt, dict) or "model" not in ckpt or "backbone" not in ckpt:
        raise InputError(
            f"weights {path}: not an hpaseg checkpoint (expected keys 'model' and 'backbone')", param="weights"
        )
    return ckpt


def build_model_from_checkpoint(
    ckpt: dict, *, score_threshold: float, path: str | Path = "checkpoint"
) -> torch.nn.Module:
    """The torchvision Mask R-CNN of a checkpoint, weights loaded."""
    model = build_maskrcnn(
        ckpt["backbone"], image_size=int(ckpt["image_size"]), pretrained=None, score_threshold=score_threshold
    )
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(
            f"weights {path}: weights do not fit backbone {ckpt['backbone']!r} ({first})", param="weights"
        ) from exc
    return model


@torch.no_grad()
def predict_tensors(
    model: torch.nn.Module,
    images: Sequence[torch.Tensor],
    out_shapes: Sequence[tuple[int, int]],
    config: PostprocessConfig = PostprocessConfig(),
) -> list[tuple[np.ndarray, CellScores]]:
    """Run a torchvision Mask R-CNN on working-size images and post-process.

    Parameters
    ----------
    images : sequence of Tensor, each (4, h, w) float in [0, 1], on the model's device
    out_shapes : sequence of (H, W)
        Resolution of each output label image (the original one for a submission).

    Returns
    -------
    list of (labels, cell_scores)
        ``labels`` (H, W) int32 with cells 1..N, ``cell_scores[k]`` the (class, confidence)
        pairs of cell k.
    """
    model.eval()
    outputs = model(list(images))
    results = []
    for image, out, shape in zip(images, outputs, out_shapes):
        cells = group_detections(
            out["boxes"].cpu(), out["labels"].cpu(), out["scores"].cpu(), out["masks"].cpu().float(), config
        )
        label_image, kept = compose_label_image(cells, tuple(image.shape[-2:]), tuple(shape), config)
        results.append(
            (label_image, {k: cell_labels(cells[i].scores, config.rule) for k, i in enumerate(kept, start=1)})
        )
    return results


class MaskRCNNPredictor:
    """A trained torchvision Mask R-CNN applied to whole RGBY images.

    Parameters
    ----------
    model : torch.nn.Module
        The Mask R-CNN, on ``device``.
    image_size : int
        Its working size: images are resized so their longer side is this.
    backbone : str
    device : torch.device
    config : PostprocessConfig
    """

    #: The predictor finds its own cells (no segmentation masks needed).
    needs_cells = False

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        image_size: int,
        backbone: str,
        device: torch.device,
        config: PostprocessConfig = PostprocessConfig(),
    ) -> None:
        self.model = model.eval()
        self.image_size = int(image_size)
        self.backbone = backbone
        self.device = torch.device(device)
        self.config = config

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, *, device: str | torch.device = "cpu", config: PostprocessConfig = PostprocessConfig()
    ) -> MaskRCNNPredictor:
        """Load ``RUN/model_final.pth`` of ``hpaseg train`` (torchvision engine)."""
        ckpt = load_checkpoint(path)
        model = build_model_from_checkpoint(ckpt, score_threshold=config.min_score, path=path).to(device)
        return cls(
            model,
            image_size=int(ckpt["image_size"]),
            backbone=ckpt["backbone"],
            device=torch.device(device),
            config=config,
        )

    def __call__(
        self, images: Sequence[np.ndarray], cells: Sequence[np.ndarray | None] | None = None
    ) -> list[tuple[np.ndarray, CellScores]]:
        """Cells and their labels for a batch of ``(H, W, 4)`` uint8 RGBY images (``cells`` is ignored)."""
        tensors = [to_tensor(resize_image(image, self.image_size)).to(self.device) for image in images]
        return predict_tensors(self.model, tensors, [image.shape[:2] for image in images], self.config)
