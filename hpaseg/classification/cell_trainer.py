"""The weak-supervision trainer of cell classifiers (``hpaseg classify --level cell`` with
``supervision`` ``refined`` or ``mil``, and every supervision of the descriptors
backbone): one code path for both kinds of cell network.

* ``backbone="descriptors"`` (the CPU preset): every cell described once
  (:mod:`hpaseg.classification.bags`), a :class:`~hpaseg.classification.models.DescriptorNet`
  on the descriptors; seconds to minutes on a CPU.
* a timm backbone (the GPU preset, ``efficientnet_b0``; ``resnet18`` for CPUs): every cell
  cropped once at ``crop_size`` px (the crop cache of ``hpaseg classify``), a
  :class:`~hpaseg.classification.models.CropNet` on the uint8 crops (random right-angle
  turns and flips in training), on ``cfg.device`` with bfloat16 autocast on CUDA
  (``cfg.amp``).

Data: the cells of ``DATASET/train.json`` and ``val.json``, grouped by image (a
:class:`~hpaseg.classification.bags.Bag` per image: its cells' descriptors or crops,
labels and targets). A step is a batch of images, each weighing the same:
``batch_size`` images for descriptors, images up to ``batch_size`` cells for a CNN (at
least one image).

Supervision (``cfg.supervision``, :mod:`hpaseg.weak`):

* ``propagated``: each cell's targets are its dataset labels (its image's, as
  ``hpaseg propagate`` wrote them); binary cross-entropy per cell (a CNN with propagated
  labels is the companion study's setting and trains in :mod:`hpaseg.classification.trainer`,
  with its losses and augmentations);
* ``mil``: :func:`hpaseg.weak.bag_loss` on the image's labels (``cfg.pooling``);
* ``refined``: a propagated round, then ``cfg.refine_rounds`` rounds, each trained
  afresh on targets refined from the previous round's predictions on the training
  cells (:func:`hpaseg.weak.refine_targets`, ``cfg.keep_fraction``).

Image head (``cfg.image_epochs`` > 0, :func:`fit_image_head`): after the rounds, a
:class:`~hpaseg.weak.ImageHead` trained on the training images'
labels from the mean and maximum of their cells' features (the descriptors themselves,
or the last round's pooled CNN features, :func:`feature_bags`); at prediction its
probabilities are mixed with those pooled from the cells (:func:`hpaseg.weak.image_estimate`).
Bag mixing augments its training (``cfg.image_mix``, :func:`hpaseg.weak.bag_mixtures`):
with that chance a sample is its image's cells joined by those of 1-3 other training
images, labelled with the union of their labels (an image holds a class when one of its
cells does). In 5-fold cross-validation on the benchmark's training images
(``python -m hpaseg.bench cv``, ``--image-mix 0`` against the default 0.75), mixing raised
the image head alone from 0.677 to 0.720 mAP and the default score rule from 0.713 to
0.731 (benchmarks/RESULTS.md: how much of that is seed noise). Only the image head
mixes: the rounds' cells keep their own (propagated or refined) targets. The head trains
with one batched pass per step
(:meth:`~hpaseg.weak.ImageHead.forward_bags`): the refined run
of ``bench learn`` trains in 57 s, against 75 s before bag mixing.

Passes: pass 0 trains the rounds and the image head on the train split and scores them
on the validation split; with ``cfg.refit`` (the default) pass 1 trains them again, from
scratch with the same settings, on train + val, and that is the final model (every
labelled image used; in 5-fold cross-validation on the benchmark's training images,
training on 85% of a fold's images instead of all of them cost 0.021 mAP). The
validation scores are pass 0's, and so are the per-class thresholds tuned on the
validation split: ``eval.json`` keeps them, marked ``thresholds_of`` (the validated
model), but a refit's ``model_final.pth`` holds none (``thresholds`` None), since its
model trained on the validation images; without refit it holds them. ``finished``
marks the final checkpoint.

Outputs in ``cfg.out``: ``config.yaml``; ``round{k}.pth`` after each round and
``image_head.pth`` after the image head of pass 0, ``refit_round{k}.pth`` and
``refit_image_head.pth`` of pass 1, and ``last_checkpoint`` (``resume`` skips what is
finished; an unfinished round restarts from its seed, so a run killed and resumed ends
with the weights of an uninterrupted run, and ``metrics.jsonl`` drops what the killed
run logged after its last round); ``metrics.jsonl``; ``model_final.pth``;
``refined_labels.csv`` (``ID,cell,Label``: every train and val cell re-labelled from the
final model within its image's labels, :func:`hpaseg.weak.refine_targets`; ``hpaseg
relabel`` writes them into a dataset for Mask R-CNN); ``cell_probabilities.csv``
(``ID,cell,p0..p18``: the final model's probabilities of the same cells, the soft
targets of ``hpaseg train --teacher RUN``); ``eval.json`` (written last): the
keys of :func:`hpaseg.classification.train_classifier` (pass 0's per-cell scores against
the validation cells' dataset labels: on weak labels, a lower bound of what per-cell
truth would show) and ``image_macro_ap``: each validation image's probabilities
(:func:`hpaseg.weak.image_estimate` of its cells' and the image head's) against its labels.
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
from ..runtime.schedule import build_scheduler
from ..runtime.seed import seed_everything
from ..weak import (
    IMAGE_HEAD,
    ImageHead,
    ScoreRule,
    bag_loss,
    cell_loss,
    image_estimate,
    one_thread,
    refine_targets,
    targets_matrix,
)
from ..weak import fit_image_head as weak_fit_image_head
from ..weak import image_head_probabilities as weak_image_head_probabilities
from .bags import Bag, build_descriptor_cache, copy_bags, descriptor_cache_dir, descriptor_cache_paths, load_bags
from .config import CHECKPOINT_KIND, EVAL_FILE, FINAL, ClassifyConfig, check_config, input_size
from .data import build_crop_cache, crop_cache_dir, crop_cache_paths
from .models import DESCRIPTORS, CropNet, DescriptorNet, build_classifier, normalization

__all__ = [
    "REFINED_LABELS",
    "CELL_PROBABILITIES",
    "VALIDATED_MODEL",
    "refined_labels",
    "rounds_of",
    "bag_probabilities",
    "feature_bags",
    "fit_round",
    "split_bags",
    "IMAGE_HEAD",
    "image_head_of",
    "fit_image_head",
    "image_head_probabilities",
    "refine_bags",
    "train_bags",
    "train_cell_classifier",
    "trains",
]

log = logging.getLogger(__name__)

#: The run's cleaned cell labels (``RUN/refined_labels.csv``).
REFINED_LABELS = "refined_labels.csv"
#: The final model's probabilities of every training cell (train + val), ``ID,cell,p0..p18``:
#: a teacher's soft targets for Mask R-CNN's label head (``hpaseg train --teacher RUN``).
CELL_PROBABILITIES = io.CELL_PROBABILITIES_CSV

#: ``thresholds_of`` in ``eval.json``: the model the validation thresholds were tuned for.
VALIDATED_MODEL = "validated model (pass 0, trained on train)"

#: Keys of the final validation record of ``metrics.jsonl``.
_VAL_KEYS = ("val_macro_ap", "val_image_macro_ap")

#: Settings a round checkpoint must share with the config that resumes it.
_RESUME_KEYS = (
    "backbone", "crop_size", "pretrained", "schedule", "warmup_iters", "supervision", "pooling", "keep_fraction",
    "hidden", "depth", "dropout", "epochs", "lr", "seed", "image_epochs", "image_mix", "refit",
)  # fmt: skip

#: What a run of an earlier hpaseg, which did not record these settings, was trained with.
_BEFORE_RECORDED = {"image_epochs": 0, "image_mix": 0.0, "refit": False}

#: ``net_kind`` of a checkpoint whose cell network is a :class:`CropNet` (a CNN trained here).
CROP_NET = "crop_net"
#: Cells per forward pass when a CNN predicts (probabilities, features).
_CNN_CHUNK = 256


def trains(cfg: ClassifyConfig) -> bool:
    """Whether this trainer trains ``cfg``: cell level, and the descriptors backbone or weak
    supervision (``mil``, ``refined``); a CNN on propagated labels is the study's trainer's.

    >>> trains(ClassifyConfig(level="cell", backbone="resnet18", supervision="refined"))
    True
    >>> trains(ClassifyConfig(level="cell", backbone="resnet18", supervision="propagated"))
    False
    """
    return cfg.level == "cell" and (cfg.backbone == DESCRIPTORS or cfg.supervision != "propagated")


def rounds_of(cfg: ClassifyConfig) -> int:
    """Training rounds of a config: ``1 + refine_rounds`` when refined, else 1."""
    return 1 + cfg.refine_rounds if cfg.supervision == "refined" else 1


def split_bags(cfg: ClassifyConfig, progress: bool = True) -> tuple[list[Bag], list[Bag]]:
    """The bags of ``DATASET/train.json`` and ``val.json`` (``cfg.dataset``, images
    ``cfg.data``, cells ``cfg.masks``), every cell described (descriptors) or cropped at
    ``cfg.crop_size`` (a CNN) once (cached)."""
    splits = [load_coco_split(Path(cfg.dataset) / f"{split}.json") for split in ("train", "val")]
    records = splits[0] + splits[1]
    if cfg.backbone == DESCRIPTORS:
        cache_dir, paths = descriptor_cache_dir(cfg.dataset, cfg.masks), descriptor_cache_paths
        build_descriptor_cache(records, cfg.data, cfg.masks, cache_dir, workers=cfg.workers, progress=progress)
    else:
        cache_dir, paths = crop_cache_dir(cfg.dataset, cfg.masks, cfg.crop_size), crop_cache_paths
        build_crop_cache(records, cfg.data, cfg.masks, cache_dir, cfg.crop_size, workers=cfg.workers, progress=progress)
    train, val = (load_bags(split, cache_dir, paths) for split in splits)
    return train, val


def _prepare(cfg: ClassifyConfig, progress: bool) -> tuple[list[Bag], list[Bag]]:
    train, val = split_bags(cfg, progress)
    for split, bags in (("train", train), ("val", val)):
        if not bags:
            raise InputError(
                f"dataset {cfg.dataset}: {split}.json has no labelled cell; the {split} split is empty", param="dataset"
            )
    return train, val


def _new_model(cfg: ClassifyConfig, train: Sequence[Bag], *, pretrained: bool = True) -> DescriptorNet | CropNet:
    """A fresh cell network: a :class:`DescriptorNet` standardised on the training cells, or
    a :class:`CropNet` on ``cfg.backbone`` (``cfg.pretrained`` weights unless ``pretrained``
    is False: a checkpoint's weights replace them), on ``cfg.device``."""
    if cfg.backbone != DESCRIPTORS:
        classifier = build_classifier(cfg.backbone, pretrained=cfg.pretrained if pretrained else None)
        return CropNet(classifier, *normalization(cfg.backbone)).to(torch.device(cfg.device))
    x = np.concatenate([b.x for b in train])
    model = DescriptorNet(x.shape[1], hidden=cfg.hidden, depth=cfg.depth, dropout=cfg.dropout)
    model.set_normalization(x.mean(0), x.std(0))
    return model


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.buffers()).device


def _inputs(model: torch.nn.Module, bags: Sequence[Bag]) -> torch.Tensor:
    """The bags' cells stacked, on the model's device."""
    return torch.from_numpy(np.concatenate([np.asarray(b.x) for b in bags])).to(_device(model), non_blocking=True)


def _autocast(model: torch.nn.Module, enabled: bool = True):
    """bfloat16 autocast for a CNN on CUDA (no loss scaling needed); a no-op elsewhere."""
    device = _device(model)
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def _batch_loss(model: DescriptorNet | CropNet, bags: Sequence[Bag], cfg: ClassifyConfig) -> torch.Tensor:
    """Mean over the bags of each bag's loss (one forward pass over all their cells)."""
    with _autocast(model, cfg.amp):
        logits = model(_inputs(model, bags))
    logits = logits.float().cpu()  # the bag losses and their targets live on the CPU
    losses = []
    for bag, part in zip(bags, torch.split(logits, [len(b.cells) for b in bags])):
        if cfg.supervision == "mil":
            losses.append(bag_loss(part, bag.image_labels, pooling=cfg.pooling))
        else:
            targets = torch.from_numpy(bag.targets)
            losses.append(cell_loss(part, targets, negative_known=bag.negative_known, pooling=cfg.pooling))
    return torch.stack(losses).mean()


@contextlib.contextmanager
def _threads(model: torch.nn.Module):
    """Run a :class:`DescriptorNet` on one thread: the network is tiny, and several threads
    on small matrices cost more in synchronisation than they gain (measured: ~30x slower on
    2 busy cores). A CNN keeps torch's threads."""
    if isinstance(model, CropNet):
        yield
        return
    with one_thread():
        yield


def fit_round(
    cfg: ClassifyConfig,
    train: Sequence[Bag],
    round_index: int = 0,
    *,
    bar: tqdm | None = None,
    metrics: MetricsLogger | None = None,
) -> DescriptorNet | CropNet:
    """One round: a fresh network trained for ``cfg.epochs`` on the bags' current targets
    (or, with ``cfg.supervision == "mil"``, on their image labels).

    Parameters
    ----------
    cfg : ClassifyConfig
        ``epochs``, ``batch_size`` (images per step; a CNN: cells, :func:`batches`), ``lr``,
        ``weight_decay``, ``schedule``, ``seed``, the network (``backbone``; descriptors:
        ``hidden``, ``depth``, ``dropout``), and ``supervision``/``pooling``.
    train : sequence of Bag
    round_index : int
        Seeds the shuffling with the epoch.
    bar, metrics
        A progress bar advanced per epoch; a metrics log.

    Returns
    -------
    DescriptorNet or CropNet
        In eval mode.
    """
    seed_everything(cfg.seed)
    model = _new_model(cfg, train)
    with _threads(model):
        _train_epochs(model, cfg, train, round_index, bar, metrics)
    return model.eval()


def batches(order: np.ndarray, bags: Sequence[Bag], batch_size: int, *, by_cells: bool) -> list[np.ndarray]:
    """``order`` cut into steps: ``batch_size`` bags each, or (``by_cells``) consecutive bags
    up to ``batch_size`` cells (at least one bag a step).

    >>> bags = [Bag("a", np.arange(n), np.zeros((n, 1), np.float32), (0,), np.zeros((n, 19))) for n in (3, 3, 5, 1)]
    >>> [b.tolist() for b in batches(np.arange(4), bags, 6, by_cells=True)]
    [[0, 1], [2, 3]]
    >>> [b.tolist() for b in batches(np.arange(4), bags, 3, by_cells=False)]
    [[0, 1, 2], [3]]
    """
    if not by_cells:
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    steps, current, cells = [], [], 0
    for i in order:
        n = len(bags[i].cells)
        if current and cells + n > batch_size:
            steps.append(np.array(current))
            current, cells = [], 0
        current.append(i)
        cells += n
    if current:
        steps.append(np.array(current))
    return steps


def _train_epochs(model, cfg: ClassifyConfig, train: Sequence[Bag], round_index: int, bar, metrics) -> None:
    """A round's epochs: AdamW at ``cfg.lr``, with ``cfg.schedule`` and ``cfg.warmup_iters``
    over the round's steps when they are not constant (the descriptors preset's are)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    by_cells = isinstance(model, CropNet)
    plan = [
        batches(
            np.random.default_rng((cfg.seed, round_index, e)).permutation(len(train)),
            train,
            cfg.batch_size,
            by_cells=by_cells,
        )
        for e in range(cfg.epochs)
    ]
    scheduler = None
    if cfg.schedule != "constant" or cfg.warmup_iters:
        steps = sum(len(p) for p in plan)
        scheduler = build_scheduler(
            optimizer,
            schedule=cfg.schedule,
            max_iter=steps,
            warmup_iters=cfg.warmup_iters,
            warmup_factor=cfg.warmup_factor,
        )
    model.train()
    for epoch in range(cfg.epochs):
        total = 0.0
        for batch in plan[epoch]:
            loss = _batch_loss(model, [train[i] for i in batch], cfg)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {float(loss)} in round {round_index}, epoch {epoch}; lower lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += float(loss.detach()) * len(batch)
        if metrics is not None and ((epoch + 1) % cfg.log_period == 0 or epoch + 1 == cfg.epochs):
            metrics.log(round_index * cfg.epochs + epoch + 1, {"loss": total / len(train), "round": round_index})
        if bar is not None:
            bar.set_postfix(round=round_index, loss=f"{total / len(train):.4f}")
            bar.update()


def fit_image_head(cfg: ClassifyConfig, train: Sequence[Bag]) -> ImageHead | None:
    """The image head (:func:`hpaseg.weak.fit_image_head`) trained on ``train``'s image
    labels from their cells' feature rows (:func:`feature_bags`), ``cfg.image_epochs``
    epochs, bag mixing ``cfg.image_mix``, AdamW ``cfg.lr`` and ``cfg.weight_decay``; None
    when ``cfg.image_epochs`` is 0. Seeded by ``cfg.seed``: the same bags give the same weights.

    Returns
    -------
    ImageHead or None
        In eval mode.
    """
    if cfg.image_epochs == 0:
        return None
    if any(b.x.ndim != 2 for b in train):
        raise ValueError("fit_image_head takes bags of feature rows (N, D); give feature_bags(model, bags) for a CNN")
    return weak_fit_image_head(
        [b.x for b in train],
        [b.image_labels for b in train],
        epochs=cfg.image_epochs,
        mix=cfg.image_mix,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        net=IMAGE_HEAD,
    )


def image_head_probabilities(head: ImageHead | None, bags: Sequence[Bag]) -> list[np.ndarray | None]:
    """The image head's probabilities ``(19,)`` of each bag of feature rows (None for each without a head)."""
    return weak_image_head_probabilities(head, [b.x for b in bags])


@torch.no_grad()
def _per_bag(model: DescriptorNet | CropNet, bags: Sequence[Bag], forward) -> list[np.ndarray]:
    """``forward(model, inputs)`` of every cell, split back by bag: one pass for descriptors,
    passes of about :data:`_CNN_CHUNK` cells for a CNN."""
    model.eval()
    if not bags:
        return []
    chunk = _CNN_CHUNK if isinstance(model, CropNet) else None
    groups = batches(np.arange(len(bags)), bags, chunk, by_cells=True) if chunk else [np.arange(len(bags))]
    out = []
    with _threads(model), _autocast(model):
        for group in groups:
            part = [bags[i] for i in group]
            y = forward(model, _inputs(model, part)).float().cpu().numpy()
            out += np.split(y, np.cumsum([len(b.cells) for b in part])[:-1])
    return out


def bag_probabilities(model: DescriptorNet | CropNet, bags: Sequence[Bag]) -> list[np.ndarray]:
    """Per-cell sigmoid probabilities ``(N, 19)`` of each bag."""
    return [p.astype(np.float64) for p in _per_bag(model, bags, lambda m, x: torch.sigmoid(m(x)))]


def feature_bags(model: DescriptorNet | CropNet, bags: Sequence[Bag]) -> list[Bag]:
    """The bags as the image head sees them: as they are for descriptors; for a CNN, copies
    whose ``x`` are the model's pooled features ``(N, F)`` float32 (:meth:`CropNet.features`)."""
    if not isinstance(model, CropNet):
        return list(bags)
    features = _per_bag(model, bags, lambda m, x: m.features(x))
    return [dataclasses.replace(b, x=f.astype(np.float32)) for b, f in zip(bags, features)]


def refine_bags(model: DescriptorNet, bags: Sequence[Bag], keep_fraction: float) -> None:
    """Replace each bag's targets by those refined from ``model``'s probabilities
    (:func:`hpaseg.weak.refine_targets`)."""
    for bag, p in zip(bags, bag_probabilities(model, bags)):
        bag.targets = refine_targets(p, bag.image_labels, keep_fraction=keep_fraction)
        bag.negative_known = True


def refined_labels(
    bags: Sequence[Bag], probabilities: Sequence[np.ndarray], keep_fraction: float
) -> dict[str, dict[int, tuple[int, ...]]]:
    """``{ID: {cell: labels}}``: each bag's cells re-labelled from their probabilities
    (:func:`bag_probabilities`) within the image's labels."""
    out = {}
    for bag, p in zip(bags, probabilities):
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


def _evaluate(model: DescriptorNet | CropNet, head: ImageHead | None, val: Sequence[Bag]) -> dict:
    probabilities = bag_probabilities(model, val)
    scores = evaluate_scores(np.concatenate([b.targets for b in val]), np.concatenate(probabilities))
    image_true = targets_matrix([b.image_labels for b in val])
    heads = image_head_probabilities(head, feature_bags(model, val) if head is not None else val)
    image_score = np.stack([image_estimate(p, q, ScoreRule()) for p, q in zip(probabilities, heads)])
    scores["image_macro_ap"] = evaluate_scores(image_true, image_score)["macro_ap"]
    return scores


@dataclasses.dataclass
class _Point:
    """Where a run stands: its pass (0 = on the train split, 1 = the refit on train + val),
    the rounds done in it, the seconds spent, the last model, the pass's image head, and
    the validation scores (once pass 0 is scored)."""

    pass_index: int = 0
    rounds_done: int = 0
    seconds: float = 0.0
    model: DescriptorNet | CropNet | None = None
    head: ImageHead | None = None
    validation: dict | None = None


def _state(cfg: ClassifyConfig, point: _Point, thresholds=None, *, finished: bool = False) -> dict:
    """A checkpoint of the run at ``point``; the final one (``finished``) with the thresholds
    tuned for its model on data it did not train on, if any."""
    model, head = point.model, point.head
    cnn = isinstance(model, CropNet)
    return {
        "kind": CHECKPOINT_KIND,
        "finished": finished,
        "model": model.state_dict(),
        "image_model": None if head is None else head.state_dict(),
        "image_net": dict(IMAGE_HEAD),
        "pass": point.pass_index,
        "rounds_done": point.rounds_done,
        "train_seconds": point.seconds,
        "validation": point.validation,
        "backbone": cfg.backbone,
        "net_kind": CROP_NET if cnn else DESCRIPTORS,
        "level": "cell",
        "channels": "rgby",
        "input_size": input_size(cfg),
        "n_inputs": model.num_features if cnn else int(model.mean.numel()),
        "descriptor_names": None if cnn else descriptor_names(),
        "net": {"hidden": cfg.hidden, "depth": cfg.depth, "dropout": cfg.dropout},
        "mean": model.mean.flatten().tolist() if cnn else [],
        "std": model.std.flatten().tolist() if cnn else [],
        "thresholds": None if thresholds is None else [float(t) for t in thresholds],
        "classes": list(CLASS_NAMES),
        "config": dataclasses.asdict(cfg),
        "hpaseg_version": __version__,
    }


def image_head_of(state: dict) -> ImageHead | None:
    """The image head saved in a checkpoint of this trainer (:func:`_state`), in eval mode;
    None when the run has none (``image_epochs`` 0, another trainer, or an earlier hpaseg).
    Its inputs: the descriptors, or the pooled features of the run's CNN."""
    if state.get("image_model") is None:
        return None
    head = ImageHead(int(state["n_inputs"]), **state["image_net"])
    head.load_state_dict(state["image_model"])
    return head.eval()


def _resume_point(out: Path, cfg: ClassifyConfig, train: list[Bag]) -> _Point:
    """Where the run in ``out`` stopped (:class:`_Point`; a fresh one without a checkpoint)."""
    last = Checkpointer(out).last()
    if last is None:
        log.info("resume: no checkpoint in %s; starting from round 0", out)
        return _Point()
    state = Checkpointer.load(last)
    saved = state.get("config", {}) if isinstance(state, dict) else {}
    recorded = {**dataclasses.asdict(ClassifyConfig()), **_BEFORE_RECORDED, **saved}
    differ = [f"{k} {recorded[k]!r} (now {getattr(cfg, k)!r})" for k in _RESUME_KEYS if recorded[k] != getattr(cfg, k)]
    if state.get("kind") != CHECKPOINT_KIND or state.get("backbone") != cfg.backbone or differ:
        raise InputError(
            f"resume: {last} was trained with other settings ({', '.join(differ) or f'not a {cfg.backbone} run of this trainer'}); use another output folder or the same settings",
            param="resume",
        )
    model = _new_model(cfg, train, pretrained=False)
    model.load_state_dict(state["model"])
    point = _Point(
        int(state.get("pass", 0)),
        int(state["rounds_done"]),
        float(state["train_seconds"]),
        model.eval(),
        image_head_of(state),
        state.get("validation"),
    )
    log.info("resuming from %s (pass %d, %d round(s) done)", last, point.pass_index, point.rounds_done)
    return point


def _run_pass(
    cfg: ClassifyConfig, out: Path, bags: list[Bag], point: _Point, bar: tqdm, metrics: MetricsLogger
) -> _Point:
    """The rounds and the image head of one pass, resumed from ``point``; saves a checkpoint after each."""
    n_rounds = rounds_of(cfg)
    prefix = "refit_" if point.pass_index else ""
    model = point.model
    for round_index in range(point.rounds_done, n_rounds):
        if round_index > 0:
            refine_bags(model, bags, cfg.keep_fraction)
        started = time.perf_counter()
        model = fit_round(cfg, bags, point.pass_index * n_rounds + round_index, bar=bar, metrics=metrics)
        point = dataclasses.replace(
            point, rounds_done=round_index + 1, seconds=point.seconds + time.perf_counter() - started, model=model
        )
        Checkpointer(out).save(f"{prefix}round{round_index}", _state(cfg, point))
    if point.model is None:
        raise InputError(f"resume: {out} holds no finished round", param="resume")
    if point.head is None and cfg.image_epochs > 0:
        started = time.perf_counter()
        head = fit_image_head(cfg, feature_bags(model, bags))
        point = dataclasses.replace(point, head=head, seconds=point.seconds + time.perf_counter() - started)
        Checkpointer(out).save(f"{prefix}image_head", _state(cfg, point))
    return point


def train_cell_classifier(cfg: ClassifyConfig, *, resume: bool = False, progress: bool = True) -> dict:
    """Train (or resume) a cell-classifier run of this trainer and score it on the validation split.

    Pass 0 trains the rounds and the image head on the train split and scores them on
    the validation split (``eval.json``); with ``cfg.refit`` (default) pass 1 trains them
    again, from scratch with the same settings, on train + val: the final model has seen
    every labelled image.

    Parameters
    ----------
    cfg : ClassifyConfig
        ``level="cell"``; ``backbone="descriptors"`` (``batch_size`` counts images) or a
        timm backbone with supervision ``refined`` or ``mil`` (``batch_size`` counts cells,
        ``crop_size``, ``pretrained``, ``device`` and ``amp`` apply).
    resume : bool
        Skip the rounds already finished in ``cfg.out``.
    progress : bool

    Returns
    -------
    dict
        The contents of ``RUN/eval.json``.
    """
    check_config(cfg)
    if not trains(cfg):
        raise InputError(
            f"backbone {cfg.backbone!r} with supervision {cfg.supervision!r} at level {cfg.level!r}: this trainer "
            "trains cell classifiers on descriptors, or CNNs with supervision refined or mil",
            param="backbone",
        )
    train, val = _prepare(cfg, progress)
    everything = copy_bags(train + val)  # pass 1's bags, with the dataset targets pass 0 refines in its own
    out = Path(cfg.out)
    point = _resume_point(out, cfg, train) if resume else _Point()
    out.mkdir(parents=True, exist_ok=True)
    save_config(out / "config.yaml", cfg)
    n_rounds, n_passes = rounds_of(cfg), 2 if cfg.refit else 1
    done_epochs = (point.pass_index * n_rounds + point.rounds_done) * cfg.epochs
    # Drops what a killed run logged after its last round, its final validation included.
    metrics = MetricsLogger(out, start=done_epochs, redo=_VAL_KEYS)
    log.info(
        "training %s (inputs %s per cell, %s supervision, %d round(s)) on %d cells of %d images, validating on %d images%s",
        cfg.backbone, "x".join(str(n) for n in train[0].x.shape[1:]), cfg.supervision, n_rounds, sum(len(b.cells) for b in train), len(train), len(val),
        "; then again on train + val" if cfg.refit else "",
    )  # fmt: skip
    bar = tqdm(
        total=n_passes * n_rounds * cfg.epochs, initial=done_epochs, desc="train", unit="ep", disable=not progress
    )
    if point.pass_index == 0:
        point = _run_pass(cfg, out, train, point, bar, metrics)
        point.validation = _evaluate(point.model, point.head, val)
        if cfg.refit:
            point = _Point(1, 0, point.seconds, None, None, point.validation)
    if point.pass_index == 1:
        point = _run_pass(cfg, out, everything, point, bar, metrics)
    bar.close()
    # The validation scores and thresholds are pass 0's model's; a refit's model trained on
    # the validation images, so thresholds tuned there are not saved with it.
    scores = {**point.validation, "thresholds_of": VALIDATED_MODEL + ("" if cfg.refit else ", the saved model")}
    point.validation = scores
    probabilities = bag_probabilities(point.model, everything)  # one pass for both files
    io.write_cell_labels_csv(out / REFINED_LABELS, refined_labels(everything, probabilities, cfg.keep_fraction))
    io.write_cell_probabilities_csv(
        out / CELL_PROBABILITIES,
        {b.image_id: {int(c): row for c, row in zip(b.cells, p)} for b, p in zip(everything, probabilities)},
    )
    final_thresholds = None if cfg.refit else scores["thresholds"]
    Checkpointer(out).save(FINAL, _state(cfg, point, final_thresholds, finished=True), last=False)
    metrics.log(
        n_passes * n_rounds * cfg.epochs,
        dict(zip(_VAL_KEYS, (scores["macro_ap"] or 0.0, scores["image_macro_ap"] or 0.0))),
    )
    metrics.close()
    absent = [k for k in range(NUM_CLASSES) if not any(k in b.image_labels for b in train)]
    result = {
        "level": "cell",
        "backbone": cfg.backbone,
        "supervision": cfg.supervision,
        "rounds": n_rounds,
        "input_size": input_size(cfg),
        "epochs": cfg.epochs,
        "n_train": sum(len(b.cells) for b in train),
        "n_val": sum(len(b.cells) for b in val),
        "n_train_images": len(train),
        "n_val_images": len(val),
        "final_model_trained_on": "train+val" if cfg.refit else "train",
        "train_seconds": round(point.seconds, 3),
        "absent_from_train": [{"id": k, "name": CLASS_NAMES[k]} for k in absent],
        **scores,
        "config": dataclasses.asdict(cfg),
    }
    io.write_json(out / EVAL_FILE, result, indent=2)
    return result
