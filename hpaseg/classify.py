"""``hpaseg classify``: a multi-label classifier of whole images or of single cells.

``hpaseg classify --level image|cell --backbone B --loss bce|focal --augment standard|cutmix
--dataset DATASET --data DIR --out RUN [--masks MASKS] [--channels green|rgby] ...``

Data
----
``DATASET/train.json`` trains, ``DATASET/val.json`` validates (the COCO files of
``hpaseg propagate``, split by image).

* ``--level image`` (the companion study's setting): the whole image resized to
  ``--image-size`` px (256), labels = the image's labels (the union of its cells'
  propagated labels; images without cells have none and are left out).
  ``--channels green`` (default here, the study's) replicates the green channel to
  three; ``rgby`` uses all four.
* ``--level cell``: one crop per cell of the dataset, ``--crop-size`` px (128), four
  channels, background outside the cell zeroed (:mod:`hpaseg.cells`), labels = the
  cell's propagated labels. The cells are cut from ``--masks`` (``{ID}_cellmask.png``,
  the masks the dataset was propagated from).

Inputs are decoded once and cached under ``DATASET`` (:mod:`hpaseg.cells`).

Training
--------
The study's defaults: Adam, learning rate 1e-4 (constant), batch 32, 20 epochs; every
value can be changed by an option or ``--opts KEY VALUE`` (:class:`ClassifyConfig`;
``schedule cosine|step`` uses :func:`hpaseg.training.lr_factor`). Losses: ``bce``
(``BCEWithLogitsLoss``) or ``focal`` (torchvision's ``sigmoid_focal_loss``, alpha 0.25,
gamma 2, mean over all elements). Augmentations: ``standard`` or ``cutmix``
(:mod:`hpaseg.cells`). Backbones and pretrained weights: :mod:`hpaseg.models.classifier`.

Outputs in ``--out RUN``: ``config.yaml``; ``model_epochNNN.pth`` (the newest only) and
``last_checkpoint`` after each ``checkpoint_period`` epochs, which ``--resume`` continues
from; ``metrics.jsonl`` and TensorBoard logs in ``tb/``; ``model_final.pth`` (weights,
backbone, level, channels, input size, normalisation and the tuned per-class
thresholds; it also resumes, e.g. with more ``--epochs``); and ``eval.json``, written
last, with the validation metrics of the final model:

* ``macro_f1``: macro-F1 at threshold 0.5;
* ``macro_f1_tuned``: macro-F1 with per-class thresholds tuned on the validation split
  itself (:func:`hpaseg.metrics.tune_thresholds`; optimistic, as it is fit on the data it
  scores);
* ``macro_ap`` and per-class AP;
* per-class confusion counts (TN, FP, FN, TP) at the tuned thresholds.

Macro means are over the classes with at least one positive in the validation split
(listed as ``classes_scored``), the rule of macro AP and of the competition mAP; F1 of
a class that has no positive would be 0 or undefined.

Classes without a positive in the training split get a warning naming them; an empty
split, an unknown option value, ``--level cell`` without ``--masks``, a missing channel
or mask file or a mask of the wrong size stop the run (exit code 2) before ``RUN`` is
created.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import io
from .cells import CHANNEL_MODES, ClassifierDataset, Sample, channel_count, crop_cache_dir, crop_cache_paths, cutmix, standard_augment
from .classes import CHANNEL_NAMES, CLASS_NAMES, NUM_CLASSES
from .errors import ArgumentParser, InputError, cli_entry
from .training import Checkpointer, MetricsLogger, apply_opts, lr_factor, save_config, seed_everything

__all__ = [
    "LEVELS",
    "LOSSES",
    "AUGMENTS",
    "DEFAULT_CHANNELS",
    "ClassifyConfig",
    "PreparedData",
    "LoadedClassifier",
    "check_config",
    "config_from_args",
    "input_size",
    "make_loss",
    "prepare_data",
    "evaluate_scores",
    "predict_scores",
    "train_classifier",
    "load_classifier",
    "build_parser",
    "main",
]

log = logging.getLogger("hpaseg.classify")

LEVELS: tuple[str, ...] = ("image", "cell")
LOSSES: tuple[str, ...] = ("bce", "focal")
AUGMENTS: tuple[str, ...] = ("standard", "cutmix")
SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step")
#: Channel mode of each level when --channels is not given.
DEFAULT_CHANNELS: dict[str, str] = {"image": "green", "cell": "rgby"}
_FINAL = "model_final"
_EVAL_FILE = "eval.json"
_CHECKPOINT_KIND = "hpaseg-classifier"
#: Settings a checkpoint must share with the config that resumes it.
_RESUME_KEYS = ("level", "backbone", "channels", "image_size", "crop_size", "loss", "augment")


@dataclass(frozen=True)
class ClassifyConfig:
    """Every setting of a classifier run; saved as ``RUN/config.yaml``.
    Any field can be overridden with ``--opts KEY VALUE``."""

    level: str = "image"
    backbone: str = "efficientnet_b0"
    loss: str = "bce"
    augment: str = "standard"
    channels: str = "green"
    dataset: str = ""
    data: str = ""
    masks: str | None = None
    out: str = ""
    image_size: int = 256  # image level: input side in px
    crop_size: int = 128  # cell level: input side in px
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    schedule: str = "constant"  # or "cosine", "step" (hpaseg.training.lr_factor)
    warmup_iters: int = 0
    warmup_factor: float = 0.1
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    cutmix_p: float = 0.5
    cutmix_alpha: float = 1.0
    rotation_deg: float = 20.0
    translate_fraction: float = 0.1
    checkpoint_period: int = 1  # epochs
    eval_period: int = 1  # epochs between validation scores; 0 = end only
    log_period: int = 10  # iterations
    amp: bool = True  # CUDA only
    pretrained: str | None = None  # None, "imagenet" or a timm checkpoint path
    device: str = "cpu"
    workers: int = 2
    seed: int = 0


def input_size(cfg: ClassifyConfig) -> int:
    """Side of the network's inputs in px: ``image_size`` (image level) or ``crop_size`` (cell level)."""
    return cfg.image_size if cfg.level == "image" else cfg.crop_size


def _choice(option: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise InputError(f"{option} {value!r}: expected one of {', '.join(choices)}")


def check_config(cfg: ClassifyConfig, *, check_paths: bool = True) -> None:
    """Refuse unusable settings with an :class:`InputError` naming the option."""
    from .models.classifier import check_backbone, check_input_size

    _choice("--level", cfg.level, LEVELS)
    check_backbone(cfg.backbone)
    _choice("--loss", cfg.loss, LOSSES)
    _choice("--augment", cfg.augment, AUGMENTS)
    _choice("--channels", cfg.channels, CHANNEL_MODES)
    _choice("--opts schedule", cfg.schedule, SCHEDULES)
    for name in ("image_size", "crop_size", "epochs", "batch_size"):
        if getattr(cfg, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} {getattr(cfg, name)}: expected a positive integer")
    if not cfg.lr > 0:
        raise InputError(f"--lr {cfg.lr}: expected a positive number")
    if not 0 <= cfg.cutmix_p <= 1:
        raise InputError(f"--opts cutmix_p {cfg.cutmix_p}: expected a probability in [0, 1]")
    check_input_size(cfg.backbone, input_size(cfg), option="--image-size" if cfg.level == "image" else "--crop-size")
    if cfg.level == "cell" and not cfg.masks:
        raise InputError("--level cell needs --masks: the folder of {ID}_cellmask.png the dataset was propagated from")
    if check_paths:
        for name in ("dataset", "data") + (("masks",) if cfg.level == "cell" else ()):
            if not Path(getattr(cfg, name)).is_dir():
                raise InputError(f"--{name} {getattr(cfg, name)}: no such folder")
        for split in ("train", "val"):
            if not (Path(cfg.dataset) / f"{split}.json").is_file():
                raise InputError(f"--dataset {cfg.dataset}: no {split}.json; expected the output folder of 'hpaseg propagate'")


# --------------------------------------------------------------------------- losses
def make_loss(name: str, *, alpha: float = 0.25, gamma: float = 2.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(logits (N, K), targets (N, K) float in [0, 1]) -> scalar``, mean over all elements.

    ``"bce"``: binary cross-entropy with logits. ``"focal"``: torchvision's
    ``sigmoid_focal_loss(alpha, gamma, reduction="mean")``.

    >>> x, y = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    >>> round(float(make_loss("focal")(x, y)), 6)  # (0.25 + 0.75) / 2 * 0.5**2 * ln 2
    0.086643
    """
    _choice("--loss", name, LOSSES)
    if name == "bce":
        return torch.nn.BCEWithLogitsLoss()
    from torchvision.ops import sigmoid_focal_loss

    def focal(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="mean")

    return focal


# --------------------------------------------------------------------------- data
@dataclass
class PreparedData:
    """The samples of both splits, with their inputs cached."""

    train: list[Sample]
    val: list[Sample]
    absent: list[int]  # classes without a positive training sample
    skipped_images: int = 0  # image level: images without cells (no labels known)


def _records(cfg: ClassifyConfig, split: str):
    from .dataset import load_coco_split

    records = load_coco_split(Path(cfg.dataset) / f"{split}.json")
    kept = [r for r in records if r.cells]
    if not kept:
        what = "image with labelled cells" if cfg.level == "image" else "labelled cell"
        hint = "; rerun 'hpaseg propagate' with --val-fraction > 0 (the validation split scores the run and tunes its thresholds)" if split == "val" else ""
        raise InputError(f"--dataset {cfg.dataset}: {split}.json has no {what} ({len(records)} images); the {split} split is empty{hint}")
    return kept, len(records) - len(kept)


def prepare_data(cfg: ClassifyConfig, *, progress: bool = True) -> PreparedData:
    """Read both splits, cache their inputs (decoded once) and list the samples."""
    from .cells import build_crop_cache
    from .dataset import cache_paths, build_cache

    check_config(cfg)
    train, skipped_train = _records(cfg, "train")
    val, skipped_val = _records(cfg, "val")
    if cfg.level == "image":
        cache_dir = Path(cfg.dataset) / f"cache_{cfg.image_size}px"
        todo = [r for r in train + val if not all(p.is_file() for p in cache_paths(cache_dir, r.image_id))]
        for rec in todo:  # fail before any decoding
            for channel in CHANNEL_NAMES:
                io.find_channel_file(cfg.data, rec.image_id, channel)
        build_cache(todo, cfg.data, cache_dir, cfg.image_size, progress=progress)

        def samples(records) -> list[Sample]:
            return [Sample(r.image_id, 0, str(cache_paths(cache_dir, r.image_id)[0]), -1, tuple(sorted(set().union(*r.cells.values())))) for r in records]

    else:
        cache_dir = crop_cache_dir(cfg.dataset, cfg.masks, cfg.crop_size)
        build_crop_cache(train + val, cfg.data, cfg.masks, cache_dir, cfg.crop_size, progress=progress)

        def samples(records) -> list[Sample]:
            out = []
            for r in records:
                crops_path, ids_path = crop_cache_paths(cache_dir, r.image_id)
                row_of = {int(c): i for i, c in enumerate(np.load(ids_path))}
                missing = sorted(set(r.cells) - set(row_of))
                if missing:
                    raise InputError(f"{ids_path}: cached crops lack cell {missing[0]} of image {r.image_id!r}; delete {cache_dir} and rerun")
                out.extend(Sample(r.image_id, c, str(crops_path), row_of[c], labels) for c, labels in sorted(r.cells.items()))
            return out

    train_samples, val_samples = samples(train), samples(val)
    counts = np.zeros(NUM_CLASSES, np.int64)
    for s in train_samples:
        counts[list(s.labels)] += 1
    return PreparedData(train_samples, val_samples, [k for k in range(NUM_CLASSES) if counts[k] == 0], skipped_train + skipped_val if cfg.level == "image" else 0)


def _targets(samples: Sequence[Sample]) -> np.ndarray:
    y = np.zeros((len(samples), NUM_CLASSES), np.int64)
    for i, s in enumerate(samples):
        y[i, list(s.labels)] = 1
    return y


# --------------------------------------------------------------------------- metrics
def _nan_to_none(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _f1(confusion: np.ndarray) -> np.ndarray:
    (tn, fp), (fn, tp) = confusion[:, 0].T, confusion[:, 1].T
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros(len(tp), np.float64), where=denom > 0)


def evaluate_scores(y_true: np.ndarray, y_score: np.ndarray) -> dict:
    """Validation metrics of per-class probabilities (see the module docstring).

    Parameters
    ----------
    y_true : ndarray, shape (N, 19), {0, 1}
    y_score : ndarray, shape (N, 19), float in [0, 1]

    Returns
    -------
    dict
        ``macro_f1``, ``macro_f1_tuned``, ``macro_ap`` (NaN-free floats, or None when no
        class has a positive), ``thresholds`` (19 tuned thresholds), ``classes_scored`` and
        ``per_class``: one dict per class with ``id, name, n_positive, ap, f1, f1_tuned,
        threshold, tn, fp, fn, tp`` (counts at the tuned threshold; ap None without positives).

    Examples
    --------
    >>> y = np.zeros((4, 19), int); y[:2, 0] = 1; y[1:3, 5] = 1
    >>> s = np.full((4, 19), 0.1); s[:2, 0] = 0.9; s[1:3, 5] = 0.4; s[3, 5] = 0.45
    >>> r = evaluate_scores(y, s)
    >>> r["classes_scored"], r["macro_f1"], r["macro_f1_tuned"], round(r["macro_ap"], 4)  # class 5: F1 0 at 0.5, 0.8 at 0.4
    ([0, 5], 0.5, 0.9, 0.8333)
    """
    from .metrics import macro_f1, multilabel_confusion, per_class_ap, tune_thresholds

    y_true = np.asarray(y_true, dtype=np.int64)
    y_score = np.asarray(y_score, dtype=np.float64)
    present = y_true.any(axis=0)
    thresholds = tune_thresholds(y_true, y_score)
    ap = per_class_ap(y_true, y_score)
    confusion_05 = multilabel_confusion(y_true, (y_score >= 0.5).astype(np.int64))
    confusion = multilabel_confusion(y_true, (y_score >= thresholds).astype(np.int64))
    f1_05, f1_tuned = _f1(confusion_05), _f1(confusion)
    scored = present.any()
    result = {
        "macro_f1": macro_f1(y_true[:, present], y_score[:, present]) if scored else None,
        "macro_f1_tuned": macro_f1(y_true[:, present], y_score[:, present], thresholds[present]) if scored else None,
        "macro_ap": float(np.nanmean(ap)) if scored else None,
        "thresholds": [float(t) for t in thresholds],
        "classes_scored": [int(k) for k in np.flatnonzero(present)],
        "n_samples": int(len(y_true)),
        "per_class": [
            {
                "id": k,
                "name": CLASS_NAMES[k],
                "n_positive": int(y_true[:, k].sum()),
                "ap": _nan_to_none(float(ap[k])),
                "f1": float(f1_05[k]),
                "f1_tuned": float(f1_tuned[k]),
                "threshold": float(thresholds[k]),
                "tn": int(confusion[k, 0, 0]),
                "fp": int(confusion[k, 0, 1]),
                "fn": int(confusion[k, 1, 0]),
                "tp": int(confusion[k, 1, 1]),
            }
            for k in range(NUM_CLASSES)
        ],
    }
    return result


@torch.no_grad()
def predict_scores(model: torch.nn.Module, dataset: ClassifierDataset, device: torch.device, *, batch_size: int, workers: int = 0, loss_fn: Callable | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Sigmoid probabilities of every sample of ``dataset``.

    Returns
    -------
    y_true : ndarray, shape (N, 19), int64
    y_score : ndarray, shape (N, 19), float64
    loss : float
        Mean ``loss_fn`` over the batches (NaN without one).
    """
    from torch.utils.data import DataLoader

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
    return _targets(dataset.samples), y_score, float(np.mean(losses)) if losses else math.nan


# --------------------------------------------------------------------------- training
def _state(model, optimizer, scheduler, scaler, cfg: ClassifyConfig, *, epoch: int, iteration: int, train_seconds: float, mean, std, thresholds=None) -> dict:
    from . import __version__

    return {
        "kind": _CHECKPOINT_KIND,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},
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
    if not isinstance(state, dict) or state.get("kind") != _CHECKPOINT_KIND:
        raise InputError(f"--resume: {path} is not a classifier checkpoint of 'hpaseg classify'; use another --out")
    differ = [f"{k} {state.get(k)!r} (now {getattr(cfg, k)!r})" for k in _RESUME_KEYS if state.get(k) != getattr(cfg, k)]
    if differ:
        raise InputError(f"--resume: {path} was trained with {', '.join(differ)}; use another --out or the same settings")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    return state


def _warn_absent(absent: Sequence[int]) -> None:
    if absent:
        names = ", ".join(f"{k} {CLASS_NAMES[k]}" for k in absent)
        log.warning("%d class(es) have no positive sample in the training split and cannot be learned: %s", len(absent), names)


def train_classifier(cfg: ClassifyConfig, *, resume: bool = False, progress: bool = True, data: PreparedData | None = None) -> dict:
    """Train (or resume) a classifier run and score it on the validation split.

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
    from torch.utils.data import DataLoader, RandomSampler
    from tqdm import tqdm

    from .models.classifier import build_classifier, normalization

    check_config(cfg)
    if data is None:
        data = prepare_data(cfg, progress=progress)
    _warn_absent(data.absent)
    if data.skipped_images:
        log.warning("%d image(s) without cells left out (their labels are unknown to the COCO files)", data.skipped_images)
    device = torch.device(cfg.device)
    in_chans = channel_count(cfg.channels)
    mean, std = normalization(cfg.backbone, in_chans)
    size = input_size(cfg)
    augment = standard_augment(rotation_deg=cfg.rotation_deg, translate_fraction=cfg.translate_fraction)
    train_set = ClassifierDataset(data.train, channels=cfg.channels, size=size, mean=mean, std=std, augment=augment)
    val_set = ClassifierDataset(data.val, channels=cfg.channels, size=size, mean=mean, std=std)

    out = Path(cfg.out)
    checkpointer = Checkpointer(out)
    seed_everything(cfg.seed)
    model = build_classifier(cfg.backbone, in_chans=in_chans, pretrained=cfg.pretrained).to(device)
    drop_last = len(train_set) >= cfg.batch_size
    steps_per_epoch = len(train_set) // cfg.batch_size if drop_last else 1
    max_iter = cfg.epochs * steps_per_epoch
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.schedule == "constant":
        factor = lambda it: 1.0 if it >= cfg.warmup_iters else cfg.warmup_factor + (1 - cfg.warmup_factor) * it / cfg.warmup_iters  # noqa: E731
    else:
        factor = lambda it: lr_factor(it, max_iter=max_iter, warmup_iters=cfg.warmup_iters, warmup_factor=cfg.warmup_factor, schedule=cfg.schedule)  # noqa: E731
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)

    start_epoch, iteration, train_seconds = 0, 0, 0.0
    last = checkpointer.last() if resume else None
    if last is not None:
        state = _restore(last, cfg, model, optimizer, scheduler, scaler)
        start_epoch, iteration, train_seconds = int(state["epoch"]), int(state["iteration"]), float(state["train_seconds"])
        print(f"resuming from {last} at epoch {start_epoch}")
    elif resume:
        print(f"--resume: no checkpoint in {out}; starting from epoch 0")
    out.mkdir(parents=True, exist_ok=True)
    save_config(out / "config.yaml", cfg)

    loss_fn = make_loss(cfg.loss, alpha=cfg.focal_alpha, gamma=cfg.focal_gamma)
    mixer = cutmix(p=cfg.cutmix_p, alpha=cfg.cutmix_alpha) if cfg.augment == "cutmix" else None
    metrics = MetricsLogger(out)
    print(f"training {cfg.backbone} ({cfg.level} level, {cfg.channels}, {size} px, {cfg.loss}, {cfg.augment}) on {len(train_set)} samples, validating on {len(val_set)}; {cfg.epochs} epochs of {steps_per_epoch} steps on {device.type}")
    bar = tqdm(total=cfg.epochs * steps_per_epoch, initial=min(iteration, cfg.epochs * steps_per_epoch), desc="train", unit="it", disable=not progress)
    previous = last if last is not None and last.name != f"{_FINAL}.pth" else None
    model.train()
    for epoch in range(start_epoch, cfg.epochs):
        started = time.perf_counter()
        sampler = RandomSampler(train_set, generator=torch.Generator().manual_seed(cfg.seed + epoch))
        loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers, drop_last=drop_last)
        window_start, window_samples = time.perf_counter(), 0
        for x, y in loader:
            if mixer is not None:
                x, y = mixer(x, y)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=use_amp):
                logits = model(x)
            loss = loss_fn(logits.float(), y)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"loss became {loss_value} at iteration {iteration} (epoch {epoch}); lower --lr or check the data")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            iteration += 1
            window_samples += len(x)
            if iteration % cfg.log_period == 0 or iteration % steps_per_epoch == 0:
                elapsed = time.perf_counter() - window_start
                metrics.log(iteration, {"loss": loss_value, "lr": optimizer.param_groups[0]["lr"], "epoch": epoch, "samples_per_s": window_samples / max(elapsed, 1e-9)})
                window_start, window_samples = time.perf_counter(), 0
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_value:.4f}")
            bar.update()
        done = epoch + 1
        if cfg.eval_period and done % cfg.eval_period == 0 and done < cfg.epochs:
            y_true, y_score, val_loss = predict_scores(model, val_set, device, batch_size=cfg.batch_size, workers=cfg.workers, loss_fn=loss_fn)
            scores = evaluate_scores(y_true, y_score)
            metrics.log(iteration, {"val_loss": val_loss, **{f"val_{k}": scores[k] for k in ("macro_f1", "macro_f1_tuned", "macro_ap") if scores[k] is not None}})
        train_seconds += time.perf_counter() - started
        if cfg.checkpoint_period and done % cfg.checkpoint_period == 0 and done < cfg.epochs:
            path = checkpointer.save(f"model_epoch{done:03d}", _state(model, optimizer, scheduler, scaler, cfg, epoch=done, iteration=iteration, train_seconds=train_seconds, mean=mean, std=std))
            if previous is not None and previous != path:
                previous.unlink(missing_ok=True)
            previous = path
    bar.close()

    y_true, y_score, val_loss = predict_scores(model, val_set, device, batch_size=cfg.batch_size, workers=cfg.workers, loss_fn=loss_fn)
    scores = evaluate_scores(y_true, y_score)
    final_epoch = max(cfg.epochs, start_epoch)
    checkpointer.save(_FINAL, _state(model, optimizer, scheduler, scaler, cfg, epoch=final_epoch, iteration=iteration, train_seconds=train_seconds, mean=mean, std=std, thresholds=scores["thresholds"]))
    if previous is not None:
        previous.unlink(missing_ok=True)
    metrics.log(iteration, {"val_loss": val_loss, **{f"val_{k}": scores[k] for k in ("macro_f1", "macro_f1_tuned", "macro_ap") if scores[k] is not None}})
    metrics.close()
    result = {
        "level": cfg.level,
        "backbone": cfg.backbone,
        "loss": cfg.loss,
        "augment": cfg.augment,
        "channels": cfg.channels,
        "input_size": size,
        "epochs": final_epoch,
        "iterations": iteration,
        "n_train": len(train_set),
        "n_val": len(val_set),
        "val_loss": _nan_to_none(val_loss),
        "train_seconds": round(train_seconds, 3),
        "absent_from_train": [{"id": k, "name": CLASS_NAMES[k]} for k in data.absent],
        **scores,
        "config": dataclasses.asdict(cfg),
    }
    io.write_json(out / _EVAL_FILE, result, indent=2)
    return result


# --------------------------------------------------------------------------- inference
@dataclass
class LoadedClassifier:
    """A trained classifier ready for inference, with the settings its inputs need."""

    model: torch.nn.Module
    backbone: str
    level: str
    channels: str
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    thresholds: np.ndarray  # (19,) tuned on the validation split
    device: torch.device
    path: Path

    @torch.no_grad()
    def probabilities(self, inputs: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """Per-class probabilities of inputs already at the input size.

        Parameters
        ----------
        inputs : ndarray, shape (N, S, S, 4), uint8
            RGBY crops or squared images (``S`` = ``input_size``).

        Returns
        -------
        ndarray, shape (N, 19), float64
        """
        from torchvision.transforms import v2

        from .cells import select_channels, to_tensor

        normalize = v2.Normalize(list(self.mean), list(self.std))
        out = np.zeros((len(inputs), NUM_CLASSES))
        for start in range(0, len(inputs), batch_size):
            x = torch.stack([normalize(to_tensor(select_channels(a, self.channels))) for a in inputs[start : start + batch_size]]).to(self.device)
            out[start : start + len(x)] = torch.sigmoid(self.model(x).float()).cpu().numpy()
        return out


def load_classifier(path: str | Path, *, backbone: str | None = None, level: str | None = None, device: str | torch.device = "cpu", option: str = "--classifier") -> LoadedClassifier:
    """Load ``RUN/model_final.pth`` of ``hpaseg classify`` (``path`` is the run folder or the file).

    Raises
    ------
    InputError
        No such file, not a classifier checkpoint, or a backbone or level other than asked.
    """
    from .models.classifier import build_classifier

    path = Path(path)
    if path.is_dir():
        path = path / f"{_FINAL}.pth"
    if not path.is_file():
        raise InputError(f"{option} {path}: no such file; give a run folder of 'hpaseg classify' (with {_FINAL}.pth)")
    state = Checkpointer.load(path)
    if not isinstance(state, dict) or state.get("kind") != _CHECKPOINT_KIND:
        raise InputError(f"{option} {path}: not a classifier checkpoint of 'hpaseg classify'")
    if backbone is not None and state["backbone"] != backbone:
        raise InputError(f"{option} {path}: trained with backbone {state['backbone']!r}, not --backbone {backbone!r}; pass --backbone {state['backbone']}")
    if level is not None and state["level"] != level:
        raise InputError(f"{option} {path}: trained at the {state['level']} level, not the {level} level; give a run of 'hpaseg classify --level {level}'")
    if state.get("thresholds") is None:
        raise InputError(f"{option} {path}: an unfinished run (no tuned thresholds); finish it with 'hpaseg classify --resume'")
    model = build_classifier(state["backbone"], in_chans=channel_count(state["channels"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise InputError(f"{option} {path}: weights do not fit backbone {state['backbone']!r} ({str(exc).splitlines()[0]})") from exc
    device = torch.device(device)
    return LoadedClassifier(model.to(device).eval(), state["backbone"], state["level"], state["channels"], int(state["input_size"]), tuple(state["mean"]), tuple(state["std"]), np.asarray(state["thresholds"]), device, path)


# --------------------------------------------------------------------------- CLI
def build_parser() -> ArgumentParser:
    """Command-line options of ``hpaseg classify``."""
    from .models.classifier import BACKBONES

    d = ClassifyConfig()
    parser = ArgumentParser(prog="hpaseg classify", description="Train a multi-label classifier of whole images or single cells (the companion study's pipeline).")
    g = parser.add_argument_group("model")
    g.add_argument("--level", required=True, help="image (whole images) or cell (one crop per cell)")
    g.add_argument("--backbone", required=True, help=f"one of {', '.join(BACKBONES)}")
    g.add_argument("--loss", default=d.loss, help=f"bce or focal (default {d.loss})")
    g.add_argument("--augment", default=d.augment, help=f"standard or cutmix (default {d.augment})")
    g.add_argument("--channels", default=None, help="green (green replicated to three) or rgby (default: green at image level, rgby at cell level)")
    g.add_argument("--pretrained", default=None, help="'imagenet' (timm download) or a timm RGB checkpoint file; stems adapted to RGBY (default: random init)")
    g = parser.add_argument_group("data and output")
    g.add_argument("--dataset", required=True, help="folder with train.json/val.json from hpaseg propagate")
    g.add_argument("--data", required=True, help="folder of the training images")
    g.add_argument("--masks", default=None, help="folder of {ID}_cellmask.png (needed for --level cell)")
    g.add_argument("--out", required=True, help="run folder (config.yaml, checkpoints, metrics, eval.json)")
    g.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    g = parser.add_argument_group("schedule")
    g.add_argument("--image-size", type=int, default=d.image_size, help=f"image level: input side in px (default {d.image_size})")
    g.add_argument("--crop-size", type=int, default=d.crop_size, help=f"cell level: crop side in px (default {d.crop_size})")
    g.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default {d.epochs})")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help=f"samples per step (default {d.batch_size})")
    g.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr})")
    g = parser.add_argument_group("hardware")
    g.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu (default: cuda when available)")
    g.add_argument("--workers", type=int, default=None, help="data-loader processes (default: CPUs - 1, at most 8)")
    g.add_argument("--seed", type=int, default=d.seed, help=f"seed (default {d.seed})")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE", help="override config keys, e.g. --opts schedule cosine cutmix_p 0.3")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def config_from_args(args, **overrides) -> ClassifyConfig:
    """A :class:`ClassifyConfig` from parsed options of ``hpaseg classify``/``hpaseg ablation``."""
    from .dataset import default_workers

    level = overrides.get("level", args.level)
    cfg = ClassifyConfig(
        level=level,
        backbone=overrides.get("backbone", getattr(args, "backbone", None)),
        loss=overrides.get("loss", getattr(args, "loss", None)),
        augment=overrides.get("augment", getattr(args, "augment", None)),
        channels=args.channels or DEFAULT_CHANNELS.get(level, "rgby"),
        dataset=str(args.dataset),
        data=str(args.data),
        masks=None if args.masks is None else str(args.masks),
        out=str(overrides.get("out", args.out)),
        image_size=args.image_size,
        crop_size=args.crop_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        pretrained=args.pretrained,
        device=args.device,
        workers=default_workers() if args.workers is None else args.workers,
        seed=args.seed,
    )
    return apply_opts(cfg, args.opts)


@cli_entry("classify")
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg classify``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    cfg = config_from_args(args)
    result = train_classifier(cfg, resume=args.resume, progress=not args.quiet)
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    print(f"validation ({result['n_val']} {cfg.level}{'' if result['n_val'] == 1 else 's'}, {len(result['classes_scored'])} classes with positives): macro-F1@0.5 {fmt(result['macro_f1'])}, macro-F1 tuned {fmt(result['macro_f1_tuned'])}, macro AP {fmt(result['macro_ap'])}")
    print(f"wrote {Path(cfg.out) / (_FINAL + '.pth')} and {Path(cfg.out) / _EVAL_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
