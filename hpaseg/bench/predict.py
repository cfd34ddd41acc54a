"""``python -m hpaseg.bench predict``: the Mask R-CNN predict chain per image, step by step.

Synthetic RGBY fields (:mod:`hpaseg.synth`, ``--size`` px, 2048 by default) are written as
PNGs to a temporary folder, then each image goes through the chain of ``hpaseg predict``
with each step timed: ``read`` (four PNGs), ``resize`` (to the working size, as a tensor),
the network (``transform``, ``backbone``, ``rpn``, ``roi_heads``: the forward pass),
``paste_working`` (torchvision pastes each detection's 28x28 mask at working size),
``cells`` (score floor and mask-aware NMS, :func:`~hpaseg.detection.select_cells`),
``paste_full`` (one label image at full size, :func:`~hpaseg.detection.compose_label_image`),
``scores`` (:func:`~hpaseg.detection.cell_scores`) and ``encode`` (the submission row,
:func:`~hpaseg.submission.submission_row`).

Without ``--weights`` the model is a randomly initialised Mask R-CNN (no pretrained
weights offline) returning exactly ``--detections`` detections per image; as its masks are
noise, the steps after the forward pass get ``--detections`` detections built from the
field's true cells instead (every cell detected, the rest duplicates of them shifted by a
few px, scores in [0.5, 1]), so grouping, pasting and encoding see realistic cells. With
``--weights RUN/model_final.pth`` the trained model's own detections go through the chain.

The last line: ``forward_share=F other_share=O other_le_20pct=True|False peak_rss_mb=M``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .. import io
from ..classes import NUM_CLASSES, REFERENCE_SIZE_PX
from ..cli.base import ArgumentParser, add_quiet, cli_entry
from ..detection import (
    BACKBONES,
    DEFAULT_BACKBONE,
    MaskRCNNPredictor,
    PostprocessConfig,
    build_maskrcnn,
    cell_scores,
    compose_label_image,
    select_cells,
)
from ..errors import InputError
from ..io import write_json
from ..submission import submission_row
from ..transforms import resize_image, resize_labels, to_tensor
from .common import StepTimer, machine, peak_rss_mb, synth_folder

__all__ = ["FORWARD_STEPS", "build_parser", "truth_detections", "forward_in_steps", "run_chain", "main"]

#: The steps that are the network's forward pass; every other step is "the rest of the chain".
FORWARD_STEPS: tuple[str, ...] = ("transform", "backbone", "rpn", "roi_heads")
#: Target: everything but the forward pass at most this share of the chain (CPU, 2048 px).
OTHER_SHARE_TARGET = 0.20
#: Largest shift (px at working size) of a duplicate detection from its cell.
_DUPLICATE_SHIFT_PX = 3


def truth_detections(cells: np.ndarray, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """``n`` detections shaped like Mask R-CNN's output, built from a label image's true cells.

    Every cell is detected once (up to ``n``); the remaining detections are duplicates of
    cells, shifted by up to a few px. Soft masks are 1 inside, 0 outside, 0.5 on the edge.

    Parameters
    ----------
    cells : ndarray, shape (h, w), int
        True cells at working size (0 = background).
    n : int
        Detections to return.
    seed : int

    Returns
    -------
    dict
        ``scores`` (n,) in [0.5, 1], ``masks`` (n, 1, h, w) float32, ``label_probs`` (n, 19).

    >>> cells = np.zeros((8, 8), np.int32); cells[2:6, 2:6] = 1
    >>> d = truth_detections(cells, 3)
    >>> d["masks"].shape, float(d["masks"][0, 0].sum()) >= 16
    (torch.Size([3, 1, 8, 8]), True)
    """
    ids = np.unique(cells)
    ids = ids[ids != 0]
    if len(ids) == 0 or n < 1:
        raise InputError(f"detections {n}: expected >= 1 and a field with cells ({len(ids)} found)", param="detections")
    rng = np.random.default_rng(seed)
    h, w = cells.shape
    masks = torch.zeros((n, 1, h, w), dtype=torch.float32)
    for i in range(n):
        cell = ids[i % len(ids)]
        inside = torch.from_numpy(cells == cell).float()
        if i >= len(ids):
            dy, dx = (int(v) for v in rng.integers(-_DUPLICATE_SHIFT_PX, _DUPLICATE_SHIFT_PX + 1, size=2))
            inside = torch.roll(inside, shifts=(dy, dx), dims=(0, 1))
        masks[i, 0] = inside
    return {
        "scores": torch.from_numpy(rng.uniform(0.5, 1.0, n).astype(np.float32)),
        "masks": masks,
        "label_probs": torch.from_numpy(rng.uniform(0.0, 1.0, (n, NUM_CLASSES)).astype(np.float32)),
    }


@torch.no_grad()
def forward_in_steps(model: torch.nn.Module, tensor: torch.Tensor, timer: StepTimer) -> dict[str, torch.Tensor]:
    """A torchvision Mask R-CNN's eval forward on one image, each stage timed (:data:`FORWARD_STEPS`,
    then ``paste_working``); the same calls as ``GeneralizedRCNN.forward``. Returns the image's output."""
    model.eval()
    original = [tuple(tensor.shape[-2:])]
    with timer("transform"):
        images, _ = model.transform([tensor])
    with timer("backbone"):
        features = model.backbone(images.tensors)
    with timer("rpn"):
        proposals, _ = model.rpn(images, features)
    with timer("roi_heads"):
        detections, _ = model.roi_heads(features, proposals, images.image_sizes)
    with timer("paste_working"):
        detections = model.transform.postprocess(detections, images.image_sizes, original)
    return detections[0]


def run_chain(
    model: torch.nn.Module,
    folder: Path,
    image_id: str,
    *,
    image_size: int,
    device: torch.device,
    config: PostprocessConfig,
    timer: StepTimer,
    detections: dict[str, torch.Tensor] | None = None,
) -> dict[str, int]:
    """One image through the whole predict chain, each step timed into ``timer``.

    ``detections`` (working-size model output) replaces the model's own in the steps after
    the forward pass when given. Returns counts: ``detections``, ``cells`` kept, ``predictions``
    (submission entries).
    """
    with timer("read"):
        image = io.read_rgby(folder, image_id)
    with timer("resize"):
        tensor = to_tensor(resize_image(image, image_size)).to(device)
    output = forward_in_steps(model, tensor, timer)
    if detections is not None:
        output = detections
    with timer("cells"):
        cells = select_cells(
            output["scores"].detach().cpu().float(),
            output["masks"].detach().cpu().float(),
            output["label_probs"].detach().cpu().float(),
            config,
        )
    with timer("paste_full"):
        label_image, kept = compose_label_image(cells, tuple(tensor.shape[-2:]), image.shape[:2], config)
    with timer("scores"):
        probs = np.array([cells[i].label_probs for i in kept], dtype=np.float64).reshape(-1, NUM_CLASSES)
        scores = cell_scores(probs, np.array([cells[i].score for i in kept], dtype=np.float64), config)
    with timer("encode"):
        row = submission_row(image_id, label_image, scores)
    return {"detections": len(output["scores"]), "cells": len(kept), "predictions": len(row.predictions)}


def build_parser() -> ArgumentParser:
    """Options of ``python -m hpaseg.bench predict``."""
    parser = ArgumentParser(prog="hpaseg bench predict", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=REFERENCE_SIZE_PX, help="input field size in px (default 2048)")
    parser.add_argument("--image-size", type=int, default=1024, help="model working size in px (default 1024)")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE, help=f"one of {', '.join(BACKBONES)}")
    parser.add_argument("--weights", help="a trained RUN/model_final.pth (default: random weights)")
    parser.add_argument("--detections", type=int, default=100, help="detections per image (default 100)")
    parser.add_argument("--images", type=int, default=2, help="timed images (default 2, after one warm-up)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic fields (default 0)")
    parser.add_argument("--out-json", help="also write the figures here")
    add_quiet(parser)
    return parser


def bench_predict(
    *,
    size: int,
    image_size: int,
    backbone: str,
    weights: str | None,
    detections: int,
    images: int,
    device: torch.device,
    seed: int,
) -> dict:
    """Run the chain over ``images`` synthetic fields (after one warm-up); returns the figures."""
    if images < 1 or detections < 1:
        raise InputError(f"images {images}, detections {detections}: expected positive integers", param="images")
    config = PostprocessConfig()
    if weights:
        predictor = MaskRCNNPredictor.from_checkpoint(weights, device=device, config=config)
        model, image_size, backbone = predictor.model, predictor.image_size, predictor.backbone
    else:
        torch.manual_seed(seed)
        model = build_maskrcnn(backbone, image_size=image_size, score_threshold=0.0).to(device).eval()
        model.roi_heads.detections_per_img = detections
    with tempfile.TemporaryDirectory(prefix="hpaseg-bench-predict-") as tmp:
        t0 = time.perf_counter()
        folder = synth_folder(tmp, n_images=images, size=size, seed=seed)
        synth_s = time.perf_counter() - t0
        ids = io.list_image_ids(folder)
        given = {}
        if not weights:
            for image_id in ids:
                truth = io.read_mask(io.mask_paths(Path(tmp) / "masks", image_id)[0])
                working = resize_image(np.zeros((*truth.shape, 1), np.uint8), image_size).shape[:2]
                given[image_id] = truth_detections(resize_labels(truth, working), detections, seed)
        run = dict(image_size=image_size, device=device, config=config)
        run_chain(model, folder, ids[0], timer=StepTimer(device), detections=given.get(ids[0]), **run)  # warm-up
        timer = StepTimer(device)
        counts = [run_chain(model, folder, i, timer=timer, detections=given.get(i), **run) for i in ids]
    per_image = {k: v / len(ids) for k, v in timer.seconds.items()}
    forward = sum(per_image[k] for k in FORWARD_STEPS)
    total = sum(per_image.values())
    return {
        "device": machine(device),
        "size": size,
        "image_size": image_size,
        "backbone": backbone,
        "weights": weights,
        "detections_source": "model" if weights else "true cells",
        "images": len(ids),
        "synth_seconds": synth_s,
        "seconds_per_image": per_image,
        "shares": {k: v / total for k, v in per_image.items()},
        "total_seconds_per_image": total,
        "forward_share": forward / total,
        "other_share": 1.0 - forward / total,
        "other_le_target": (1.0 - forward / total) <= OTHER_SHARE_TARGET,
        "counts": counts,
        "peak_rss_mb": peak_rss_mb(),
    }


@cli_entry("bench predict", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Time the predict chain; the last line printed holds the shares and the peak memory."""
    args = build_parser().parse_args(argv)
    if args.backbone not in BACKBONES:
        raise InputError(f"--backbone {args.backbone!r}: expected one of {', '.join(BACKBONES)}")
    device = torch.device(args.device)
    r = bench_predict(
        size=args.size,
        image_size=args.image_size,
        backbone=args.backbone,
        weights=args.weights,
        detections=args.detections,
        images=args.images,
        device=device,
        seed=args.seed,
    )
    print(
        f"device: {r['device']}; {r['images']} synthetic {args.size}-px fields, {r['backbone']} at {r['image_size']} px "
        f"({'weights ' + args.weights if args.weights else 'random weights'}), detections after the forward pass from "
        f"{r['detections_source']}"
    )
    print(f"{'step':<14} {'s/image':>9} {'share':>7}")
    for step, seconds in r["seconds_per_image"].items():
        mark = " (forward)" if step in FORWARD_STEPS else ""
        print(f"{step:<14} {seconds:>9.3f} {r['shares'][step]:>7.1%}{mark}")
    print(f"{'total':<14} {r['total_seconds_per_image']:>9.3f}")
    counts = r["counts"]
    print(
        "per image: "
        + ", ".join(f"{c['detections']} detections -> {c['cells']} cells, {c['predictions']} entries" for c in counts)
    )
    if args.out_json:
        write_json(args.out_json, r, indent=2)
    print(
        f"forward_share={r['forward_share']:.3f} other_share={r['other_share']:.3f} "
        f"other_le_20pct={r['other_le_target']} peak_rss_mb={r['peak_rss_mb']:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
