"""``hpaseg demo``: the whole pipeline on a small synthetic dataset, on the CPU, showing
that the models learn per-cell labels from image labels.

synth -> segment (train and test) -> segmentation quality against the synthetic truth
-> propagate (COCO dataset) -> every route of :mod:`hpaseg.pipeline.routes` (baselines;
the cell classifier trained on image labels with refined supervision; Mask R-CNN trained
on the classifier's cleaned cell labels; the hybrid) -> a table of competition mAP and
per-cell macro AP -> an overlay of a test image: truth | cell classifier | Mask R-CNN.
Reruns reuse what is finished (data, masks, trained runs).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import io
from ..detection import BACKBONES
from ..errors import InputError
from ..evaluation import COMPETITION_IOU_THRESHOLD, match_label_images
from ..labels import propagate_dataset
from ..runtime.config import check_numbers
from ..segmentation import make_segmenter, segment_images
from ..submission import read_submission
from ..synth import generate_dataset
from ..viz import CellPanel, cells_from_submission_row, plot_cell_panels
from ..viz.images import figure_to_rgb
from .routes import (
    MASKRCNN_CPU,
    MASKRCNN_CPU_ITERS,
    PRIOR,
    RANDOM,
    WEAK,
    RoutesConfig,
    RouteScore,
    routes_table,
    run_routes,
)

__all__ = ["DemoConfig", "run_demo", "PRIOR", "RANDOM", "WEAK", "LEARNED"]

log = logging.getLogger(__name__)

#: The route the demo's headline reports.
LEARNED = "cell classifier (descriptors, refined)"


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo (``hpaseg demo --help``)."""

    out: str = "demo_out"
    n_train: int = 60
    n_test: int = 12
    size: int = 512
    seed: int = 0
    workers: int = 2
    backbone: str = MASKRCNN_CPU["backbone"]
    # Mask R-CNN: 120 iterations of the CPU preset (64-channel FPN levels and heads, ~0.6 s a
    # step on 2 cores), so the demo stays within 4 minutes; chosen on the demo's seed 1 (120
    # steps 0.41 mAP, 200 steps 0.48; 256 channels x 30 steps 0.06, 128 x 80 0.32), the demo
    # reports seed 0. bench learn trains routes.MASKRCNN_CPU for MASKRCNN_CPU_ITERS.
    train_iters: int = 120
    fpn_channels: int = MASKRCNN_CPU["fpn_channels"]
    image_size: int = 256
    batch_size: int = 2
    lr: float = 0.16


def _step(title: str) -> float:
    log.info("\n== %s", title)
    return time.perf_counter()


def _done(started: float) -> None:
    log.info("   %.1f s", time.perf_counter() - started)


def _check(cfg: DemoConfig) -> None:
    """Refuse unusable Mask R-CNN settings before minutes of synthesis, segmentation and
    classifier training (the trainer would refuse them only then)."""
    check_numbers(cfg, positive=("image_size", "batch_size", "lr", "fpn_channels"), non_negative=("train_iters",))
    if cfg.backbone not in BACKBONES:
        raise InputError(
            f"backbone {cfg.backbone!r}: unknown backbone; expected one of {', '.join(BACKBONES)}", param="backbone"
        )


def _prepare_folder(cfg: DemoConfig) -> None:
    out = Path(cfg.out)
    params = {k: getattr(cfg, k) for k in ("n_train", "n_test", "size", "seed")}
    params_path = out / "demo_params.json"
    if out.exists() and (not params_path.is_file() or io.read_json(params_path) != params):
        if params_path.is_file():
            shutil.rmtree(out)  # a demo folder made with other settings: start again
        elif any(out.iterdir()):
            raise InputError(
                f"out {out}: folder exists and was not made by 'hpaseg demo'; choose another folder", param="out"
            )


def _segmentation_quality(data: Path, masks: Path, test_ids: list[str]) -> dict:
    matches = [
        match_label_images(
            io.read_mask_pair(data / "masks", i)[0],
            io.read_mask(io.mask_paths(masks / "test", i)[0]),
            iou_threshold=COMPETITION_IOU_THRESHOLD,
        )
        for i in test_ids
    ]
    n_true, n_pred, n_hit = (sum(getattr(m, f) for m in matches) for f in ("n_true", "n_pred", "n_matched"))
    return {
        "precision": n_hit / max(n_pred, 1),
        "recall": n_hit / max(n_true, 1),
        "n_true": n_true,
        "n_pred": n_pred,
        "n_matched": n_hit,
    }


def _overlay(out: Path, data: Path, test_ids: list[str], scores) -> Path:
    """Truth | cell classifier | Mask R-CNN (or hybrid) on the first test image, each cell
    outlined in its top class's colour with the class written inside."""
    first = test_ids[0]
    truth = {r.image_id: r for r in read_submission(data / "truth.csv")}[first]
    panels = [CellPanel("truth (per-cell labels)", *cells_from_submission_row(truth), text="all")]
    for score in scores:
        if score.submission and score.route.startswith(("cell classifier (descriptors, refined)", "Mask R-CNN")):
            row = {r.image_id: r for r in read_submission(score.submission)}[first]
            panels.append(CellPanel(f"{score.route}: mAP {score.mAP:.2f}", *cells_from_submission_row(row)))
    figure = plot_cell_panels(io.read_rgby(data / "test", first), panels, title=first)
    path = out / f"overlay_{first}.png"
    io.write_rgb_png(path, figure_to_rgb(figure))
    return path


def _synth(cfg: DemoConfig, out: Path, data: Path) -> None:
    t = _step(f"1/5 synthetic data: {cfg.n_train} train + {cfg.n_test} test images, {cfg.size} px, seed {cfg.seed}")
    if not (data / "truth.csv").is_file():
        summary = generate_dataset(
            data, cfg.n_train, cfg.n_test, cfg.size, cfg.seed, progress=False, workers=max(1, cfg.workers)
        )
        io.write_json(out / "demo_params.json", {k: getattr(cfg, k) for k in ("n_train", "n_test", "size", "seed")})
        log.info("wrote %d train + %d test images, %d cells", summary.n_train, summary.n_test, summary.n_cells)
    else:
        log.info("reusing %s", data)
    _done(t)


def _segment(cfg: DemoConfig, data: Path, masks: Path) -> dict:
    t = _step("2/5 segmentation (built-in watershed over its learned cell maps)")
    for split in ("train", "test"):
        log.info(
            segment_images(
                data / split, masks / split, None, make_segmenter("watershed"), workers=cfg.workers, progress=False
            ).line()
        )
    seg = _segmentation_quality(data, masks, io.list_image_ids(data / "test"))
    log.info(
        "   test images: %d of %d true cells matched at IoU >= 0.6 by %d segmented cells: precision %.3f, recall %.3f",
        seg["n_matched"], seg["n_true"], seg["n_pred"], seg["precision"], seg["recall"],
    )  # fmt: skip
    _done(t)
    return seg


def _propagate(data: Path, masks: Path, dataset: Path) -> None:
    t = _step("3/5 weak labels: every training cell gets its image's labels")
    if not (dataset / "propagate.json").is_file():
        propagate_dataset(
            data / "train.csv", masks / "train", dataset, data_dir=data / "train", val_fraction=0.2, progress=False
        )
    else:
        log.info("reusing %s", dataset)
    _done(t)


def _routes(cfg: DemoConfig, out: Path, data: Path, masks: Path, dataset: Path) -> list[RouteScore]:
    t = _step("4/5 routes: train on the image labels only, predict the test images, score against per-cell truth")
    routes = RoutesConfig(
        out=str(out / "routes"),
        data=str(data),
        masks=str(masks),
        dataset=str(dataset),
        supervisions=("refined",),
        maskrcnn_iters=cfg.train_iters,
        maskrcnn={
            "backbone": cfg.backbone,
            "image_size": cfg.image_size,
            "batch_size": cfg.batch_size,
            "fpn_channels": cfg.fpn_channels,
            "base_lr": cfg.lr,
            "warmup_iters": max(1, min(50, cfg.train_iters // 4)),
        },
        workers=cfg.workers,
        seed=cfg.seed,
    )
    scores = run_routes(routes, step=lambda line: log.info("-- %s", line))
    _done(t)
    return scores


def _report(scores: Sequence[RouteScore], seg: dict, overlay: Path, n_test: int) -> None:
    table = routes_table(scores).drop(columns=["submission"])
    log.info("segmentation (test): precision %.3f, recall %.3f at IoU >= 0.6", seg["precision"], seg["recall"])
    log.info("competition mAP (mask IoU >= 0.6) and per-cell macro AP on %d test images:", n_test)
    for row in table.itertuples():
        seconds = (
            ""
            if row.train_seconds is None or row.train_seconds != row.train_seconds
            else f"  ({row.train_seconds:.0f} s training)"
        )
        log.info("   mAP %.4f  cell AP %.4f  %s%s", row.mAP, row.cell_macro_ap, row.route, seconds)
    log.info("overlay: %s (truth | cell classifier | Mask R-CNN; each cell in its top class's colour)", overlay)
    log.info(
        "Mask R-CNN trains for only a few CPU iterations here, to keep the demo short; "
        "'python -m hpaseg.bench learn' trains it for %d (benchmarks/RESULTS.md)",
        MASKRCNN_CPU_ITERS,
    )


def run_demo(cfg: DemoConfig) -> dict:
    """Run the demo; returns (and writes as ``OUT/demo_summary.json``) its figures."""
    start = time.perf_counter()
    _check(cfg)
    _prepare_folder(cfg)
    out = Path(cfg.out)
    data, masks, dataset = out / "data", out / "masks", out / "dataset"
    _synth(cfg, out, data)
    seg = _segment(cfg, data, masks)
    _propagate(data, masks, dataset)
    scores = _routes(cfg, out, data, masks, dataset)
    t = _step("5/5 summary")
    test_ids = io.list_image_ids(data / "test")
    overlay = _overlay(out, data, test_ids, scores)
    _report(scores, seg, overlay, len(test_ids))
    summary = {
        "params": asdict(cfg),
        "segmentation": seg,
        "mAP": {s.route: s.mAP for s in scores},
        "cell_macro_ap": {s.route: s.cell_macro_ap for s in scores},
        "train_seconds": {s.route: s.train_seconds for s in scores},
        "overlay": str(overlay),
        "seconds": time.perf_counter() - start,
    }
    io.write_json(out / "demo_summary.json", summary, indent=2)
    _done(t)
    log.info("outputs in %s/ ; total %.0f s", out, summary["seconds"])
    return summary
