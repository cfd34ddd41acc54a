"""``hpaseg demo``: the whole pipeline on a small synthetic dataset, on the CPU.

synth -> segment (train and test) -> segmentation quality against the synthetic truth
-> propagate (COCO dataset) -> baselines -> train a small Mask R-CNN -> predict the test
images -> validate -> evaluate (competition mAP) -> an overlay PNG.

Baselines, scored on the segmented test cells:

* *prior* (no training): every cell gets every class, with the class's frequency
  among the propagated training cells as its confidence. It uses no pixel of the test
  images beyond their segmentation.
* *random labels*: two random classes per cell, random confidences.
* *weak-label oracle*: each cell labelled with its image's true labels, which a real
  model never sees; the reference a model trained on weak labels aims for.

The Mask R-CNN (DenseNet121-FPN, torchvision, random initialisation) is trained for
``--train-iters`` iterations only: on 2 CPU cores that is a few minutes, enough to see
the loss fall, not to reach the oracle. ``--train-iters 0`` skips training. Reruns
reuse what is finished (data, masks, the trained model).
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from . import evaluate, io, predict, propagate, segment, submit, synth, train, validate
from .classes import NUM_CLASSES
from .errors import ArgumentParser, InputError, cli_entry
from .metrics import competition_map, match_label_images
from .submission import read_submission
from .visualize import composite_rgb, draw_outlines

__all__ = ["build_parser", "main", "prior_confidences"]

_TRUE_OUTLINE = (255, 255, 255)
_PRED_OUTLINE = (255, 200, 0)
_MASKRCNN_OUTLINE = (0, 230, 255)


def prior_confidences(cell_label_strings: Sequence[str]) -> np.ndarray:
    """Fraction of cells that carry each class.

    Parameters
    ----------
    cell_label_strings : sequence of str
        One ``'|'``-separated label string per cell.

    Returns
    -------
    ndarray, shape (19,), float64

    >>> prior_confidences(["0|16", "16"])[[0, 16, 18]].tolist()
    [0.5, 1.0, 0.0]
    """
    counts = Counter(label for text in cell_label_strings for label in io.parse_labels(text))
    n = max(len(cell_label_strings), 1)
    return np.array([counts.get(k, 0) / n for k in range(NUM_CLASSES)])


def _write_cell_table(path: Path, rows: list[tuple[str, int, int, float]]) -> None:
    io.write_csv_rows(path, ["ID", "cell", "label", "confidence"], ([i, c, lab, f"{conf:.6g}"] for i, c, lab, conf in rows))


def _cells_of(mask_dir: Path, image_ids: Sequence[str]) -> dict[str, list[int]]:
    out = {}
    for image_id in image_ids:
        cell_mask = io.read_mask(io.mask_paths(mask_dir, image_id)[0])
        out[image_id] = [int(v) for v in np.unique(cell_mask) if v != 0]
    return out


def _score(truth_csv: Path, submission_csv: Path) -> float:
    return float(competition_map(read_submission(truth_csv), read_submission(submission_csv)).mAP)


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg demo``."""
    parser = ArgumentParser(prog="hpaseg demo", description="Run the whole hpaseg pipeline on a small synthetic dataset.")
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--n-train", type=int, default=24, help="synthetic training images (default 24)")
    parser.add_argument("--n-test", type=int, default=8, help="synthetic test images (default 8)")
    parser.add_argument("--size", type=int, default=512, help="image size in px (default 512)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="segmentation worker processes (default 2)")
    model = parser.add_argument_group("Mask R-CNN")
    model.add_argument("--backbone", default="densenet121", help="torchvision backbone (default densenet121)")
    model.add_argument("--train-iters", type=int, default=60, help="training iterations, 0 = skip training (default 60)")
    model.add_argument("--image-size", type=int, default=256, help="training/inference working size in px (default 256)")
    model.add_argument("--batch-size", type=int, default=2, help="images per iteration (default 2)")
    model.add_argument("--lr", type=float, default=0.08, help="learning rate for 16 images per iteration, scaled linearly (default 0.08)")
    return parser


@cli_entry("demo")
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg demo``."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    out = Path(args.out)
    params = {k: getattr(args, k) for k in ("n_train", "n_test", "size", "seed")}
    params_path = out / "demo_params.json"
    if out.exists() and (not params_path.is_file() or io.read_json(params_path) != params):
        if params_path.is_file():
            shutil.rmtree(out)  # a demo folder made with other settings: start again
        elif any(out.iterdir()):
            raise InputError(f"--out {out}: folder exists and was not made by 'hpaseg demo'; choose another folder")
    data, masks, dataset = out / "data", out / "masks", out / "dataset"
    q = ["--quiet"]

    t = _step(f"1/7 synthetic data: {args.n_train} train + {args.n_test} test images, {args.size} px, seed {args.seed}")
    if not (data / "truth.csv").is_file():
        rc = synth.main([str(data), "--n-train", str(args.n_train), "--n-test", str(args.n_test), "--size", str(args.size), "--seed", str(args.seed)])
        if rc:
            return rc
        io.write_json(params_path, params)
    else:
        print(f"reusing {data}")
    print(f"   {time.perf_counter() - t:.1f} s")

    t = _step("2/7 segmentation (built-in watershed, no weights)")
    for split in ("train", "test"):
        rc = segment.main(["--data", str(data / split), "--out", str(masks / split), "--workers", str(args.workers)])
        if rc:
            return rc
    test_ids = io.list_image_ids(data / "test")
    matches = [match_label_images(io.read_mask_pair(data / "masks", i)[0], io.read_mask(io.mask_paths(masks / "test", i)[0]), iou_threshold=0.6) for i in test_ids]
    n_true, n_pred, n_hit = (sum(getattr(m, f) for m in matches) for f in ("n_true", "n_pred", "n_matched"))
    seg_precision, seg_recall = n_hit / max(n_pred, 1), n_hit / max(n_true, 1)
    print(f"   test images: {n_hit} of {n_true} true cells matched at IoU >= 0.6 by {n_pred} segmented cells: precision {seg_precision:.3f}, recall {seg_recall:.3f}")
    print(f"   {time.perf_counter() - t:.1f} s")

    t = _step("3/7 weak labels: every training cell gets its image's labels")
    rc = propagate.main(["--csv", str(data / "train.csv"), "--masks", str(masks / "train"), "--data", str(data / "train"), "--out", str(dataset), "--val-fraction", "0.2", *q])
    if rc:
        return rc
    print(f"   {time.perf_counter() - t:.1f} s")

    t = _step("4/7 baselines (NO TRAINING): class priors, random labels, weak-label oracle")
    cell_rows = io.read_csv_rows(dataset / "cells.csv", ["ID", "Label"])
    prior = prior_confidences([r["Label"] for r in cell_rows if r["split"] == "train"])
    test_cells = _cells_of(masks / "test", test_ids)
    baseline = [(i, c, k, float(prior[k])) for i, cells in test_cells.items() for c in cells for k in range(NUM_CLASSES) if prior[k] > 0]
    _write_cell_table(out / "baseline_cells.csv", baseline)
    rc = submit.main(["--masks", str(masks / "test"), "--cells", str(out / "baseline_cells.csv"), "--data", str(data / "test"), "--out", str(out / "submission.csv")])
    if rc:
        return rc
    rc = validate.main([str(out / "submission.csv"), "--data", str(data / "test")])
    if rc:
        return rc
    # References on the same segmented cells: random labels, and the weak-label oracle.
    rng = np.random.default_rng(args.seed)
    random_rows = [(i, c, int(k), float(rng.random())) for i, cells in test_cells.items() for c in cells for k in rng.choice(NUM_CLASSES, size=2, replace=False)]
    _write_cell_table(out / "random_cells.csv", random_rows)
    true_cell_labels = io.read_csv_rows(data / "cell_labels.csv", ["ID", "cell", "Label"])
    image_labels: dict[str, set[int]] = {}
    for r in true_cell_labels:
        image_labels.setdefault(r["ID"], set()).update(io.parse_labels(r["Label"]))
    oracle_rows = [(i, c, k, 1.0) for i, cells in test_cells.items() for c in cells for k in sorted(image_labels[i])]
    _write_cell_table(out / "weak_oracle_cells.csv", oracle_rows)
    for name in ("random", "weak_oracle"):
        rc = submit.main(["--masks", str(masks / "test"), "--cells", str(out / f"{name}_cells.csv"), "--data", str(data / "test"), "--out", str(out / f"{name}_submission.csv")])
        if rc:
            return rc
    print(f"   {time.perf_counter() - t:.1f} s")

    t = _step("5/7 competition metric (mAP over classes, mask IoU >= 0.6) of the prior baseline")
    rc = evaluate.main(["--truth", str(data / "truth.csv"), "--submission", str(out / "submission.csv"), "--out-json", str(out / "evaluation.json")])
    if rc:
        return rc
    scores = {name: _score(data / "truth.csv", out / sub) for name, sub in [("prior baseline (no training)", "submission.csv"), ("random labels", "random_submission.csv"), ("weak-label oracle (uses the test images' true labels)", "weak_oracle_submission.csv")]}
    print(f"   {time.perf_counter() - t:.1f} s")

    run = out / f"run_{args.backbone}_{args.image_size}px_{args.train_iters}it_lr{args.lr:g}"
    if args.train_iters > 0:
        t = _step(f"6/7 Mask R-CNN: train {args.backbone} for {args.train_iters} iterations at {args.image_size} px on the CPU, then predict the test images")
        if not (run / "model_final.pth").is_file():
            rc = train.main(["--dataset", str(dataset), "--data", str(data / "train"), "--out", str(run), "--backbone", args.backbone, "--device", "cpu",
                             "--image-size", str(args.image_size), "--batch-size", str(args.batch_size), "--max-iter", str(args.train_iters), "--lr", str(args.lr),
                             "--checkpoint-period", str(max(1, args.train_iters // 3)), "--eval-period", "0", "--workers", "0", "--resume", "--opts", "log_period", "5"])
            if rc:
                return rc
        else:
            print(f"reusing {run / 'model_final.pth'}")
        rc = predict.main(["--backbone", args.backbone, "--weights", str(run / "model_final.pth"), "--data", str(data / "test"), "--out", str(out / "maskrcnn_submission.csv"), "--device", "cpu", "--save-masks", str(out / "maskrcnn_masks")])
        if rc:
            return rc
        losses = [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
        print(f"   training loss {losses[0]:.3f} (first log) -> {losses[-1]:.3f} (last)")
        scores[f"Mask R-CNN {args.backbone}, {args.train_iters} CPU iterations"] = _score(data / "truth.csv", out / "maskrcnn_submission.csv")
        print(f"   {time.perf_counter() - t:.1f} s")

    t = _step("7/7 overlay")
    first = test_ids[0]
    image = io.read_rgby(data / "test", first)
    truth_mask = io.read_mask_pair(data / "masks", first)[0]
    pred_mask = io.read_mask(io.mask_paths(masks / "test", first)[0])
    rgb = composite_rgb(image)
    gap = np.full((rgb.shape[0], 8, 3), 255, np.uint8)
    panels = [draw_outlines(rgb, truth_mask, _TRUE_OUTLINE), gap, draw_outlines(rgb, pred_mask, _PRED_OUTLINE)]
    caption = "left: true cells (white); middle: watershed segmentation (orange)"
    maskrcnn_mask = out / "maskrcnn_masks" / f"{first}_cellmask.png"
    if args.train_iters > 0 and maskrcnn_mask.is_file():
        panels += [gap, draw_outlines(rgb, io.read_mask(maskrcnn_mask), _MASKRCNN_OUTLINE)]
        caption += "; right: Mask R-CNN cells (cyan)"
    overlay = out / f"overlay_{first}.png"
    io.write_rgb_png(overlay, np.concatenate(panels, axis=1))
    print(f"   {overlay}: {caption}")

    print("\n== summary")
    print(f"segmentation (test): precision {seg_precision:.3f}, recall {seg_recall:.3f} at IoU >= 0.6")
    for name, value in scores.items():
        print(f"mAP {value:.4f}  {name}")
    print(f"outputs in {out}/ ; total {time.perf_counter() - start:.0f} s")
    io.write_json(out / "demo_summary.json", {
        "params": {k: v for k, v in vars(args).items()},
        "segmentation": {"precision": seg_precision, "recall": seg_recall, "n_true": n_true, "n_pred": n_pred, "n_matched": n_hit},
        "mAP": scores,
        "training_loss": {"first": losses[0], "last": losses[-1]} if args.train_iters > 0 else None,
        "seconds": time.perf_counter() - start,
    }, indent=2)
    headline = next((v for k, v in scores.items() if k.startswith("Mask R-CNN")), scores["prior baseline (no training)"])
    print(f"mAP={headline:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
