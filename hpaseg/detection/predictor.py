"""The torchvision Mask R-CNN predictor: a checkpoint of ``hpaseg train`` applied to images.

``MaskRCNNPredictor.from_checkpoint(path)(images)`` returns, per image, a label image at
the image's original resolution (cells 1..N) and each cell's (class, confidence) pairs;
the CLI (``hpaseg predict``), the notebooks and the SLURM scripts share it.
``predictor.probabilities(images)`` gives each cell's 19 label probabilities instead
(for a route that rescores the cells), and ``predictor.detect(images)`` both with the
detection scores (:class:`DetectedCells`). Images are resized so their longer side is
the model's working size, run in one batch, and post-processed by
:mod:`hpaseg.detection.postprocess`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..classes import NUM_CLASSES
from ..errors import InputError
from ..runtime.checkpoint import read_checkpoint
from ..transforms import resize_image, to_tensor
from .models import FPN_CHANNELS, MODEL_KIND, build_maskrcnn
from .postprocess import PostprocessConfig, cell_scores, compose_label_image, select_cells

__all__ = [
    "CellScores",
    "CellProbabilities",
    "DetectedCells",
    "CellDetector",
    "load_checkpoint",
    "build_model_from_checkpoint",
    "cells_from_output",
    "detect_tensors",
    "predict_tensors",
    "MaskRCNNPredictor",
]

#: Per-cell (class, confidence) pairs of one image: ``{cell: [(class, confidence), ...]}``.
CellScores = dict[int, list[tuple[int, float]]]
#: Per-cell label probabilities of one image: ``{cell: (19,) float array}``.
CellProbabilities = dict[int, np.ndarray]


@dataclass
class DetectedCells:
    """The cells Mask R-CNN found in one image.

    Attributes
    ----------
    label_image : ndarray, shape (H, W), int32
        Cells 1..N at the requested resolution (0 = background).
    probabilities : ndarray, shape (N, 19), float64
        Row ``k - 1``: the label probabilities of cell ``k``.
    detection_scores : ndarray, shape (N,), float64
        Row ``k - 1``: the detection (cell) score of cell ``k``.
    """

    label_image: np.ndarray
    probabilities: np.ndarray
    detection_scores: np.ndarray
    image_probabilities: np.ndarray | None = None  # (19,): the model's image head's, if it has one

    def cell_probabilities(self) -> CellProbabilities:
        """``{cell: probabilities}`` of cells 1..N."""
        return {k: self.probabilities[k - 1] for k in range(1, len(self.probabilities) + 1)}

    def cell_scores(self, config: PostprocessConfig = PostprocessConfig()) -> CellScores:
        """Reported (class, confidence) pairs of cells 1..N (:func:`~hpaseg.detection.postprocess.cell_scores`)."""
        return cell_scores(self.probabilities, self.detection_scores, config, self.image_probabilities)


def load_checkpoint(path: str | Path) -> dict:
    """Read a Mask R-CNN checkpoint written by ``hpaseg train`` (parameter ``weights``).

    Raises
    ------
    InputError
        Not an hpaseg checkpoint, or one of the earlier per-(cell, label) softmax models.
    """
    ckpt = read_checkpoint(
        path, param="weights", hint="give RUN/model_final.pth from 'hpaseg train'", weights_only=False
    )
    if not isinstance(ckpt, dict) or "model" not in ckpt or "backbone" not in ckpt:
        raise InputError(
            f"weights {path}: not an hpaseg checkpoint (expected keys 'model' and 'backbone')", param="weights"
        )
    if ckpt.get("kind") != MODEL_KIND:
        raise InputError(
            f"weights {path}: a checkpoint of kind {ckpt.get('kind', 'per-(cell, label) softmax Mask R-CNN')!r}, "
            f"not {MODEL_KIND!r} (class-agnostic cells + multi-label head); retrain it with 'hpaseg train'",
            param="weights",
        )
    return ckpt


def build_model_from_checkpoint(
    ckpt: dict, *, score_threshold: float, path: str | Path = "checkpoint"
) -> torch.nn.Module:
    """The torchvision Mask R-CNN of a checkpoint, weights loaded."""
    model = build_maskrcnn(
        ckpt["backbone"],
        image_size=int(ckpt["image_size"]),
        pretrained=None,
        score_threshold=score_threshold,
        label_inputs=ckpt.get("label_inputs", "features"),  # checkpoints before the pixel head: features
        image_head=bool(ckpt.get("image_head", False)),  # checkpoints before the image head: none
        fpn_channels=int(ckpt.get("fpn_channels", FPN_CHANNELS)),  # checkpoints before the option: 256
    )
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(
            f"weights {path}: weights do not fit backbone {ckpt['backbone']!r} ({first})", param="weights"
        ) from exc
    return model


def cells_from_output(
    output: dict[str, torch.Tensor],
    working_shape: tuple[int, int],
    out_shape: tuple[int, int],
    config: PostprocessConfig = PostprocessConfig(),
    image_head: torch.nn.Module | None = None,
) -> DetectedCells:
    """One image's model output (``scores``, ``masks``, ``label_probs``) as cells at ``out_shape``;
    with the model's ``image_head`` and the output's ``label_features``, the image's
    probabilities from its kept cells' features."""
    cells = select_cells(
        output["scores"].detach().cpu().float(),
        output["masks"].detach().cpu().float(),
        output["label_probs"].detach().cpu().float(),
        config,
    )
    label_image, kept = compose_label_image(cells, working_shape, out_shape, config)
    probs = np.array([cells[i].label_probs for i in kept], dtype=np.float64).reshape(-1, NUM_CLASSES)
    image_probs = None
    if image_head is not None and kept and "label_features" in output:
        rows = torch.tensor([cells[i].detection for i in kept])
        features = output["label_features"].detach().float()[rows.to(output["label_features"].device)]
        image_probs = torch.sigmoid(image_head(features).float()).detach().cpu().numpy().astype(np.float64)
    scores = np.array([cells[i].score for i in kept], dtype=np.float64)
    return DetectedCells(label_image, probs, scores, image_probs)


@torch.no_grad()
def detect_tensors(
    model: torch.nn.Module,
    images: Sequence[torch.Tensor],
    out_shapes: Sequence[tuple[int, int]],
    config: PostprocessConfig = PostprocessConfig(),
) -> list[DetectedCells]:
    """Run a torchvision Mask R-CNN on working-size images and post-process.

    Parameters
    ----------
    images : sequence of Tensor, each (4, h, w) float in [0, 1], on the model's device
    out_shapes : sequence of (H, W)
        Resolution of each output label image (the original one for a submission).

    Returns
    -------
    list of DetectedCells
    """
    model.eval()
    outputs = model(list(images))
    image_head = getattr(getattr(model, "roi_heads", None), "image_head", None)
    return [
        cells_from_output(out, tuple(image.shape[-2:]), tuple(shape), config, image_head)
        for image, out, shape in zip(images, outputs, out_shapes)
    ]


def predict_tensors(
    model: torch.nn.Module,
    images: Sequence[torch.Tensor],
    out_shapes: Sequence[tuple[int, int]],
    config: PostprocessConfig = PostprocessConfig(),
) -> list[tuple[np.ndarray, CellScores]]:
    """:func:`detect_tensors`, each image as ``(labels, cell_scores)``: ``labels`` (H, W)
    int32 with cells 1..N, ``cell_scores[k]`` the (class, confidence) pairs of cell k."""
    return [(d.label_image, d.cell_scores(config)) for d in detect_tensors(model, images, out_shapes, config)]


class CellDetector:
    """What both Mask R-CNN predictors share: from :meth:`detect` (per engine) to the
    interface of :class:`hpaseg.pipeline.predict.Predictor` and the raw probabilities."""

    #: The predictor finds its own cells (no segmentation masks needed).
    needs_cells = False
    config: PostprocessConfig

    def detect(self, images: Sequence[np.ndarray]) -> list[DetectedCells]:  # pragma: no cover - per engine
        """Cells, their label probabilities and detection scores for ``(H, W, 4)`` uint8 RGBY images."""
        raise NotImplementedError

    def probabilities(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, CellProbabilities]]:
        """Per image: the label image at original resolution and ``{cell: (19,) probabilities}``."""
        return [(d.label_image, d.cell_probabilities()) for d in self.detect(images)]

    def __call__(
        self, images: Sequence[np.ndarray], cells: Sequence[np.ndarray | None] | None = None
    ) -> list[tuple[np.ndarray, CellScores]]:
        """Cells and their labels for a batch of ``(H, W, 4)`` uint8 RGBY images (``cells`` is ignored)."""
        return [(d.label_image, d.cell_scores(self.config)) for d in self.detect(images)]


class MaskRCNNPredictor(CellDetector):
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
        model = build_model_from_checkpoint(ckpt, score_threshold=config.min_detection_score, path=path).to(device)
        return cls(
            model,
            image_size=int(ckpt["image_size"]),
            backbone=ckpt["backbone"],
            device=torch.device(device),
            config=config,
        )

    def detect(self, images: Sequence[np.ndarray]) -> list[DetectedCells]:
        """Cells, their label probabilities and detection scores for ``(H, W, 4)`` uint8 RGBY images."""
        tensors = [to_tensor(resize_image(image, self.image_size)).to(self.device) for image in images]
        return detect_tensors(self.model, tensors, [image.shape[:2] for image in images], self.config)
