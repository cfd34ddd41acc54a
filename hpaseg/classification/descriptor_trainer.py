"""The descriptor network's trainer (``hpaseg classify --level cell --backbone descriptors``):
weak supervision over the cells of each image, in seconds to minutes on a CPU.

Data: every cell of ``DATASET/train.json`` and ``val.json`` described once
(:mod:`hpaseg.classification.bags`), grouped by image. A step is a batch of
``batch_size`` images; each image weighs the same.

Supervision (``cfg.supervision``, :mod:`hpaseg.weak`):

* ``propagated``: each cell's targets are its dataset labels (its image's, as
  ``hpaseg propagate`` wrote them); binary cross-entropy per cell;
* ``mil``: :func:`hpaseg.weak.bag_loss` on the image's labels (``cfg.pooling``);
* ``refined``: a propagated round, then ``cfg.refine_rounds`` rounds, each trained
  afresh on targets refined from the previous round's predictions on the training
  cells (:func:`hpaseg.weak.refine_targets`, ``cfg.keep_fraction``).

Outputs in ``cfg.out``: ``config.yaml``; ``round{k}.pth`` after each round (``resume``
skips finished rounds; an unfinished one restarts from its seed, so a run killed and
resumed ends with the weights of an uninterrupted run, and ``metrics.jsonl`` drops what
the killed run logged after its last round) and ``last_checkpoint``; ``metrics.jsonl``; ``model_final.pth``;
``refined_labels.csv`` (``ID,cell,Label``: every train and val cell re-labelled from the
final model within its image's labels, :func:`hpaseg.weak.refine_targets`; ``hpaseg
relabel`` writes them into a dataset for Mask R-CNN); ``eval.json`` (written last): the keys of :func:`hpaseg.classification.train_classifier`
(per-cell scores against the validation cells' dataset labels: on weak labels, a lower
bound of what per-cell truth would show) and ``image_macro_ap``: each validation image's
mean cell probabilities against its labels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import __version__, io
from ..classes import CLASS_NAMES, NUM_CLASSES
from ..descriptors import descriptor_names
from ..errors import InputError
from ..evaluation import evaluate_scores
from ..labels import load_coco_split
from ..runtime.checkpoint import Checkpointer
from ..runtime.config import save_config
from ..runtime.logger import MetricsLogger
from ..runtime.seed import seed_everything
from ..weak import bag_loss, image_probabilities, refine_targets, targets_matrix
from .bags import Bag, build_descriptor_cache, descriptor_cache_dir, load_bags
from .config import CHECKPOINT_KIND, EVAL_FILE, FINAL, ClassifyConfig, check_config
from .models import DESCRIPTORS, DescriptorNet

__all__ = [
    "REFINED_LABELS",
    "refined_labels",
    "rounds_of",
    "bag_probabilities",
    "fit_round",
    "refine_bags",
    "train_bags",
    "train_descriptor_classifier",
]

log = logging.getLogger(__name__)

#: The run's cleaned cell labels (``RUN/refined_labels.csv``).
REFINED_LABELS = "refined_labels.csv"

#: Keys of the final validation record of ``metrics.jsonl``.
_VAL_KEYS = ("val_macro_ap", "val_image_macro_ap")

#: Settings a round checkpoint must share with the config that resumes it.
_RESUME_KEYS = ("supervision", "pooling", "keep_fraction", "hidden", "depth", "dropout", "epochs", "lr", "seed")


def rounds_of(cfg: ClassifyConfig) -> int:
    """Training rounds of a config: ``1 + refine_rounds`` when refined, else 1."""
    return 1 + cfg.refine_rounds if cfg.supervision == "refined" else 1


def _prepare(cfg: ClassifyConfig, progress: bool) -> tuple[list[Bag], list[Bag]]:
    splits = []
    for split in ("train", "val"):
        records = load_coco_split(Path(cfg.dataset) / f"{split}.json")
        splits.append(records)
    cache_dir = descriptor_cache_dir(cfg.dataset, cfg.masks)
    build_descriptor_cache(
        splits[0] + splits[1], cfg.data, cfg.masks, cache_dir, workers=cfg.workers, progress=progress
    )
    train, val = (load_bags(records, cache_dir) for records in splits)
    for split, bags in (("train", train), ("val", val)):
        if not bags:
            raise InputError(
                f"dataset {cfg.dataset}: {split}.json has no labelled cell; the {split} split is empty", param="dataset"
            )
    return train, val


def _new_model(cfg: ClassifyConfig, train: Sequence[Bag]) -> DescriptorNet:
    x = np.concatenate([b.x for b in train])
    model = DescriptorNet(x.shape[1], hidden=cfg.hidden, depth=cfg.depth, dropout=cfg.dropout)
    model.set_normalization(x.mean(0), x.std(0))
    return model


def _batch_loss(model: DescriptorNet, bags: Sequence[Bag], cfg: ClassifyConfig) -> torch.Tensor:
    """Mean over the bags of each bag's loss (one forward pass over all their cells)."""
    logits = model(torch.from_numpy(np.concatenate([b.x for b in bags])))
    losses = []
    for bag, part in zip(bags, torch.split(logits, [len(b.cells) for b in bags])):
        if cfg.supervision == "mil":
            losses.append(bag_loss(part, bag.image_labels, pooling=cfg.pooling))
        else:
            losses.append(F.binary_cross_entropy_with_logits(part, torch.from_numpy(bag.targets)))
    return torch.stack(losses).mean()


@contextlib.contextmanager
def _one_thread():
    """Run torch on one thread: the network is tiny, and several threads on small matrices
    cost more in synchronisation than they gain (measured: ~30x slower on 2 busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_round(
    cfg: ClassifyConfig,
    train: Sequence[Bag],
    round_index: int = 0,
    *,
    bar: tqdm | None = None,
    metrics: MetricsLogger | None = None,
) -> DescriptorNet:
    """One round: a fresh network trained for ``cfg.epochs`` on the bags' current targets
    (or, with ``cfg.supervision == "mil"``, on their image labels).

    Parameters
    ----------
    cfg : ClassifyConfig
        ``epochs``, ``batch_size`` (images per step), ``lr``, ``weight_decay``, ``seed``,
        the network's ``hidden``, ``depth``, ``dropout``, and ``supervision``/``pooling``.
    train : sequence of Bag
    round_index : int
        Seeds the shuffling with the epoch.
    bar, metrics
        A progress bar advanced per epoch; a metrics log.

    Returns
    -------
    DescriptorNet
        In eval mode.
    """
    seed_everything(cfg.seed)
    model = _new_model(cfg, train)
    with _one_thread():
        _train_epochs(model, cfg, train, round_index, bar, metrics)
    return model.eval()


def _train_epochs(model, cfg: ClassifyConfig, train: Sequence[Bag], round_index: int, bar, metrics) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    for epoch in range(cfg.epochs):
        order = np.random.default_rng((cfg.seed, round_index, epoch)).permutation(len(train))
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            loss = _batch_loss(model, [train[i] for i in batch], cfg)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {float(loss)} in round {round_index}, epoch {epoch}; lower lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        if metrics is not None and ((epoch + 1) % cfg.log_period == 0 or epoch + 1 == cfg.epochs):
            metrics.log(round_index * cfg.epochs + epoch + 1, {"loss": total / len(train), "round": round_index})
        if bar is not None:
            bar.set_postfix(round=round_index, loss=f"{total / len(train):.4f}")
            bar.update()


@torch.no_grad()
def bag_probabilities(model: DescriptorNet, bags: Sequence[Bag]) -> list[np.ndarray]:
    """Per-cell sigmoid probabilities ``(N, 19)`` of each bag."""
    model.eval()
    if not bags:
        return []
    with _one_thread():
        p = torch.sigmoid(model(torch.from_numpy(np.concatenate([b.x for b in bags])))).numpy().astype(np.float64)
    return list(np.split(p, np.cumsum([len(b.cells) for b in bags])[:-1]))


def refine_bags(model: DescriptorNet, bags: Sequence[Bag], keep_fraction: float) -> None:
    """Replace each bag's targets by those refined from ``model``'s probabilities
    (:func:`hpaseg.weak.refine_targets`)."""
    for bag, p in zip(bags, bag_probabilities(model, bags)):
        bag.targets = refine_targets(p, bag.image_labels, keep_fraction=keep_fraction)


def refined_labels(
    model: DescriptorNet, bags: Sequence[Bag], keep_fraction: float
) -> dict[str, dict[int, tuple[int, ...]]]:
    """``{ID: {cell: labels}}``: each bag's cells re-labelled from ``model`` within the image's labels."""
    out = {}
    for bag, p in zip(bags, bag_probabilities(model, bags)):
        targets = refine_targets(p, bag.image_labels, keep_fraction=keep_fraction)
        out[bag.image_id] = {int(c): tuple(int(k) for k in np.flatnonzero(t)) for c, t in zip(bag.cells, targets)}
    return out


def train_bags(cfg: ClassifyConfig, bags: Sequence[Bag]) -> DescriptorNet:
    """All rounds of ``cfg`` on ``bags`` in memory (no files): :func:`fit_round`, then for
    ``supervision="refined"``, :func:`refine_bags` and a fresh round, ``refine_rounds`` times.
    The bags' targets end refined."""
    model = fit_round(cfg, bags, 0)
    for round_index in range(1, rounds_of(cfg)):
        refine_bags(model, bags, cfg.keep_fraction)
        model = fit_round(cfg, bags, round_index)
    return model


def _evaluate(model: DescriptorNet, val: Sequence[Bag]) -> dict:
    probabilities = bag_probabilities(model, val)
    scores = evaluate_scores(np.concatenate([b.targets for b in val]), np.concatenate(probabilities))
    image_true = targets_matrix([b.image_labels for b in val])
    image_score = np.stack([image_probabilities(p) for p in probabilities])
    scores["image_macro_ap"] = evaluate_scores(image_true, image_score)["macro_ap"]
    return scores


def _state(model: DescriptorNet, cfg: ClassifyConfig, done_rounds: int, seconds: float, thresholds=None) -> dict:
    return {
        "kind": CHECKPOINT_KIND,
        "model": model.state_dict(),
        "rounds_done": done_rounds,
        "train_seconds": seconds,
        "backbone": DESCRIPTORS,
        "level": "cell",
        "channels": "rgby",
        "input_size": 0,
        "n_inputs": int(model.mean.numel()),
        "descriptor_names": descriptor_names(),
        "net": {"hidden": cfg.hidden, "depth": cfg.depth, "dropout": cfg.dropout},
        "mean": [],
        "std": [],
        "thresholds": None if thresholds is None else [float(t) for t in thresholds],
        "classes": list(CLASS_NAMES),
        "config": dataclasses.asdict(cfg),
        "hpaseg_version": __version__,
    }


def _resume_round(out: Path, cfg: ClassifyConfig, train: list[Bag]) -> tuple[int, float, DescriptorNet | None]:
    """Rounds already done in ``out`` (0 without a checkpoint), their seconds, and the last model."""
    last = Checkpointer(out).last()
    if last is None:
        log.info("resume: no checkpoint in %s; starting from round 0", out)
        return 0, 0.0, None
    state = Checkpointer.load(last)
    saved = state.get("config", {}) if isinstance(state, dict) else {}
    differ = [
        f"{k} {saved.get(k)!r} (now {getattr(cfg, k)!r})" for k in _RESUME_KEYS if saved.get(k) != getattr(cfg, k)
    ]
    if state.get("kind") != CHECKPOINT_KIND or state.get("backbone") != DESCRIPTORS or differ:
        raise InputError(
            f"resume: {last} was trained with other settings ({', '.join(differ) or 'not a descriptors run'}); use another output folder or the same settings",
            param="resume",
        )
    model = _new_model(cfg, train)
    model.load_state_dict(state["model"])
    log.info("resuming from %s after round %d", last, state["rounds_done"])
    return int(state["rounds_done"]), float(state["train_seconds"]), model.eval()


def train_descriptor_classifier(cfg: ClassifyConfig, *, resume: bool = False, progress: bool = True) -> dict:
    """Train (or resume) a descriptor-network run and score it on the validation split.

    Parameters
    ----------
    cfg : ClassifyConfig
        ``level="cell"``, ``backbone="descriptors"``; ``batch_size`` counts images.
    resume : bool
        Skip the rounds already finished in ``cfg.out``.
    progress : bool

    Returns
    -------
    dict
        The contents of ``RUN/eval.json``.
    """
    check_config(cfg)
    if cfg.backbone != DESCRIPTORS:
        raise InputError(f"backbone {cfg.backbone!r}: this trainer trains backbone {DESCRIPTORS}", param="backbone")
    train, val = _prepare(cfg, progress)
    out = Path(cfg.out)
    done, seconds, model = _resume_round(out, cfg, train) if resume else (0, 0.0, None)
    out.mkdir(parents=True, exist_ok=True)
    save_config(out / "config.yaml", cfg)
    # Drops what a killed run logged after its last round, its final validation included.
    metrics = MetricsLogger(out, start=done * cfg.epochs, redo=_VAL_KEYS)
    n_rounds = rounds_of(cfg)
    log.info(
        "training descriptors (%d per cell, %s supervision, %d round(s)) on %d cells of %d images, validating on %d images",
        train[0].x.shape[1], cfg.supervision, n_rounds, sum(len(b.cells) for b in train), len(train), len(val),
    )  # fmt: skip
    bar = tqdm(total=n_rounds * cfg.epochs, initial=done * cfg.epochs, desc="train", unit="ep", disable=not progress)
    for round_index in range(n_rounds):
        if round_index < done:
            continue
        if round_index > 0:
            refine_bags(model, train, cfg.keep_fraction)
        started = time.perf_counter()
        model = fit_round(cfg, train, round_index, bar=bar, metrics=metrics)
        seconds += time.perf_counter() - started
        Checkpointer(out).save(f"round{round_index}", _state(model, cfg, round_index + 1, seconds))
    bar.close()
    if model is None:
        raise InputError(f"resume: {out} holds no finished round", param="resume")
    scores = _evaluate(model, val)
    io.write_cell_labels_csv(out / REFINED_LABELS, refined_labels(model, train + val, cfg.keep_fraction))
    Checkpointer(out).save(FINAL, _state(model, cfg, n_rounds, seconds, scores["thresholds"]), last=False)
    metrics.log(
        n_rounds * cfg.epochs, dict(zip(_VAL_KEYS, (scores["macro_ap"] or 0.0, scores["image_macro_ap"] or 0.0)))
    )
    metrics.close()
    absent = [k for k in range(NUM_CLASSES) if not any(k in b.image_labels for b in train)]
    result = {
        "level": "cell",
        "backbone": DESCRIPTORS,
        "supervision": cfg.supervision,
        "rounds": n_rounds,
        "input_size": 0,
        "epochs": cfg.epochs,
        "n_train": sum(len(b.cells) for b in train),
        "n_val": sum(len(b.cells) for b in val),
        "n_train_images": len(train),
        "n_val_images": len(val),
        "train_seconds": round(seconds, 3),
        "absent_from_train": [{"id": k, "name": CLASS_NAMES[k]} for k in absent],
        **scores,
        "config": dataclasses.asdict(cfg),
    }
    io.write_json(out / EVAL_FILE, result, indent=2)
    return result
