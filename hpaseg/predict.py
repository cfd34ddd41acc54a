"""``python -m hpaseg.predict``: per-cell masks and labels for unseen images -> Kaggle submission.

Mask R-CNN route (``--weights RUN/model_final.pth``)
----------------------------------------------------
1. Each image is read, resized so its longer side is the model's working size, and
   run through the model in batches.
2. Detections are *per (cell, class)*, as the model was trained (one instance per
   (cell, label)). Detections whose masks overlap at IoU >= ``group_iou`` are one cell;
   the cell keeps, per class, the best score, and the mask of its best detection.
3. Overlaps are resolved so each pixel belongs to one cell: the cell whose mask
   probability times score is highest there. Cells left smaller than
   ``min_cell_fraction`` of their own mask are dropped.
4. Masks are pasted back at the image's original resolution (each cell's soft mask
   upsampled bilinearly within its box, then thresholded at 0.5).
5. Labels: every class with a score >= ``min_score`` is reported with its score (more
   than one per cell). A cell with no class scoring >= ``negative_threshold`` is also
   reported as Negative (18) with confidence ``1 - best score``, unless the model's
   own Negative score is higher.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import io
from .classes import NEGATIVE, NUM_CLASSES
from .errors import ArgumentParser, InputError, cli_entry
from .submission import Prediction, SubmissionRow, encode_label_image, write_submission

__all__ = [
    "PostprocessConfig",
    "CellPrediction",
    "group_detections",
    "compose_label_image",
    "cell_labels",
    "predict_images",
    "load_checkpoint",
    "build_parser",
    "main",
]

_MASK_THRESHOLD = 0.5


@dataclass(frozen=True)
class PostprocessConfig:
    """How detections become cells (see the module docstring)."""

    group_iou: float = 0.5
    min_score: float = 0.05
    negative_threshold: float = 0.3
    min_cell_fraction: float = 0.3


@dataclass
class CellPrediction:
    """One predicted cell: soft mask at working size, its box there, per-class scores."""

    prob: torch.Tensor  # (h, w) float in [0, 1]
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in working px, exclusive ends
    scores: dict[int, float] = field(default_factory=dict)  # class id -> score

    @property
    def score(self) -> float:
        return max(self.scores.values()) if self.scores else 0.0


def group_detections(boxes: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, masks: torch.Tensor, config: PostprocessConfig = PostprocessConfig()) -> list[CellPrediction]:
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
        box = (max(0, int(np.floor(x0))), max(0, int(np.floor(y0))), min(w, int(np.ceil(x1)) + 1), min(h, int(np.ceil(y1)) + 1))
        cells.append(CellPrediction(masks[i], box, {cls: score}))
        cell_bin.append(binary)
    return cells


def compose_label_image(cells: Sequence[CellPrediction], working_shape: tuple[int, int], out_shape: tuple[int, int], config: PostprocessConfig = PostprocessConfig()) -> tuple[np.ndarray, list[int]]:
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
    kept = [k - 1 for k in range(1, len(cells) + 1) if own_area[k - 1] and areas[k] >= config.min_cell_fraction * own_area[k - 1]]
    relabel = np.zeros(len(cells) + 1, np.int32)
    relabel[[k + 1 for k in kept]] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return relabel[owner_np], kept


def cell_labels(scores: dict[int, float], config: PostprocessConfig = PostprocessConfig()) -> list[tuple[int, float]]:
    """The (class, confidence) pairs reported for one cell.

    >>> cell_labels({0: 0.9, 16: 0.2, 5: 0.01})
    [(0, 0.9), (16, 0.2)]
    >>> cell_labels({16: 0.2})
    [(16, 0.2), (18, 0.8)]
    """
    out = {k: s for k, s in scores.items() if s >= config.min_score}
    positive = max((s for k, s in scores.items() if k != NEGATIVE), default=0.0)
    if positive < config.negative_threshold:
        out[NEGATIVE] = max(out.get(NEGATIVE, 0.0), 1.0 - positive)
    return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))


@torch.no_grad()
def predict_images(model: torch.nn.Module, images: Sequence[torch.Tensor], out_shapes: Sequence[tuple[int, int]], config: PostprocessConfig = PostprocessConfig()) -> list[tuple[np.ndarray, dict[int, list[tuple[int, float]]]]]:
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
        cells = group_detections(out["boxes"].cpu(), out["labels"].cpu(), out["scores"].cpu(), out["masks"].cpu().float(), config)
        label_image, kept = compose_label_image(cells, tuple(image.shape[-2:]), tuple(shape), config)
        results.append((label_image, {k: cell_labels(cells[i].scores, config) for k, i in enumerate(kept, start=1)}))
    return results


def submission_row(image_id: str, label_image: np.ndarray, cell_scores: dict[int, list[tuple[int, float]]]) -> SubmissionRow:
    """One submission row from a label image and per-cell (class, confidence) pairs."""
    encoded = encode_label_image(label_image, list(cell_scores))
    predictions = [Prediction(k, conf, encoded[cell]) for cell, pairs in cell_scores.items() for k, conf in pairs]
    return SubmissionRow(image_id, label_image.shape[1], label_image.shape[0], predictions)


def load_checkpoint(path: str | Path, backbone: str) -> dict:
    """Read a Mask R-CNN checkpoint written by ``hpaseg train`` and check its backbone."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--weights {path}: no such file; give RUN/model_final.pth from 'hpaseg train'")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for bad files
        raise InputError(f"--weights {path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt or "backbone" not in ckpt:
        raise InputError(f"--weights {path}: not an hpaseg checkpoint (expected keys 'model' and 'backbone')")
    if ckpt["backbone"] != backbone:
        raise InputError(f"--weights {path}: trained with backbone {ckpt['backbone']!r}, not --backbone {backbone!r}; pass --backbone {ckpt['backbone']}")
    return ckpt


def build_model_from_checkpoint(ckpt: dict, *, score_threshold: float, path: str | Path = "checkpoint") -> torch.nn.Module:
    """The torchvision Mask R-CNN of a checkpoint, weights loaded."""
    from .models.maskrcnn import build_maskrcnn

    model = build_maskrcnn(ckpt["backbone"], image_size=int(ckpt["image_size"]), pretrained=None, score_threshold=score_threshold)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"--weights {path}: weights do not fit backbone {ckpt['backbone']!r} ({first})") from exc
    return model


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg predict``."""
    from .models.maskrcnn import BACKBONES, DEFAULT_BACKBONE

    parser = ArgumentParser(prog="hpaseg predict", description="Predict per-cell masks and labels for images and write a Kaggle submission.")
    g = parser.add_argument_group("model")
    g.add_argument("--engine", default="torchvision", choices=None, help="torchvision (default) or detectron2")
    g.add_argument("--backbone", default=DEFAULT_BACKBONE, help=f"one of {', '.join(BACKBONES)} (default {DEFAULT_BACKBONE}); must match the weights")
    g.add_argument("--weights", required=True, help="checkpoint from hpaseg train (RUN/model_final.pth)")
    g.add_argument("--config", help="detectron2 engine: the run's config.yaml (default: next to the weights)")
    g = parser.add_argument_group("data and output")
    g.add_argument("--data", required=True, help="folder of {ID}_{red,green,blue,yellow}.png test images")
    g.add_argument("--ids", nargs="+", help="only these image IDs (default: all in --data)")
    g.add_argument("--out", required=True, help="submission CSV to write")
    g.add_argument("--save-masks", help="also write {ID}_cellmask.png and cells.csv (ID,cell,label,confidence) here")
    g = parser.add_argument_group("inference")
    g.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu (default: cuda when available)")
    g.add_argument("--batch-size", type=int, default=2, help="images per forward pass (default 2)")
    g.add_argument("--workers", type=int, default=4, help="image-reading threads (default 4)")
    g.add_argument("--min-score", type=float, default=PostprocessConfig.min_score, help="lowest class score reported (default %(default)s)")
    g.add_argument("--negative-threshold", type=float, default=PostprocessConfig.negative_threshold, help="a cell with no class at or above this is also Negative (default %(default)s)")
    g.add_argument("--group-iou", type=float, default=PostprocessConfig.group_iou, help="detections overlapping this much are one cell (default %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _run_torchvision(args, config: PostprocessConfig, ids: list[str]) -> tuple[list[SubmissionRow], list[tuple[str, np.ndarray, dict]]]:
    from tqdm import tqdm

    from .dataset import resize_image

    ckpt = load_checkpoint(args.weights, args.backbone)
    device = torch.device(args.device)
    model = build_model_from_checkpoint(ckpt, score_threshold=config.min_score, path=args.weights).to(device).eval()
    size = int(ckpt["image_size"])
    rows, saved = [], []
    batch: list[tuple[str, np.ndarray]] = []

    def flush() -> None:
        tensors = [torch.from_numpy(np.ascontiguousarray(resize_image(img, size).transpose(2, 0, 1))).float().div_(255.0).to(device) for _, img in batch]
        for (image_id, img), (label_image, cell_scores) in zip(batch, predict_images(model, tensors, [img.shape[:2] for _, img in batch], config)):
            rows.append(submission_row(image_id, label_image, cell_scores))
            if args.save_masks:
                saved.append((image_id, label_image, cell_scores))
        batch.clear()

    for image_id, image in tqdm(io.iter_rgby(args.data, ids, workers=args.workers), total=len(ids), desc="predict", unit="img", disable=args.quiet):
        batch.append((image_id, image))
        if len(batch) == args.batch_size:
            flush()
    if batch:
        flush()
    return rows, saved


@cli_entry("predict")
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg predict``."""
    from .models.maskrcnn import BACKBONES

    args = build_parser().parse_args(argv)
    if args.engine not in ("torchvision", "detectron2"):
        raise InputError(f"--engine {args.engine!r}: expected torchvision or detectron2")
    if args.engine == "torchvision" and args.backbone not in BACKBONES:
        raise InputError(f"--backbone {args.backbone!r}: unknown backbone; expected one of {', '.join(BACKBONES)}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size}: expected a positive integer")
    config = PostprocessConfig(group_iou=args.group_iou, min_score=args.min_score, negative_threshold=args.negative_threshold)
    ids = args.ids or io.list_image_ids(args.data)
    if not ids:
        raise InputError(f"--data {args.data}: no images ({{ID}}_green.png files) found")
    for image_id in ids:  # fail before the model runs if a channel is missing
        for channel in ("red", "green", "blue", "yellow"):
            io.find_channel_file(args.data, image_id, channel)
    if args.engine == "torchvision":
        rows, saved = _run_torchvision(args, config, ids)
    else:
        from .models import detectron2_engine

        rows, saved = detectron2_engine.predict(args, config, ids)
    write_submission(args.out, rows)
    if args.save_masks:
        out = Path(args.save_masks)
        for image_id, label_image, _ in saved:
            io.write_mask_png(out / f"{image_id}_cellmask.png", label_image)
        io.write_csv_rows(out / "cells.csv", ["ID", "cell", "label", "confidence"], ([i, c, k, f"{s:.6g}"] for i, _, cs in saved for c, pairs in cs.items() for k, s in pairs))
    n_cells = sum(len({p.mask for p in r.predictions}) for r in rows)
    print(f"predicted {n_cells} cells in {len(rows)} images ({sum(len(r.predictions) for r in rows)} (cell, label) predictions) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
