"""The torchvision Mask R-CNN trainer: a loop read top to bottom.

Runs on the CPU (smoke runs), one GPU, or many GPUs and nodes: start one process per
GPU with ``torchrun`` or ``srun`` (``slurm/run-model.sbatch``);
:mod:`hpaseg.runtime.dist` reads the launcher's variables. Outputs in ``cfg.out``:
``config.yaml`` (the merged config), ``model_XXXXXXX.pth`` checkpoints and
``last_checkpoint``, ``model_final.pth``, ``metrics.jsonl``, TensorBoard logs in ``tb/``.
``resume=True`` continues from the last checkpoint: a checkpoint holds the random
generators' states and the position in the epoch's shuffled order, so on the CPU a run
killed and resumed ends with the weights of an uninterrupted run, bit for bit, and
``metrics.jsonl`` drops what the killed run logged after its last checkpoint. SGD with momentum, the linear
scaling rule for the learning rate, warm-up then cosine or step decay
(:func:`hpaseg.runtime.schedule.build_scheduler`), gradient clipping, AMP on CUDA, and a
stop on a non-finite loss.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from .. import __version__
from ..errors import InputError
from ..evaluation import competition_map
from ..labels import build_cache, cache_folder, load_coco_split
from ..runtime import dist
from ..runtime.checkpoint import Checkpointer
from ..runtime.config import check_numbers, save_config
from ..runtime.logger import MetricsLogger
from ..runtime.schedule import build_scheduler
from ..runtime.seed import rng_state, seed_everything, set_rng_state
from ..submission import Prediction, SubmissionRow, encode_label_image, submission_row
from ..transforms import to_tensor
from .data import CellDataset, cell_crops_by_image, collate, joined_crops, load_teacher, teacher_file
from .heads import (
    DEFAULT_DISTILL_WEIGHT,
    DEFAULT_LABEL_INPUTS,
    IMAGE_EPOCHS,
    LABEL_EPOCHS,
    check_label_inputs,
    fit_image_head_on_cells,
    fit_pixel_head,
    wants_image_head,
)
from .models import BACKBONES, FPN_CHANNELS, MODEL_KIND, RGBY_MEAN, RGBY_STD, build_maskrcnn, check_fpn_channels
from .predictor import predict_tensors

__all__ = [
    "REFERENCE_BATCH",
    "TrainConfig",
    "check_train_config",
    "evaluate_map",
    "train_torchvision",
]

log = logging.getLogger(__name__)

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
    roi_batch_size: int = 512  # proposals per image the box head trains on
    fpn_channels: int = FPN_CHANNELS  # FPN levels and heads; fewer: the CPU preset's cheaper heads
    label_loss_weight: float = 1.0  # factor of the multi-label head's loss
    label_inputs: str = DEFAULT_LABEL_INPUTS  # what the label head reads: "pixels+features" or "features"
    teacher: str | None = None  # a cell classifier run (its cell_probabilities.csv) or such a CSV
    distill_weight: float = DEFAULT_DISTILL_WEIGHT  # weight of the teacher's probabilities in the label targets
    label_epochs: int = LABEL_EPOCHS  # pixel head alone on the training cells' crops first, then frozen; 0 = joint
    image_epochs: int = IMAGE_EPOCHS  # image head on the cells' pixel features, after the pixel head; 0 = none
    log_period: int = 20
    pretrained: str | None = None  # None, "imagenet" or a torchvision checkpoint path
    device: str = "cuda"
    workers: int = 2
    seed: int = 0


#: Settings of :class:`TrainConfig` that must be > 0 and >= 0 (floats finite too).
_POSITIVE = ("image_size", "batch_size", "max_iter", "roi_batch_size", "fpn_channels", "log_period", "base_lr", "gamma")
_NON_NEGATIVE = (
    "warmup_iters",
    "checkpoint_period",
    "eval_period",
    "max_eval_images",
    "workers",
    "weight_decay",
    "label_loss_weight",
    "label_epochs",
    "image_epochs",
)


def check_train_config(cfg: TrainConfig, *, check_paths: bool = True) -> None:
    """Refuse unusable settings with an :class:`InputError` naming the parameter, before
    anything is written; ``check_paths=False`` leaves out the folders."""
    if cfg.backbone not in BACKBONES:
        raise InputError(
            f"backbone {cfg.backbone!r}: unknown backbone; expected one of {', '.join(BACKBONES)}", param="backbone"
        )
    check_numbers(cfg, positive=_POSITIVE, non_negative=_NON_NEGATIVE)
    check_fpn_channels(cfg.backbone, cfg.fpn_channels)
    if not 0 <= cfg.momentum < 1:
        raise InputError(f"momentum {cfg.momentum}: expected a number in [0, 1)", param="momentum")
    if not 0 < cfg.warmup_factor <= 1:
        raise InputError(f"warmup_factor {cfg.warmup_factor}: expected a number in (0, 1]", param="warmup_factor")
    if not cfg.clip_grad_norm > 0:  # inf: no clipping
        raise InputError(f"clip_grad_norm {cfg.clip_grad_norm}: expected a number > 0", param="clip_grad_norm")
    check_label_inputs(cfg.label_inputs)
    if not 0.0 <= cfg.distill_weight <= 1.0:
        raise InputError(f"distill_weight {cfg.distill_weight}: expected a number in [0, 1]", param="distill_weight")
    if cfg.schedule not in ("cosine", "step"):
        raise InputError(f"schedule {cfg.schedule!r}: expected 'cosine' or 'step'", param="schedule")
    if check_paths:
        for name in ("dataset", "data"):
            if not Path(getattr(cfg, name)).is_dir():
                raise InputError(f"{name} {getattr(cfg, name)}: no such folder", param=name)
        if cfg.teacher is not None:
            teacher_file(cfg.teacher)


def _epoch_order(dataset: CellDataset, cfg: TrainConfig, info: dist.DistInfo, epoch: int) -> list[int]:
    """This process's items of ``epoch`` in the order it sees them (the same for a given seed and epoch)."""
    if info.distributed:
        sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed)
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(cfg.seed + epoch))
    return list(sampler)


def _batches(
    dataset: CellDataset, cfg: TrainConfig, info: dist.DistInfo, start_epoch: int, start_step: int = 0
) -> Iterator[tuple[int, int, list, list]]:
    """Endless stream of ``(epoch, step in epoch, images, targets)``, reshuffled each epoch; it
    starts at batch ``start_step`` of ``start_epoch`` (where a resumed run continues).

    The loaders draw their workers' seeds from a generator of their own, seeded by the
    seed and the epoch, so the stream leaves the global generators alone."""
    epoch, skip = start_epoch, start_step
    while True:
        dataset.epoch = epoch
        drop_last = len(dataset) >= cfg.batch_size * info.world_size
        loader = DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            sampler=_epoch_order(dataset, cfg, info, epoch)[skip * cfg.batch_size :],
            num_workers=cfg.workers,
            collate_fn=collate,
            drop_last=drop_last,
            generator=torch.Generator().manual_seed(cfg.seed + epoch),
        )
        for step, (images, targets) in enumerate(loader, start=skip + 1):
            yield epoch, step, images, targets
        epoch, skip = epoch + 1, 0


@torch.no_grad()
def evaluate_map(model: torch.nn.Module, dataset: CellDataset, device: torch.device, *, max_images: int) -> float:
    """Competition mAP on (part of) the validation split, at working resolution, against the
    propagated (weak) cell labels."""
    was_training = model.training
    model.eval()
    truth, preds = [], []
    for index in range(min(len(dataset), max_images)):
        image, cells = dataset.load(index)
        record = dataset.records[index]
        encoded = encode_label_image(cells, list(record.cells))
        present = set(np.unique(cells).tolist())
        truth.append(
            SubmissionRow(
                record.image_id,
                cells.shape[1],
                cells.shape[0],
                [Prediction(k, 1.0, encoded[c]) for c, ks in record.cells.items() if c in present for k in ks],
            )
        )
        label_image, cell_scores = predict_tensors(model, [to_tensor(image).to(device)], [cells.shape])[0]
        preds.append(submission_row(record.image_id, label_image, cell_scores))
    model.train(was_training)
    if not truth:
        return float("nan")
    return float(competition_map(truth, preds).mAP)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def _state(model, optimizer, scheduler, scaler, iteration: int, epoch: int, step: int, cfg: TrainConfig) -> dict:
    return {
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_state(),
        "iteration": iteration,
        "epoch": epoch,
        "epoch_step": step,
        "engine": "torchvision",
        "kind": MODEL_KIND,
        "backbone": cfg.backbone,
        "image_size": cfg.image_size,
        "label_inputs": cfg.label_inputs,
        "image_head": has_image_head(cfg),
        "fpn_channels": cfg.fpn_channels,
        "config": dataclasses.asdict(cfg),
        "hpaseg_version": __version__,
    }


def _datasets(cfg: TrainConfig, *, progress: bool) -> tuple[CellDataset, CellDataset]:
    """The training and validation sets, their images cached (by rank 0) first."""
    dataset_dir = Path(cfg.dataset)
    train_records = [r for r in load_coco_split(dataset_dir / "train.json") if r.cells]
    val_records = load_coco_split(dataset_dir / "val.json") if (dataset_dir / "val.json").is_file() else []
    if not train_records:
        raise InputError(
            f"dataset {dataset_dir}: train.json has no image with cells; nothing to train on", param="dataset"
        )
    cache = cache_folder(dataset_dir, cfg.image_size)
    if dist.is_main():
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        save_config(Path(cfg.out) / "config.yaml", cfg)
        build_cache(train_records + val_records, cfg.data, cache, cfg.image_size, progress=progress)
    dist.barrier()
    teacher = None if cfg.teacher is None else load_teacher(cfg.teacher, train_records)
    return CellDataset(train_records, cache, augment=True, seed=cfg.seed, teacher=teacher), CellDataset(
        [r for r in val_records if r.cells], cache
    )


def _resume(
    checkpointer: Checkpointer, cfg: TrainConfig, model, optimizer, scheduler, scaler
) -> tuple[int, int, int, dict | None]:
    """Load the run's last checkpoint into the objects; returns ``(iteration, epoch, step in
    epoch)`` to start from and the generators' states to restore (None: none saved)."""
    last = checkpointer.last()
    if last is None:
        log.info("resume: no checkpoint in %s; starting from iteration 0", cfg.out)
        return 0, 0, 0, None
    state = checkpointer.load(last)
    if state.get("kind") != MODEL_KIND:
        raise InputError(
            f"resume: {last} is a checkpoint of the earlier per-(cell, label) softmax Mask R-CNN, not {MODEL_KIND!r}; "
            "retrain in another output folder",
            param="resume",
        )
    theirs = (
        state.get("backbone"),
        state.get("image_size"),
        state.get("label_inputs", "features"),
        state.get("image_head", False),
        state.get("fpn_channels", FPN_CHANNELS),
    )
    if theirs != (cfg.backbone, cfg.image_size, cfg.label_inputs, has_image_head(cfg), cfg.fpn_channels):
        raise InputError(
            f"resume: {last} was trained with backbone {theirs[0]!r} at {theirs[1]} px, label inputs {theirs[2]!r}, "
            f"image head {theirs[3]}, {theirs[4]} FPN channels, not {cfg.backbone!r} at {cfg.image_size} px, "
            f"{cfg.label_inputs!r}, image head {has_image_head(cfg)}, {cfg.fpn_channels} FPN channels; "
            "use another output folder",
            param="resume",
        )
    _unwrap(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    log.info("resuming from %s at iteration %d", last, int(state["iteration"]))
    return int(state["iteration"]), int(state["epoch"]), int(state.get("epoch_step", 0)), state.get("rng")


@dataclasses.dataclass
class _Training:
    """What one torchvision run trains with (built by :func:`_setup`)."""

    model: torch.nn.Module
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    lr: float

    def state(self, iteration: int, epoch: int, step: int, cfg: TrainConfig) -> dict:
        return _state(self.model, self.optimizer, self.scheduler, self.scaler, iteration, epoch, step, cfg)


def has_image_head(cfg: TrainConfig) -> bool:
    """Whether a run of ``cfg`` has an image head: ``image_epochs`` > 0, on a pixel head
    fitted first (``label_inputs`` pixels+features, ``label_epochs`` > 0)."""
    return wants_image_head(cfg.image_epochs, cfg.label_epochs, cfg.label_inputs)


def _pixel_head_first(cfg: TrainConfig, model: torch.nn.Module, train_set: CellDataset, *, fit: bool) -> None:
    """With ``cfg.label_epochs``: train the pixel head alone on every training cell's crop
    (``fit``: a run that starts at iteration 0; every process the same, from the same
    seed), then freeze it for the detector's iterations (a resumed run finds it trained in
    its checkpoint); with an image head (:func:`has_image_head`), fit it next on the frozen
    pixel head's features. Before DistributedDataParallel wraps the model, which must know
    the parameters that train."""
    heads = model.roi_heads
    if not cfg.label_epochs or heads.pixel_head is None:
        return
    if fit:
        device = next(model.parameters()).device
        per_image = cell_crops_by_image(train_set, RGBY_MEAN, RGBY_STD, cfg.distill_weight)
        crops, targets = joined_crops(per_image)
        started = time.perf_counter()
        losses = fit_pixel_head(
            heads.pixel_head, crops.to(device), targets.to(device), epochs=cfg.label_epochs, seed=cfg.seed
        )
        log.info(
            "label head: pixel head fitted on %d training cells, %d epochs, loss %.4f -> %.4f, %.1f s",
            len(crops), cfg.label_epochs, losses[0] if losses else float("nan"),
            losses[-1] if losses else float("nan"), time.perf_counter() - started,
        )  # fmt: skip
    heads.freeze_pixel_head()
    if fit and heads.image_head is not None and per_image:
        crops_by_image, _, hard_by_image = zip(*per_image)
        heads.set_image_head(
            fit_image_head_on_cells(
                heads.pixel_head, list(crops_by_image), list(hard_by_image), epochs=cfg.image_epochs, seed=cfg.seed
            )
        )


def _setup(
    cfg: TrainConfig, info: dist.DistInfo, device: torch.device, train_set: CellDataset, *, fit_pixels: bool
) -> _Training:
    model = build_maskrcnn(
        cfg.backbone,
        image_size=cfg.image_size,
        pretrained=cfg.pretrained,
        roi_batch_size=cfg.roi_batch_size,
        label_loss_weight=cfg.label_loss_weight,
        label_inputs=cfg.label_inputs,
        distill_weight=cfg.distill_weight,
        image_head=has_image_head(cfg),
        fpn_channels=cfg.fpn_channels,
    ).to(device)
    _pixel_head_first(cfg, model, train_set, fit=fit_pixels)
    if info.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    lr = cfg.base_lr * cfg.batch_size * info.world_size / REFERENCE_BATCH  # the linear scaling rule
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = build_scheduler(
        optimizer,
        schedule=cfg.schedule,
        max_iter=cfg.max_iter,
        warmup_iters=cfg.warmup_iters,
        warmup_factor=cfg.warmup_factor,
        steps=cfg.steps,
        gamma=cfg.gamma,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")
    return _Training(model, params, optimizer, scheduler, scaler, device, lr)


def _step(
    t: _Training, images: list, targets: list, iteration: int, clip_grad_norm: float
) -> tuple[dict[str, torch.Tensor], float]:
    """One SGD step on a batch; returns the losses and the gradient norm before clipping."""
    images = [im.to(t.device, non_blocking=True) for im in images]
    targets = [{k: v.to(t.device, non_blocking=True) for k, v in target.items()} for target in targets]
    with torch.autocast(t.device.type, enabled=t.scaler.is_enabled()):
        losses = t.model(images, targets)
    loss = sum(losses.values())
    if not torch.isfinite(loss.detach()):
        raise FloatingPointError(
            f"loss became {float(loss)} at iteration {iteration} ({ {k: float(v) for k, v in losses.items()} }); lower base_lr or check the data"
        )
    t.optimizer.zero_grad(set_to_none=True)
    t.scaler.scale(loss).backward()
    t.scaler.unscale_(t.optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(t.params, clip_grad_norm)
    t.scaler.step(t.optimizer)
    t.scaler.update()
    t.scheduler.step()
    return losses, float(grad_norm)


def train_torchvision(cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> Path:
    """Train a torchvision Mask R-CNN; returns the path of ``model_final.pth``."""
    check_train_config(cfg)
    info, device = dist.init(cfg.device)
    out = Path(cfg.out)
    checkpointer = Checkpointer(out)
    seed_everything(cfg.seed + info.rank)
    train_set, val_set = _datasets(cfg, progress=progress)
    t = _setup(cfg, info, device, train_set, fit_pixels=not (resume and checkpointer.last() is not None))
    start_iter, start_epoch, start_step, rng = (
        _resume(checkpointer, cfg, t.model, t.optimizer, t.scheduler, t.scaler) if resume else (0, 0, 0, None)
    )
    if rng is not None and not info.distributed:
        set_rng_state(rng)
    elif start_iter:  # the checkpoint holds rank 0's generators only: reseed each rank, deterministically
        seed_everything(cfg.seed + info.rank + start_iter * info.world_size)
    main = dist.is_main()
    metrics = MetricsLogger(out, enabled=main, start=start_iter)  # drops what a killed run logged after its checkpoint
    if main:
        log.info(
            "training %s (torchvision) on %d images, %d process(es) on %s, lr %.4g, %d iterations",
            cfg.backbone,
            len(train_set),
            info.world_size,
            device.type,
            t.lr,
            cfg.max_iter,
        )
    t.model.train()
    bar = tqdm(total=cfg.max_iter, initial=start_iter, desc="train", unit="it", disable=not (progress and main))
    stream = _batches(train_set, cfg, info, start_epoch, start_step)
    epoch, step = start_epoch, start_step
    window_start, window_images = time.perf_counter(), 0
    for iteration in range(start_iter, cfg.max_iter):
        epoch, step, images, targets = next(stream)
        losses, grad_norm = _step(t, images, targets, iteration, cfg.clip_grad_norm)
        window_images += len(images) * info.world_size
        done = iteration + 1
        if done % cfg.log_period == 0 or done == cfg.max_iter:
            reduced = {k: float(dist.all_reduce_mean(v.detach())) for k, v in losses.items()}
            rate = window_images / max(time.perf_counter() - window_start, 1e-9)
            values = {
                "loss": sum(reduced.values()),
                **reduced,
                "lr": t.optimizer.param_groups[0]["lr"],
                "grad_norm": grad_norm,
                "images_per_s": rate,
                "epoch": epoch,
            }
            metrics.log(done, values)
            bar.set_postfix(loss=f"{values['loss']:.3f}", lr=f"{values['lr']:.2g}")
            window_start, window_images = time.perf_counter(), 0
        # Validation before the checkpoint: a run resumed from it has logged everything up to it.
        if main and done < cfg.max_iter and cfg.eval_period and done % cfg.eval_period == 0 and len(val_set):
            metrics.log(
                done, {"val_mAP": evaluate_map(_unwrap(t.model), val_set, device, max_images=cfg.max_eval_images)}
            )
        if main and done < cfg.max_iter and cfg.checkpoint_period and done % cfg.checkpoint_period == 0:
            checkpointer.save(f"model_{done:07d}", t.state(done, epoch, step, cfg))
        bar.update()
    bar.close()
    final = out / "model_final.pth"
    if main:
        checkpointer.save("model_final", t.state(cfg.max_iter, epoch, step, cfg))
        if len(val_set):
            val_map = evaluate_map(_unwrap(t.model), val_set, device, max_images=cfg.max_eval_images)
            metrics.log(cfg.max_iter, {"val_mAP": val_map})
            log.info("validation mAP (weak labels, %d images): %.4f", min(len(val_set), cfg.max_eval_images), val_map)
        log.info("wrote %s", final)
    metrics.close()
    dist.barrier()
    dist.cleanup()
    return final
