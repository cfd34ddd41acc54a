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

Cell-classifier route (``--classifier RUN --masks MASKS``)
----------------------------------------------------------
The route the top competition teams took: segment first, then classify each cell.

1. The cells are those of ``MASKS/{ID}_cellmask.png`` (from ``hpaseg segment``), at the
   image's original resolution; they are the submitted masks as they are.
2. Each cell is cropped as in training (:func:`hpaseg.cells.crop_cell`: square around
   the cell, background zeroed, resized to the run's crop size) and classified by the
   cell-level run of ``hpaseg classify`` (``RUN/model_final.pth``): per-class
   probabilities ``p_cell``.
3. Optional fusion with an image-level run (``--image-classifier RUN2``): the whole
   image gets probabilities ``p_image`` and, for every class k = 0..18 including
   Negative, ``p_k = w * p_cell_k + (1 - w) * p_image_k`` with ``w = --fusion-weight``
   (0.5 by default; 1 = the cell classifier alone, 0 = every cell gets its image's
   scores, the weak-label baseline).
4. Labels as in step 5 above (:func:`cell_labels`): every class with ``p_k >=
   min_score`` is reported with confidence ``p_k``, and Negative (18) is reported with
   ``1 - max(p_0..p_17)`` when no class 0-17 reaches ``negative_threshold``, unless the
   model's own (fused) Negative probability is higher.

``--backbone`` must match the cell classifier's (it defaults to it); the image
classifier may use any backbone.
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
    "fuse_probabilities",
    "classifier_cell_scores",
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
    [(18, 0.8), (16, 0.2)]
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
    from .training import read_checkpoint

    ckpt = read_checkpoint(path, option="--weights", hint="give RUN/model_final.pth from 'hpaseg train'", weights_only=False)
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


def fuse_probabilities(p_cell: np.ndarray, p_image: np.ndarray, weight: float) -> np.ndarray:
    """Fuse cell and image probabilities: ``weight * p_cell + (1 - weight) * p_image``.

    Parameters
    ----------
    p_cell : ndarray, shape (N, 19), float
        One row per cell.
    p_image : ndarray, shape (19,), float
        The image's probabilities, shared by its cells.
    weight : float
        In [0, 1]; 1 keeps the cell probabilities.

    Returns
    -------
    ndarray, shape (N, 19), float64

    Examples
    --------
    >>> fuse_probabilities(np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([0.5, 1.0]), 0.5).tolist()
    [[0.75, 0.5], [0.5, 0.75]]
    """
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"--fusion-weight {weight}: expected a number in [0, 1]")
    return weight * np.asarray(p_cell, dtype=np.float64) + (1.0 - weight) * np.asarray(p_image, dtype=np.float64)[None, :]


def classifier_cell_scores(image: np.ndarray, label_image: np.ndarray, cell_classifier, image_classifier=None, *, fusion_weight: float = 0.5, config: PostprocessConfig = PostprocessConfig()) -> dict[int, list[tuple[int, float]]]:
    """Per-cell (class, confidence) pairs of one image by the cell-classifier route (module docstring).

    Parameters
    ----------
    image : ndarray, shape (H, W, 4), uint8
        RGBY at original resolution.
    label_image : ndarray, shape (H, W), int
        Its cells (0 = background).
    cell_classifier, image_classifier : hpaseg.classify.LoadedClassifier
        A cell-level run, and optionally an image-level run to fuse with.
    fusion_weight : float
        ``w`` of :func:`fuse_probabilities`.

    Returns
    -------
    dict of int to list of (int, float)
        Cell label -> :func:`cell_labels` of its (fused) probabilities.
    """
    from .cells import crop_cells, square_image

    crops, ids = crop_cells(image, label_image, cell_classifier.input_size)
    if not len(ids):
        return {}
    p = cell_classifier.probabilities(crops)
    if image_classifier is not None:
        p_image = image_classifier.probabilities(square_image(image, image_classifier.input_size)[None])[0]
        p = fuse_probabilities(p, p_image, fusion_weight)
    return {int(cell): cell_labels({k: float(p[i, k]) for k in range(NUM_CLASSES)}, config) for i, cell in enumerate(ids)}


def _run_classifier(args, config: PostprocessConfig, ids: list[str]) -> tuple[list[SubmissionRow], list[tuple[str, np.ndarray, dict]]]:
    from tqdm import tqdm

    from .classify import load_classifier

    cell_clf = load_classifier(args.classifier, backbone=args.backbone, level="cell", device=args.device, option="--classifier")
    image_clf = None
    if args.image_classifier:
        image_clf = load_classifier(args.image_classifier, level="image", device=args.device, option="--image-classifier")
    weight = 0.5 if args.fusion_weight is None else args.fusion_weight
    rows, saved = [], []
    for image_id, image in tqdm(io.iter_rgby(args.data, ids, workers=args.workers), total=len(ids), desc="predict", unit="img", disable=args.quiet):
        mask_path = io.mask_paths(args.masks, image_id)[0]
        label_image = io.read_mask(mask_path)
        if label_image.shape != image.shape[:2]:
            raise InputError(f"{mask_path}: mask is {label_image.shape[0]}x{label_image.shape[1]} px but image {image_id!r} in {args.data} is {image.shape[0]}x{image.shape[1]}; masks must be at the image's original resolution")
        cell_scores = classifier_cell_scores(image, label_image, cell_clf, image_clf, fusion_weight=weight, config=config)
        rows.append(submission_row(image_id, label_image, cell_scores))
        if args.save_masks:
            saved.append((image_id, label_image, cell_scores))
    return rows, saved


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg predict``."""
    from .models.maskrcnn import BACKBONES, DEFAULT_BACKBONE

    parser = ArgumentParser(prog="hpaseg predict", description="Predict per-cell masks and labels for images and write a Kaggle submission.")
    g = parser.add_argument_group("model")
    g.add_argument("--engine", default="torchvision", choices=None, help="torchvision (default) or detectron2")
    g.add_argument("--backbone", default=None, help=f"Mask R-CNN: one of {', '.join(BACKBONES)} (default {DEFAULT_BACKBONE}); cell classifier: its backbone (default: the checkpoint's); must match the weights")
    g.add_argument("--weights", default=None, help="Mask R-CNN route: checkpoint from hpaseg train (RUN/model_final.pth)")
    g.add_argument("--config", help="detectron2 engine: the run's config.yaml (default: next to the weights)")
    g = parser.add_argument_group("cell-classifier route (instead of --weights)")
    g.add_argument("--classifier", help="cell-level run of hpaseg classify (RUN or RUN/model_final.pth)")
    g.add_argument("--masks", help="folder of {ID}_cellmask.png of the test images (hpaseg segment); needed with --classifier")
    g.add_argument("--image-classifier", help="image-level run of hpaseg classify whose probabilities are fused with the cells'")
    g.add_argument("--fusion-weight", type=float, default=None, help="w in w * p_cell + (1 - w) * p_image (default 0.5; needs --image-classifier)")
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


def _check_classifier_args(args) -> None:
    """Options of the cell-classifier route, checked before anything is read."""
    from .models.classifier import check_backbone

    if args.weights is not None:
        raise InputError("--weights (Mask R-CNN route) and --classifier (cell-classifier route) exclude each other; give one")
    if args.engine != "torchvision":
        raise InputError(f"--engine {args.engine}: the cell-classifier route has no engine option; drop --engine")
    if args.masks is None:
        raise InputError("--classifier needs --masks: the folder of {ID}_cellmask.png of the test images (hpaseg segment)")
    if not Path(args.masks).is_dir():
        raise InputError(f"--masks {args.masks}: no such folder")
    if args.backbone is not None:
        check_backbone(args.backbone)
    if args.fusion_weight is not None:
        if args.image_classifier is None:
            raise InputError("--fusion-weight needs --image-classifier (the image-level run to fuse with)")
        if not 0.0 <= args.fusion_weight <= 1.0:
            raise InputError(f"--fusion-weight {args.fusion_weight}: expected a number in [0, 1]")


@cli_entry("predict")
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg predict``."""
    from .models.maskrcnn import BACKBONES, DEFAULT_BACKBONE

    args = build_parser().parse_args(argv)
    if args.classifier is None:
        for option in ("masks", "image_classifier", "fusion_weight"):
            if getattr(args, option) is not None:
                raise InputError(f"--{option.replace('_', '-')} belongs to the cell-classifier route; add --classifier RUN (or drop it for the Mask R-CNN route)")
        if args.weights is None:
            raise InputError("the following arguments are required: --weights (Mask R-CNN route), or --classifier RUN --masks MASKS (cell-classifier route)")
        args.backbone = args.backbone or DEFAULT_BACKBONE
    else:
        _check_classifier_args(args)
    if args.classifier is None and args.engine not in ("torchvision", "detectron2"):
        raise InputError(f"--engine {args.engine!r}: expected torchvision or detectron2")
    if args.classifier is None and args.engine == "torchvision" and args.backbone not in BACKBONES:
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
    if args.classifier is not None:
        for image_id in ids:  # fail before the model runs if a mask is missing
            if not io.mask_paths(args.masks, image_id)[0].is_file():
                raise InputError(f"--masks {args.masks}: no {image_id}_cellmask.png for image {image_id!r} of {args.data}; run 'hpaseg segment' on the test images first")
        rows, saved = _run_classifier(args, config, ids)
    elif args.engine == "torchvision":
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
