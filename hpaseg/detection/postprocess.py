"""From Mask R-CNN detections to cells: grouping the per-(cell, class) detections of one
cell, giving each pixel to one cell, pasting masks back at the original resolution.

Detections are *per (cell, class)*, as the model was trained (one instance per
(cell, label)). Detections whose masks overlap at IoU >= ``group_iou`` are one cell;
the cell keeps, per class, the best score, and the mask of its best detection.
Overlaps are resolved so each pixel belongs to one cell: the cell whose mask
probability times score is highest there. Cells left smaller than
``min_cell_fraction`` of their own mask are dropped. Masks are pasted back at the
image's original resolution (each cell's soft mask upsampled bilinearly within its
box, then thresholded at 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..labels import LabelRule

__all__ = ["PostprocessConfig", "CellPrediction", "group_detections", "compose_label_image"]

_MASK_THRESHOLD = 0.5


@dataclass(frozen=True)
class PostprocessConfig:
    """How detections become cells (see the module docstring), and the labels they report.

    Attributes
    ----------
    group_iou : float
        Detections whose masks overlap at least this much are one cell.
    min_score : float
        Detections scoring below this are dropped; also the label rule's floor.
    negative_threshold : float
        The label rule's Negative threshold (:class:`~hpaseg.labels.LabelRule`).
    min_cell_fraction : float
        A cell keeping less than this fraction of its own mask is dropped.
    """

    group_iou: float = 0.5
    min_score: float = 0.05
    negative_threshold: float = 0.3
    min_cell_fraction: float = 0.3

    @property
    def rule(self) -> LabelRule:
        """The label rule of these settings."""
        return LabelRule(min_score=self.min_score, negative_threshold=self.negative_threshold)


@dataclass
class CellPrediction:
    """One predicted cell: soft mask at working size, its box there, per-class scores."""

    prob: torch.Tensor  # (h, w) float in [0, 1]
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in working px, exclusive ends
    scores: dict[int, float] = field(default_factory=dict)  # class id -> score

    @property
    def score(self) -> float:
        return max(self.scores.values()) if self.scores else 0.0


def group_detections(
    boxes: torch.Tensor,
    labels: torch.Tensor,
    scores: torch.Tensor,
    masks: torch.Tensor,
    config: PostprocessConfig = PostprocessConfig(),
) -> list[CellPrediction]:
    """Group per-(cell, class) detections into cells by mask IoU.

    Parameters
    ----------
    boxes : Tensor, shape (N, 4), xyxy in working px
    labels : Tensor, shape (N,), int
        Model labels, 1..19 (class id + 1).
    scores : Tensor, shape (N,)
    masks : Tensor, shape (N, 1, h, w) or (N, h, w), float probabilities

    Returns
    -------
    list of CellPrediction, best cell first.
    """
    if masks.ndim == 4:
        masks = masks[:, 0]
    order = torch.argsort(scores, descending=True)
    cells: list[CellPrediction] = []
    cell_bin: list[torch.Tensor] = []
    h, w = masks.shape[-2:]
    for i in order.tolist():
        score = float(scores[i])
        if score < config.min_score:
            break
        binary = masks[i] >= _MASK_THRESHOLD
        area = int(binary.sum())
        if area == 0:
            continue
        cls = int(labels[i]) - 1
        best, best_iou = -1, 0.0
        for j, other in enumerate(cell_bin):
            inter = int((binary & other).sum())
            if inter:
                iou = inter / (area + int(other.sum()) - inter)
                if iou > best_iou:
                    best, best_iou = j, iou
        if best >= 0 and best_iou >= config.group_iou:
            cells[best].scores[cls] = max(cells[best].scores.get(cls, 0.0), score)
            continue
        x0, y0, x1, y1 = boxes[i].tolist()
        box = (
            max(0, int(np.floor(x0))),
            max(0, int(np.floor(y0))),
            min(w, int(np.ceil(x1)) + 1),
            min(h, int(np.ceil(y1)) + 1),
        )
        cells.append(CellPrediction(masks[i], box, {cls: score}))
        cell_bin.append(binary)
    return cells


def compose_label_image(
    cells: Sequence[CellPrediction],
    working_shape: tuple[int, int],
    out_shape: tuple[int, int],
    config: PostprocessConfig = PostprocessConfig(),
) -> tuple[np.ndarray, list[int]]:
    """Paint cells into one label image at ``out_shape``, each pixel to one cell.

    Each cell's soft mask is upsampled bilinearly within its box from ``working_shape``
    to ``out_shape``; a pixel goes to the cell with the highest ``probability * score``
    among those with probability >= 0.5.

    Returns
    -------
    labels : ndarray, shape out_shape, int32
        Cell ``k`` (1-based) is ``cells[kept[k - 1]]``.
    kept : list of int
        Indices into ``cells`` of the cells that survived, in label order.
    """
    H, W = out_shape
    h, w = working_shape
    sy, sx = H / h, W / w
    best = torch.zeros((H, W), dtype=torch.float32)
    owner = torch.zeros((H, W), dtype=torch.int32)
    own_area = []
    for k, cell in enumerate(cells, start=1):
        x0, y0, x1, y1 = cell.box
        X0, Y0 = int(np.floor(x0 * sx)), int(np.floor(y0 * sy))
        X1, Y1 = min(W, int(np.ceil(x1 * sx))), min(H, int(np.ceil(y1 * sy)))
        crop = cell.prob[y0:y1, x0:x1].float()
        if crop.numel() == 0 or X1 <= X0 or Y1 <= Y0:
            own_area.append(0)
            continue
        up = F.interpolate(crop[None, None], size=(Y1 - Y0, X1 - X0), mode="bilinear", align_corners=False)[0, 0]
        inside = up >= _MASK_THRESHOLD
        own_area.append(int(inside.sum()))
        value = torch.where(inside, up * cell.score, torch.zeros_like(up))
        region = best[Y0:Y1, X0:X1]
        win = value > region
        region[win] = value[win]
        owner[Y0:Y1, X0:X1][win] = k
    owner_np = owner.numpy()
    areas = np.bincount(owner_np.ravel(), minlength=len(cells) + 1)
    kept = [
        k - 1
        for k in range(1, len(cells) + 1)
        if own_area[k - 1] and areas[k] >= config.min_cell_fraction * own_area[k - 1]
    ]
    relabel = np.zeros(len(cells) + 1, np.int32)
    relabel[[k + 1 for k in kept]] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return relabel[owner_np], kept
