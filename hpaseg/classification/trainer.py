"""The classifier trainer (``hpaseg classify``): a multi-label classifier of whole images or
of single cells, trained on the COCO files of ``hpaseg propagate``.

Data
----
``DATASET/train.json`` trains, ``DATASET/val.json`` validates (split by image).

* ``level="image"`` (the companion study's setting): the whole image resized to
  ``image_size`` px (256), labels = the image's labels (the union of its cells'
  propagated labels; images without cells have none and are left out).
  ``channels="green"`` (default here, the study's) replicates the green channel to
  three; ``"rgby"`` uses all four.
* ``level="cell"``: one crop per cell of the dataset, ``crop_size`` px (128), four
  channels, background outside the cell zeroed (:mod:`hpaseg.classification.data`),
  labels = the cell's propagated labels. The cells are cut from ``masks``
  (``{ID}_cellmask.png``, the masks the dataset was propagated from).

Inputs are decoded once and cached under ``DATASET`` (:mod:`hpaseg.classification.data`).

Training
--------
The study's defaults: Adam, learning rate 1e-4 (constant), batch 32, 20 epochs; every
value can be changed (:class:`ClassifyConfig`; ``schedule`` cosine or step uses
:func:`hpaseg.runtime.schedule.build_scheduler`). Losses: ``bce`` or ``focal``
(:mod:`hpaseg.classification.losses`). Augmentations: ``standard`` or ``cutmix``
(:mod:`hpaseg.classification.data`). Backbones and pretrained weights:
:mod:`hpaseg.classification.models`.

Outputs in ``cfg.out``: ``config.yaml``; ``model_epochNNN.pth`` (the newest only) and
``last_checkpoint`` after each ``checkpoint_period`` epochs, which ``resume=True`` continues
from; ``metrics.jsonl`` and TensorBoard logs in ``tb/``; ``model_final.pth`` (weights,
backbone, level, channels, input size, normalisation, ``finished`` and the per-class
thresholds tuned on the validation split for this model, which trained on the train split
only; it also resumes, e.g. with more epochs); and ``eval.json``, written
last, with the validation metrics of the final model:

* ``macro_f1``: macro-F1 at threshold 0.5;
* ``macro_f1_tuned``: macro-F1 with per-class thresholds tuned on the validation split
  itself (:func:`hpaseg.evaluation.tune_thresholds`; optimistic, as it is fit on the data it
  scores);
* ``macro_ap`` and per-class AP;
* per-class confusion counts (TN, FP, FN, TP) at the tuned thresholds.

Macro means are over the classes with at least one positive in the validation split
(listed as ``classes_scored``), the rule of macro AP and of the competition mAP; F1 of
a class that has no positive would be 0 or undefined.

Classes without a positive in the training split get a warning naming them; an empty
split, an unknown setting, ``level="cell"`` without ``masks``, a missing channel or mask
file or a mask of the wrong size stop the run (:class:`~hpaseg.errors.InputError`)
before the run folder is created.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler
from tqdm import tqdm

from .. import __version__, io
from ..classes import CLASS_NAMES, NUM_CLASSES
from ..errors import InputError
from ..evaluation import evaluate_scores
from ..runtime.checkpoint import Checkpointer
from ..runtime.config import save_config
from ..runtime.logger import MetricsLogger
from ..runtime.schedule import build_scheduler
from ..runtime.seed import rng_state, seed_everything, set_rng_state
from .cell_trainer import train_cell_classifier
from .cell_trainer import trains as trains_weakly
from .config import CHECKPOINT_KIND, EVAL_FILE, FINAL, ClassifyConfig, check_config, input_size
from .data import (
    ClassifierDataset,
    channel_count,
    cutmix,
    standard_augment,
)
from .losses import make_loss
from .models import build_classifier, normalization
from .samples import PreparedData, prepare_data, targets

__all__ = ["predict_scores", "train_classifier"]

log = logging.getLogger(__name__)

#: Settings a checkpoint must share with the config that resumes it.
_RESUME_KEYS = ("level", "backbone", "channels", "image_size", "crop_size", "loss", "augment")


@torch.no_grad()
def predict_scores(
    model: torch.nn.Module,
    dataset: ClassifierDataset,
    device: torch.device,
    *,
    batch_size: int,
    workers: int = 0,
    loss_fn: Callable | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Sigmoid probabilities of every sample of ``dataset``.

    Returns
    -------
    y_true : ndarray, shape (N, 19), int64
    y_score : ndarray, shape (N, 19), float64
    loss : float
        Mean ``loss_fn`` over the batches (NaN without one).
    """
    was_training = model.training
    model.eval()
    scores, losses = [], []
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers):
        logits = model(x.to(device)).float()
        if loss_fn is not None:
            losses.append(float(loss_fn(logits, y.to(device))))
        scores.append(torch.sigmoid(logits).cpu().numpy())
    model.train(was_training)
    y_score = np.concatenate(scores).astype(np.float64) if scores else np.zeros((0, NUM_CLASSES))
    return targets(dataset.samples), y_score, float(np.mean(losses)) if losses else math.nan


def _state(
    model,
    optimizer,
    scheduler,
    scaler,
    cfg: ClassifyConfig,
    *,
    epoch: int,
    iteration: int,
    train_seconds: float,
    mean,
    std,
    thresholds=None,
    finished: bool = False,
) -> dict:
    return {
        "kind": CHECKPOINT_KIND,
        "finished": finished,  # the final checkpoint (model_final.pth)
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_state(),
        "epoch": epoch,
        "iteration": iteration,
        "train_seconds": train_seconds,
        "backbone": cfg.backbone,
        "level": cfg.level,
        "channels": cfg.channels,
        "image_size": cfg.image_size,
        "crop_size": cfg.crop_size,
        "input_size": input_size(cfg),
        "loss": cfg.loss,
        "augment": cfg.augment,
        "mean": list(mean),
        "std": list(std),
        "thresholds": None if thresholds is None else [float(t) for t in thresholds],
        "classes": list(CLASS_NAMES),
        "config": dataclasses.asdict(cfg),
        "hpaseg_version": __version__,
    }


def _restore(path: Path, cfg: ClassifyConfig, model, optimizer, scheduler, scaler) -> dict:
    state = Checkpointer.load(path)
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise InputError(
            f"resume: {path} is not a classifier checkpoint of 'hpaseg classify'; use another output folder",
            param="resume",
        )
    differ = [
        f"{k} {state.get(k)!r} (now {getattr(cfg, k)!r})" for k in _RESUME_KEYS if state.get(k) != getattr(cfg, k)
    ]
    if differ:
        raise InputError(
            f"resume: {path} was trained with {', '.join(differ)}; use another output folder or the same settings",
            param="resume",
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return state


def _remove_epoch_checkpoints(out: Path, keep: Path | None = None) -> None:
    """Remove the run's ``model_epochNNN.pth`` files but ``keep`` (the newest only is kept; a
    run killed between saving one and removing the one before leaves both, and its resumed
    run removes the older)."""
    for path in out.glob("model_epoch*.pth"):
        if path != keep:
            path.unlink(missing_ok=True)


def _warn_absent(absent: Sequence[int]) -> None:
    if absent:
        names = ", ".join(f"{k} {CLASS_NAMES[k]}" for k in absent)
        log.warning(
            "%d class(es) have no positive sample in the training split and cannot be learned: %s", len(absent), names
        )


@dataclass
class _Run:
    """What one classifier run trains with (built by :func:`_setup`)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    train_set: ClassifierDataset
    val_set: ClassifierDataset
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    mixer: Callable | None
    device: torch.device
    mean: tuple[float, ...]
    std: tuple[float, ...]
    steps_per_epoch: int
    drop_last: bool

    @property
    def use_amp(self) -> bool:
        return self.scaler.is_enabled()


def _setup(cfg: ClassifyConfig, data: PreparedData) -> _Run:
    device = torch.device(cfg.device)
    in_chans = channel_count(cfg.channels)
    mean, std = normalization(cfg.backbone, in_chans)
    size = input_size(cfg)
    augment = standard_augment(rotation_deg=cfg.rotation_deg, translate_fraction=cfg.translate_fraction)
    train_set = ClassifierDataset(data.train, channels=cfg.channels, size=size, mean=mean, std=std, augment=augment)
    val_set = ClassifierDataset(data.val, channels=cfg.channels, size=size, mean=mean, std=std)
    seed_everything(cfg.seed)
    model = build_classifier(cfg.backbone, in_chans=in_chans, pretrained=cfg.pretrained).to(device)
    drop_last = len(train_set) >= cfg.batch_size
    steps_per_epoch = len(train_set) // cfg.batch_size if drop_last else 1
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = build_scheduler(
        optimizer,
        schedule=cfg.schedule,
        max_iter=max(1, cfg.epochs * steps_per_epoch),
        warmup_iters=cfg.warmup_iters,
        warmup_factor=cfg.warmup_factor,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")
    loss_fn = make_loss(cfg.loss, alpha=cfg.focal_alpha, gamma=cfg.focal_gamma)
    mixer = cutmix(p=cfg.cutmix_p, alpha=cfg.cutmix_alpha) if cfg.augment == "cutmix" else None
    return _Run(
        model,
        optimizer,
        scheduler,
        scaler,
        train_set,
        val_set,
        loss_fn,
        mixer,
        device,
        mean,
        std,
        steps_per_epoch,
        drop_last,
    )


def _train_epoch(run: _Run, cfg: ClassifyConfig, epoch: int, iteration: int, metrics: MetricsLogger, bar: tqdm) -> int:
    """One epoch over the training set (shuffled by the seed and the epoch); returns the iteration count after it."""
    sampler = RandomSampler(run.train_set, generator=torch.Generator().manual_seed(cfg.seed + epoch))
    loader = DataLoader(
        run.train_set, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers, drop_last=run.drop_last
    )
    window_start, window_samples = time.perf_counter(), 0
    for x, y in loader:
        if run.mixer is not None:
            x, y = run.mixer(x, y)
        x, y = x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
        with torch.autocast(run.device.type, enabled=run.use_amp):
            logits = run.model(x)
        loss = run.loss_fn(logits.float(), y)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"loss became {loss_value} at iteration {iteration} (epoch {epoch}); lower the learning rate or check the data"
            )
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        iteration += 1
        window_samples += len(x)
        if iteration % cfg.log_period == 0 or iteration % run.steps_per_epoch == 0:
            elapsed = time.perf_counter() - window_start
            metrics.log(
                iteration,
                {
                    "loss": loss_value,
                    "lr": run.optimizer.param_groups[0]["lr"],
                    "epoch": epoch,
                    "samples_per_s": window_samples / max(elapsed, 1e-9),
                },
            )
            window_start, window_samples = time.perf_counter(), 0
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss_value:.4f}")
        bar.update()
    return iteration


def _validate(run: _Run, cfg: ClassifyConfig) -> tuple[dict, float]:
    y_true, y_score, val_loss = predict_scores(
        run.model, run.val_set, run.device, batch_size=cfg.batch_size, workers=cfg.workers, loss_fn=run.loss_fn
    )
    return evaluate_scores(y_true, y_score), val_loss


def _val_metrics(scores: dict, val_loss: float) -> dict[str, float]:
    return {
        "val_loss": val_loss,
        **{f"val_{k}": scores[k] for k in ("macro_f1", "macro_f1_tuned", "macro_ap") if scores[k] is not None},
    }


def _run_state(
    run: _Run,
    cfg: ClassifyConfig,
    epoch: int,
    iteration: int,
    seconds: float,
    thresholds: Sequence[float] | None = None,
    *,
    finished: bool = False,
) -> dict:
    """The checkpoint of a run at ``epoch``; the final one (``finished``) with the ``thresholds``
    tuned for its model on the validation split (it trained on the train split only)."""
    return _state(
        run.model,
        run.optimizer,
        run.scheduler,
        run.scaler,
        cfg,
        epoch=epoch,
        iteration=iteration,
        train_seconds=seconds,
        mean=run.mean,
        std=run.std,
        thresholds=thresholds,
        finished=finished,
    )


def train_classifier(
    cfg: ClassifyConfig, *, resume: bool = False, progress: bool = True, data: PreparedData | None = None
) -> dict:
    """Train (or resume) a classifier run and score it on the validation split.

    Cell-level runs of the descriptors backbone, and of a CNN with weak supervision
    (``refined``, ``mil``), go to the weak-supervision trainer
    (:func:`~hpaseg.classification.cell_trainer.train_cell_classifier`: rounds, image
    head, refit); the rest (image level, a CNN on propagated cell labels) train here.

    Parameters
    ----------
    cfg : ClassifyConfig
    resume : bool
        Continue from ``RUN/last_checkpoint`` when there is one.
    progress : bool
        tqdm bars.
    data : PreparedData, optional
        Samples from :func:`prepare_data` for this config (saves re-reading a grid's data).

    Returns
    -------
    dict
        The contents of ``RUN/eval.json``.
    """
    check_config(cfg)
    if trains_weakly(cfg):
        return train_cell_classifier(cfg, resume=resume, progress=progress)
    if data is None:
        data = prepare_data(cfg, progress=progress)
    return _train_once(cfg, data, resume=resume, progress=progress)


def _train_once(cfg: ClassifyConfig, data: PreparedData, *, resume: bool, progress: bool) -> dict:
    """One training run on ``data`` (the samples' labels as targets)."""
    _warn_absent(data.absent)
    if data.skipped_images:
        log.warning(
            "%d image(s) without cells left out (their labels are unknown to the COCO files)", data.skipped_images
        )
    run = _setup(cfg, data)
    out = Path(cfg.out)
    checkpointer = Checkpointer(out)

    start_epoch, iteration, train_seconds = 0, 0, 0.0
    last = checkpointer.last() if resume else None
    if last is not None:
        state = _restore(last, cfg, run.model, run.optimizer, run.scheduler, run.scaler)
        start_epoch, iteration, train_seconds = (
            int(state["epoch"]),
            int(state["iteration"]),
            float(state["train_seconds"]),
        )
        log.info("resuming from %s at epoch %d", last, start_epoch)
    elif resume:
        log.info("resume: no checkpoint in %s; starting from epoch 0", out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(out / "config.yaml", cfg)

    metrics = MetricsLogger(out, start=iteration)  # drops what a killed run logged after its checkpoint
    total = cfg.epochs * run.steps_per_epoch
    log.info(
        "training %s (%s level, %s, %d px, %s, %s) on %d samples, validating on %d; %d epochs of %d steps on %s",
        cfg.backbone,
        cfg.level,
        cfg.channels,
        input_size(cfg),
        cfg.loss,
        cfg.augment,
        len(run.train_set),
        len(run.val_set),
        cfg.epochs,
        run.steps_per_epoch,
        run.device.type,
    )
    bar = tqdm(total=total, initial=min(iteration, total), desc="train", unit="it", disable=not progress)
    run.model.train()
    for epoch in range(start_epoch, cfg.epochs):
        started = time.perf_counter()
        iteration = _train_epoch(run, cfg, epoch, iteration, metrics, bar)
        done = epoch + 1
        if cfg.eval_period and done % cfg.eval_period == 0 and done < cfg.epochs:
            metrics.log(iteration, _val_metrics(*_validate(run, cfg)))
        train_seconds += time.perf_counter() - started
        if cfg.checkpoint_period and done % cfg.checkpoint_period == 0 and done < cfg.epochs:
            path = checkpointer.save(f"model_epoch{done:03d}", _run_state(run, cfg, done, iteration, train_seconds))
            _remove_epoch_checkpoints(out, keep=path)
    bar.close()

    scores, val_loss = _validate(run, cfg)
    final_epoch = max(cfg.epochs, start_epoch)
    if last is None or last.name != f"{FINAL}.pth" or start_epoch < cfg.epochs:  # else logged before the kill
        metrics.log(iteration, _val_metrics(scores, val_loss))
    metrics.close()
    checkpointer.save(
        FINAL, _run_state(run, cfg, final_epoch, iteration, train_seconds, scores["thresholds"], finished=True)
    )
    _remove_epoch_checkpoints(out)
    result = {
        "level": cfg.level,
        "backbone": cfg.backbone,
        "loss": cfg.loss,
        "augment": cfg.augment,
        "channels": cfg.channels,
        "input_size": input_size(cfg),
        "epochs": final_epoch,
        "iterations": iteration,
        "n_train": len(run.train_set),
        "n_val": len(run.val_set),
        "val_loss": None if math.isnan(val_loss) else float(val_loss),
        "train_seconds": round(train_seconds, 3),
        "absent_from_train": [{"id": k, "name": CLASS_NAMES[k]} for k in data.absent],
        **scores,
        "config": dataclasses.asdict(cfg),
    }
    io.write_json(out / EVAL_FILE, result, indent=2)
    return result
