"""``hpaseg train``: Mask R-CNN on propagated cell labels.

Engines
-------
* ``--engine torchvision`` (default): the loop below, read top to bottom. Backbones
  ``densenet121`` (DenseNet121-FPN), ``densenet121_c5``, ``resnet101_fpn``, ``resnext101_fpn``.
* ``--engine detectron2 --config detectron_configs/mask_rcnn_R_101_FPN_hpa.yaml``:
  detectron2's trainer with the HPA dataset, mapper and evaluator of
  :mod:`hpaseg.models.detectron2_engine` (needs detectron2 installed).

Runs on the CPU (smoke runs), one GPU, or many GPUs and nodes: start one process per
GPU with ``torchrun`` or ``srun`` (``slurm/run-model.sbatch``); :mod:`hpaseg.dist`
reads the launcher's variables. Outputs in ``--out RUN``: ``config.yaml`` (the merged
config), ``model_XXXXXXX.pth`` checkpoints and ``last_checkpoint``, ``model_final.pth``,
``metrics.jsonl``, TensorBoard logs in ``tb/``. ``--resume`` continues from the last
checkpoint.
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import dist
from .errors import ArgumentParser, InputError, cli_entry
from .training import Checkpointer, MetricsLogger, apply_opts, lr_factor, save_config, seed_everything

__all__ = ["TrainConfig", "train_torchvision", "evaluate_map", "build_parser", "main"]

log = logging.getLogger("hpaseg.train")

#: Images per iteration that ``base_lr`` is given for (the linear scaling rule).
REFERENCE_BATCH = 16


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every setting of a torchvision-engine run; saved as ``RUN/config.yaml``.
    Any field can be overridden with ``--opts KEY VALUE``."""

    backbone: str = "densenet121"
    dataset: str = ""
    data: str = ""
    out: str = ""
    image_size: int = 512
    batch_size: int = 2  # per process
    max_iter: int = 1000
    base_lr: float = 0.02  # for REFERENCE_BATCH images per iteration; scaled linearly
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # or "step"
    steps: tuple = (0.67, 0.89)  # fractions of max_iter, for "step"
    gamma: float = 0.1
    warmup_iters: int = 100
    warmup_factor: float = 0.001
    clip_grad_norm: float = 10.0
    amp: bool = True  # CUDA only
    checkpoint_period: int = 500
    eval_period: int = 500  # 0 = only at the end
    max_eval_images: int = 50
    log_period: int = 20
    pretrained: str | None = None  # None, "imagenet" or a torchvision checkpoint path
    device: str = "cuda"
    workers: int = 2
    seed: int = 0


def _loader(dataset, cfg: TrainConfig, info: dist.DistInfo, epoch: int):
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

    from .dataset import collate

    dataset.epoch = epoch
    if info.distributed:
        sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed)
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(cfg.seed + epoch))
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers, collate_fn=collate, drop_last=len(dataset) >= cfg.batch_size * info.world_size, persistent_workers=False)


def _batches(dataset, cfg: TrainConfig, info: dist.DistInfo, start_epoch: int):
    """Endless stream of ``(epoch, images, targets)``."""
    epoch = start_epoch
    while True:
        for images, targets in _loader(dataset, cfg, info, epoch):
            yield epoch, images, targets
        epoch += 1


@torch.no_grad()
def evaluate_map(model: torch.nn.Module, dataset, device: torch.device, *, max_images: int) -> float:
    """Competition mAP on (part of) the validation split, at working resolution, against the
    propagated (weak) cell labels."""
    from .metrics import competition_map
    from .predict import predict_images, submission_row
    from .submission import Prediction, SubmissionRow, encode_label_image

    was_training = model.training
    model.eval()
    truth, preds = [], []
    for index in range(min(len(dataset), max_images)):
        image, cells = dataset.load(index)
        record = dataset.records[index]
        encoded = encode_label_image(cells, list(record.cells))
        truth.append(SubmissionRow(record.image_id, cells.shape[1], cells.shape[0], [Prediction(k, 1.0, encoded[c]) for c, ks in record.cells.items() if c in encoded and (cells == c).any() for k in ks]))
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0).to(device)
        label_image, cell_scores = predict_images(model, [tensor], [cells.shape])[0]
        preds.append(submission_row(record.image_id, label_image, cell_scores))
    model.train(was_training)
    if not truth:
        return float("nan")
    return float(competition_map(truth, preds).mAP)


def _state(model, optimizer, scheduler, scaler, iteration: int, epoch: int, cfg: TrainConfig) -> dict:
    from . import __version__

    return {
        "model": (model.module if hasattr(model, "module") else model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "iteration": iteration,
        "epoch": epoch,
        "engine": "torchvision",
        "backbone": cfg.backbone,
        "image_size": cfg.image_size,
        "config": dataclasses.asdict(cfg),
        "hpaseg_version": __version__,
    }


def train_torchvision(cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> Path:
    """Train a torchvision Mask R-CNN; returns the path of ``model_final.pth``."""
    from tqdm import tqdm

    from .dataset import CellDataset, build_cache, load_coco_split
    from .models.maskrcnn import build_maskrcnn

    info, device = dist.init(cfg.device)
    out = Path(cfg.out)
    checkpointer = Checkpointer(out)
    seed_everything(cfg.seed + info.rank)
    dataset_dir = Path(cfg.dataset)
    train_records = load_coco_split(dataset_dir / "train.json")
    val_records = load_coco_split(dataset_dir / "val.json") if (dataset_dir / "val.json").is_file() else []
    train_records = [r for r in train_records if r.cells]
    if not train_records:
        raise InputError(f"--dataset {dataset_dir}: train.json has no image with cells; nothing to train on")
    cache_dir = dataset_dir / f"cache_{cfg.image_size}px"
    if dist.is_main():
        out.mkdir(parents=True, exist_ok=True)
        save_config(out / "config.yaml", cfg)
        build_cache(train_records + val_records, cfg.data, cache_dir, cfg.image_size, progress=progress)
    dist.barrier()
    train_set = CellDataset(train_records, cache_dir, augment=True, seed=cfg.seed)
    val_set = CellDataset([r for r in val_records if r.cells], cache_dir)

    model = build_maskrcnn(cfg.backbone, image_size=cfg.image_size, pretrained=cfg.pretrained).to(device)
    if info.distributed:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    # Linear scaling rule: base_lr is for REFERENCE_BATCH images per iteration.
    lr = cfg.base_lr * cfg.batch_size * info.world_size / REFERENCE_BATCH
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda it: lr_factor(it, max_iter=cfg.max_iter, warmup_iters=cfg.warmup_iters, warmup_factor=cfg.warmup_factor, schedule=cfg.schedule, steps=cfg.steps, gamma=cfg.gamma),
    )
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)

    start_iter, start_epoch = 0, 0
    last = checkpointer.last() if resume else None
    if last is not None:
        state = checkpointer.load(last)
        if state.get("backbone") != cfg.backbone or state.get("image_size") != cfg.image_size:
            raise InputError(f"--resume: {last} was trained with backbone {state.get('backbone')!r} at {state.get('image_size')} px, not {cfg.backbone!r} at {cfg.image_size} px; use another --out")
        (model.module if hasattr(model, "module") else model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_iter, start_epoch = int(state["iteration"]), int(state["epoch"])
        if dist.is_main():
            print(f"resuming from {last} at iteration {start_iter}")
    elif resume and dist.is_main():
        print(f"--resume: no checkpoint in {out}; starting from iteration 0")

    metrics = MetricsLogger(out, enabled=dist.is_main())
    if dist.is_main():
        print(f"training {cfg.backbone} (torchvision) on {len(train_set)} images, {info.world_size} process(es) on {device.type}, lr {lr:.4g}, {cfg.max_iter} iterations")
    model.train()
    bar = tqdm(total=cfg.max_iter, initial=start_iter, desc="train", unit="it", disable=not (progress and dist.is_main()))
    stream = _batches(train_set, cfg, info, start_epoch)
    epoch = start_epoch
    window_start, window_images = time.perf_counter(), 0
    for iteration in range(start_iter, cfg.max_iter):
        epoch, images, targets = next(stream)
        images = [im.to(device, non_blocking=True) for im in images]
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        with torch.autocast(device.type, enabled=use_amp):
            losses = model(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss.detach()):
            raise FloatingPointError(f"loss became {float(loss)} at iteration {iteration} ({ {k: float(v) for k, v in losses.items()} }); lower base_lr or check the data")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        window_images += len(images) * info.world_size
        done = iteration + 1
        if done % cfg.log_period == 0 or done == cfg.max_iter:
            reduced = {k: float(dist.all_reduce_mean(v.detach())) for k, v in losses.items()}
            elapsed = time.perf_counter() - window_start
            values = {"loss": sum(reduced.values()), **reduced, "lr": optimizer.param_groups[0]["lr"], "grad_norm": float(grad_norm), "images_per_s": window_images / max(elapsed, 1e-9), "epoch": epoch}
            metrics.log(done, values)
            bar.set_postfix(loss=f"{values['loss']:.3f}", lr=f"{values['lr']:.2g}")
            window_start, window_images = time.perf_counter(), 0
        if cfg.checkpoint_period and done % cfg.checkpoint_period == 0 and done < cfg.max_iter and dist.is_main():
            checkpointer.save(f"model_{done:07d}", _state(model, optimizer, scheduler, scaler, done, epoch, cfg))
        if cfg.eval_period and done % cfg.eval_period == 0 and done < cfg.max_iter and dist.is_main() and len(val_set):
            metrics.log(done, {"val_mAP": evaluate_map(model.module if hasattr(model, "module") else model, val_set, device, max_images=cfg.max_eval_images)})
        bar.update()
    bar.close()
    final = out / "model_final.pth"
    if dist.is_main():
        checkpointer.save("model_final", _state(model, optimizer, scheduler, scaler, cfg.max_iter, epoch, cfg))
        if len(val_set):
            val_map = evaluate_map(model.module if hasattr(model, "module") else model, val_set, device, max_images=cfg.max_eval_images)
            metrics.log(cfg.max_iter, {"val_mAP": val_map})
            print(f"validation mAP (weak labels, {min(len(val_set), cfg.max_eval_images)} images): {val_map:.4f}")
        print(f"wrote {final}")
    metrics.close()
    dist.barrier()
    dist.cleanup()
    return final


def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg train``."""
    from .models.maskrcnn import BACKBONES

    d = TrainConfig()
    parser = ArgumentParser(prog="hpaseg train", description="Train Mask R-CNN on propagated cell labels (torchvision or detectron2 engine).")
    g = parser.add_argument_group("model")
    g.add_argument("--engine", default="torchvision", help="torchvision (default) or detectron2")
    g.add_argument("--backbone", default=d.backbone, help=f"torchvision engine: one of {', '.join(BACKBONES)} (default {d.backbone})")
    g.add_argument("--config", help="detectron2 engine: a YAML of detectron_configs/")
    g.add_argument("--pretrained", default=None, help="torchvision engine: 'imagenet' (download) or a torchvision RGB classification checkpoint to adapt to RGBY")
    g = parser.add_argument_group("data and output")
    g.add_argument("--dataset", required=True, help="folder with train.json/val.json from hpaseg propagate")
    g.add_argument("--data", required=True, help="folder of the training images")
    g.add_argument("--out", required=True, help="run folder (checkpoints, logs, config.yaml)")
    g.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    g = parser.add_argument_group("schedule")
    g.add_argument("--image-size", type=int, default=d.image_size, help=f"working size, longer side in px (default {d.image_size})")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help=f"images per process per iteration (default {d.batch_size})")
    g.add_argument("--max-iter", type=int, default=d.max_iter, help=f"iterations (default {d.max_iter})")
    g.add_argument("--lr", type=float, default=d.base_lr, help=f"learning rate for {REFERENCE_BATCH} images per iteration, scaled linearly (default {d.base_lr})")
    g.add_argument("--checkpoint-period", type=int, default=d.checkpoint_period, help=f"iterations between checkpoints (default {d.checkpoint_period})")
    g.add_argument("--eval-period", type=int, default=d.eval_period, help=f"iterations between validation mAPs, 0 = end only (default {d.eval_period})")
    g = parser.add_argument_group("hardware")
    g.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu (default: cuda when available)")
    g.add_argument("--workers", type=int, default=None, help="data-loader processes per GPU (default: CPUs - 1, at most 8)")
    g.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    g.add_argument("--seed", type=int, default=d.seed, help=f"seed (default {d.seed})")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE", help="override config keys, e.g. --opts warmup_iters 50 schedule step")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


@cli_entry("train")
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg train``."""
    from .dataset import default_workers
    from .models.maskrcnn import BACKBONES

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    for name in ("dataset", "data"):
        if not Path(getattr(args, name)).is_dir():
            raise InputError(f"--{name} {getattr(args, name)}: no such folder")
    if args.engine == "detectron2":
        from .models import detectron2_engine

        return detectron2_engine.train_main(args)
    if args.engine != "torchvision":
        raise InputError(f"--engine {args.engine!r}: expected torchvision or detectron2")
    if args.backbone not in BACKBONES:
        raise InputError(f"--backbone {args.backbone!r}: unknown backbone; expected one of {', '.join(BACKBONES)}")
    if args.config:
        raise InputError("--config is for --engine detectron2; the torchvision engine takes options and --opts")
    for name in ("image_size", "batch_size", "max_iter"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected a positive integer")
    cfg = TrainConfig(
        backbone=args.backbone,
        dataset=str(args.dataset),
        data=str(args.data),
        out=str(args.out),
        image_size=args.image_size,
        batch_size=args.batch_size,
        max_iter=args.max_iter,
        base_lr=args.lr,
        checkpoint_period=args.checkpoint_period,
        eval_period=args.eval_period,
        pretrained=args.pretrained,
        device=args.device,
        workers=default_workers() if args.workers is None else args.workers,
        amp=not args.no_amp,
        seed=args.seed,
        warmup_iters=min(TrainConfig.warmup_iters, max(1, args.max_iter // 5)),
    )
    cfg = apply_opts(cfg, args.opts)
    train_torchvision(cfg, resume=args.resume, progress=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
