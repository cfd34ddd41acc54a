"""``python -m hpaseg.bench loader``: the Mask R-CNN data path alone, against the model's consumption.

Synthetic training fields (``--size`` px, 2048 by default) are written as PNGs, their true
masks turned into a COCO dataset (:func:`hpaseg.labels.propagate_dataset`) and cached at the
working size (``--image-size``, 1024 by default; :func:`hpaseg.labels.build_cache`, timed:
the one-off decode). Then the training loader (:class:`hpaseg.detection.CellDataset` with
augmentation, a ``DataLoader`` with :func:`hpaseg.detection.collate`) is read for
``--samples`` images with each of ``--workers`` worker counts: images/s, and images/s per
worker (the main process counts as one worker at 0). Unless ``--no-model``, one backbone's
training images/s at the same size and batch on ``--device`` (:mod:`hpaseg.bench.train`)
says how many workers keep that model fed.

The last line: ``loader_images_per_s_per_worker=L model_train_images_per_s=M workers_needed=W``.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from ..classes import REFERENCE_SIZE_PX
from ..cli.base import ArgumentParser, add_quiet, cli_entry
from ..detection import BACKBONES, DEFAULT_BACKBONE, CellDataset, collate
from ..errors import InputError
from ..io import write_json
from ..labels import build_cache, cache_folder, load_coco_split
from .common import machine, peak_rss_mb, synth_training_set
from .train import bench_torchvision, synth_batch

__all__ = ["build_parser", "time_loader", "bench_loader", "main"]


def time_loader(dataset: CellDataset, *, workers: int, batch_size: int, samples: int, seed: int = 0) -> float:
    """Images/s the training ``DataLoader`` delivers with ``workers`` worker processes.

    The clock starts at the first batch (worker start-up excluded) and stops after at
    least ``samples`` more images, epochs reshuffled as the trainer does.
    """
    seen, start, epoch = 0, None, 0
    while seen < samples:
        dataset.epoch = epoch
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed + epoch))
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate)
        for images, _ in loader:
            if start is None:
                start = time.perf_counter()
                continue
            seen += len(images)
            if seen >= samples:
                break
        epoch += 1
    return seen / (time.perf_counter() - start)


def bench_loader(
    *,
    size: int,
    image_size: int,
    images: int,
    workers: Sequence[int],
    batch_size: int,
    samples: int,
    seed: int,
) -> dict:
    """Cache ``images`` synthetic fields and time the loader at each worker count; returns the figures."""
    if images < 2 or samples < 1 or batch_size < 1 or any(w < 0 for w in workers):
        raise InputError(
            f"images {images}, samples {samples}, batch_size {batch_size}, workers {list(workers)}: "
            "expected images >= 2, samples and batch size >= 1, workers >= 0",
            param="images",
        )
    with tempfile.TemporaryDirectory(prefix="hpaseg-bench-loader-") as tmp:
        data, dataset = synth_training_set(tmp, n_images=images, size=size, seed=seed)
        records = [r for r in load_coco_split(dataset / "train.json") if r.cells]
        cache = cache_folder(dataset, image_size)
        t0 = time.perf_counter()
        build_cache(records, data, cache, image_size, workers=1, progress=False)
        cache_s = time.perf_counter() - t0
        dataset = CellDataset(records, cache, augment=True, seed=seed)
        rows = []
        for w in workers:
            ips = time_loader(dataset, workers=w, batch_size=batch_size, samples=samples, seed=seed)
            rows.append({"workers": w, "images_per_s": ips, "images_per_s_per_worker": ips / max(w, 1)})
        cells = float(np.mean([len(r.cells) for r in records]))
    return {
        "size": size,
        "image_size": image_size,
        "images": len(records),
        "cells_per_image": cells,
        "batch_size": batch_size,
        "cache_build_images_per_s": len(records) / cache_s,
        "rows": rows,
        "peak_rss_mb": peak_rss_mb(),
    }


def build_parser() -> ArgumentParser:
    """Options of ``python -m hpaseg.bench loader``."""
    parser = ArgumentParser(prog="hpaseg bench loader", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=REFERENCE_SIZE_PX, help="field size in px (default 2048)")
    parser.add_argument("--image-size", type=int, default=1024, help="working (cache) size in px (default 1024)")
    parser.add_argument("--images", type=int, default=8, help="synthetic fields cached (default 8)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="worker counts (default 0 1 2)")
    parser.add_argument("--batch-size", type=int, default=2, help="images per batch (default 2)")
    parser.add_argument("--samples", type=int, default=32, help="images timed per worker count (default 32)")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE, help="model whose training rate is compared")
    parser.add_argument("--device", default="cpu", help="device of that model (default cpu)")
    parser.add_argument("--no-model", action="store_true", help="time the loader only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-json", help="also write the figures here")
    add_quiet(parser)
    return parser


@cli_entry("bench loader", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Time the loader (and the model); the last line compares them."""
    args = build_parser().parse_args(argv)
    if args.backbone not in BACKBONES:
        raise InputError(f"--backbone {args.backbone!r}: expected one of {', '.join(BACKBONES)}")
    r = bench_loader(
        size=args.size,
        image_size=args.image_size,
        images=args.images,
        workers=args.workers,
        batch_size=args.batch_size,
        samples=args.samples,
        seed=args.seed,
    )
    print(
        f"{r['images']} synthetic {args.size}-px fields ({r['cells_per_image']:.1f} cells each) cached at "
        f"{args.image_size} px: {r['cache_build_images_per_s']:.2f} images/s to build the cache (decode, resize, write)"
    )
    print(f"{'workers':>7} {'images/s':>9} {'per worker':>11}")
    for row in r["rows"]:
        print(f"{row['workers']:>7} {row['images_per_s']:>9.2f} {row['images_per_s_per_worker']:>11.2f}")
    per_worker = max(row["images_per_s_per_worker"] for row in r["rows"])
    model_ips = float("nan")
    if not args.no_model:
        device = torch.device(args.device)
        torch.manual_seed(args.seed)
        batch = synth_batch(args.image_size, args.batch_size, seed=args.seed)
        model_ips = bench_torchvision(
            args.backbone, batch, device=device, amp=device.type == "cuda", iters=1, image_size=args.image_size
        )[0]
        print(
            f"model: {args.backbone} trains at {model_ips:.3f} images/s on {machine(device)} (batch {args.batch_size})"
        )
        r["model"] = {"backbone": args.backbone, "device": machine(device), "train_images_per_s": model_ips}
    needed = math.ceil(model_ips / per_worker) if math.isfinite(model_ips) else None
    r["workers_needed"] = needed
    if args.out_json:
        write_json(args.out_json, r, indent=2)
    print(
        f"loader_images_per_s_per_worker={per_worker:.2f} model_train_images_per_s={model_ips:.3f} workers_needed={needed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
