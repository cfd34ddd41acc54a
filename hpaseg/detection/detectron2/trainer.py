"""Training with detectron2's ``DefaultTrainer``: the HPA mapper, evaluator and RGBY
checkpointer, one process per GPU (started by torchrun or srun; :mod:`hpaseg.runtime.dist`
joins them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...errors import InputError
from ...io import atomic_write
from ...runtime import dist
from ..data import teacher_file
from ..heads import distill_targets, fit_image_head_on_cells, fit_pixel_head, pixel_crops
from .checkpoint import RGBYCheckpointer, check_checkpoint
from .config import load_config, require_detectron2
from .data import HPADatasetMapper, register_hpa_datasets
from .evaluator import HPAEvaluator

__all__ = ["Detectron2TrainConfig", "train_detectron2"]


@dataclass(frozen=True)
class Detectron2TrainConfig:
    """The settings ``hpaseg train --engine detectron2`` passes on; the rest is in the YAML.

    Attributes
    ----------
    config : str
        A YAML of ``detectron_configs/`` (a path or a shipped name).
    dataset, data, out : str
        COCO folder of ``hpaseg propagate``, image folder, run folder.
    device : str
    opts : list of str
        ``KEY VALUE`` overrides of the YAML.
    pretrained : str, optional
        ``MODEL.WEIGHTS`` instead of the YAML's.
    workers : int, optional
        ``DATALOADER.NUM_WORKERS`` instead of the YAML's.
    amp : bool
        Mixed precision on CUDA (off on the CPU regardless).
    seed : int
    teacher : str, optional
        ``HPA.TEACHER``: a cell classifier run (its ``cell_probabilities.csv``) or such a CSV,
        whose probabilities the label head learns beside the hard labels.
    distill_weight : float, optional
        ``HPA.DISTILL_WEIGHT`` instead of the YAML's.
    """

    config: str
    dataset: str
    data: str
    out: str
    device: str = "cuda"
    opts: list[str] = field(default_factory=list)
    pretrained: str | None = None
    workers: int | None = None
    amp: bool = True
    seed: int = 0
    teacher: str | None = None
    distill_weight: float | None = None


def fit_pixel_head_on_cells(cfg, model: torch.nn.Module) -> None:
    """With ``HPA.LABEL_EPOCHS`` and a pixel head: train it alone on the crops of every
    cell of ``hpa_train`` (the mapper's instances, without augmentation, normalised as the
    model normalises its input; targets :func:`~hpaseg.detection.heads.distill_targets`),
    then freeze it; with an image head (``HPA.IMAGE_EPOCHS``), fit it next on the frozen
    pixel head's features of each image's cells and the image's labels: the torchvision
    engine's ``_pixel_head_first``."""
    from detectron2.data import DatasetCatalog

    heads = model.roi_heads
    if not cfg.HPA.LABEL_EPOCHS or heads.pixel_head is None:
        return
    mapper = HPADatasetMapper(cfg, True)
    mapper.augment = False
    mean = torch.tensor(cfg.MODEL.PIXEL_MEAN).view(-1, 1, 1)
    std = torch.tensor(cfg.MODEL.PIXEL_STD).view(-1, 1, 1)
    crops, targets, multilabels = [], [], []
    for record in DatasetCatalog.get("hpa_train"):
        item = mapper(record)
        inst = item["instances"]
        if not len(inst):
            continue
        crops.append(pixel_crops(((item["image"] - mean) / std)[None], [inst.gt_boxes.tensor]))
        soft = inst.gt_label_probs if inst.has("gt_label_probs") else None
        targets.append(distill_targets(inst.gt_multilabels, soft, cfg.HPA.DISTILL_WEIGHT))
        multilabels.append(inst.gt_multilabels)
    if crops:
        device = next(heads.pixel_head.parameters()).device
        fit_pixel_head(
            heads.pixel_head, torch.cat(crops).to(device), torch.cat(targets).to(device),
            epochs=cfg.HPA.LABEL_EPOCHS, seed=cfg.SEED,
        )  # fmt: skip
    heads.freeze_pixel_head()
    if crops and heads.image_head is not None:
        seed = cfg.SEED if cfg.SEED >= 0 else 0  # detectron2's SEED -1 ("random"): numpy takes no negative seed
        heads.set_image_head(
            fit_image_head_on_cells(heads.pixel_head, crops, multilabels, epochs=cfg.HPA.IMAGE_EPOCHS, seed=seed)
        )


def _trainer_class():
    from detectron2.data import (
        build_detection_test_loader,
        build_detection_train_loader,
    )
    from detectron2.engine import DefaultTrainer

    class HPATrainer(DefaultTrainer):
        """detectron2's DefaultTrainer with the HPA mapper, evaluator and RGBY checkpointer."""

        def __init__(self, cfg) -> None:
            super().__init__(cfg)
            self.checkpointer = RGBYCheckpointer(
                self.model, cfg.OUTPUT_DIR, pretrained_format=cfg.HPA.PRETRAINED_FORMAT, trainer=self._trainer
            )

        @classmethod
        def build_model(cls, cfg):
            model = super().build_model(cfg)
            fit_pixel_head_on_cells(cfg, model)  # before the optimizer and DDP see its parameters
            return model

        @classmethod
        def build_train_loader(cls, cfg):
            return build_detection_train_loader(cfg, mapper=HPADatasetMapper(cfg, True))

        @classmethod
        def build_test_loader(cls, cfg, dataset_name):
            return build_detection_test_loader(cfg, dataset_name, mapper=HPADatasetMapper(cfg, False))

        @classmethod
        def build_evaluator(cls, cfg, dataset_name, output_folder=None):
            return HPAEvaluator(dataset_name, cfg.HPA.EVAL_MAX_IMAGES)

    return HPATrainer


def train_detectron2(settings: Detectron2TrainConfig, *, resume: bool = False, progress: bool = True) -> Path:
    """Set up, register the datasets, train; returns the path of ``model_final.pth``."""
    require_detectron2()
    from detectron2.utils import comm
    from detectron2.utils.logger import setup_logger

    for name in ("dataset", "data"):
        if not Path(getattr(settings, name)).is_dir():
            raise InputError(f"{name} {getattr(settings, name)}: no such folder", param=name)
    overrides = {
        "HPA.DATASET_DIR": settings.dataset,
        "HPA.DATA_DIR": settings.data,
        "OUTPUT_DIR": settings.out,
        "MODEL.DEVICE": settings.device,
        "SEED": settings.seed,
    }
    cfg = load_config(settings.config, settings.opts, **overrides)
    if settings.pretrained:
        cfg.MODEL.WEIGHTS = settings.pretrained
    if settings.workers is not None:
        cfg.DATALOADER.NUM_WORKERS = settings.workers
    if settings.teacher is not None:
        teacher_file(settings.teacher)  # refuse a run without probabilities before anything is written
        cfg.HPA.TEACHER = str(settings.teacher)
    if settings.distill_weight is not None:
        cfg.HPA.DISTILL_WEIGHT = float(settings.distill_weight)
    if not 0.0 <= cfg.HPA.DISTILL_WEIGHT <= 1.0:
        raise InputError(
            f"distill_weight {cfg.HPA.DISTILL_WEIGHT}: expected a number in [0, 1]", param="distill_weight"
        )
    if not settings.amp or settings.device == "cpu":
        cfg.SOLVER.AMP.ENABLED = False
    info, _ = dist.init(settings.device)
    if info.distributed:
        comm.create_local_process_group(
            int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("SLURM_NTASKS_PER_NODE", info.world_size)))
        )
    Path(cfg.OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=info.rank, name="detectron2")
    if comm.is_main_process():
        register_hpa_datasets(cfg, fill_cache=True, progress=progress)
    comm.synchronize()
    register_hpa_datasets(cfg, fill_cache=False)
    cfg.freeze()
    if comm.is_main_process():
        with atomic_write(Path(cfg.OUTPUT_DIR) / "config.yaml") as fh:
            fh.write(cfg.dump())
    trainer = _trainer_class()(cfg)
    if resume and trainer.checkpointer.has_checkpoint():
        last = trainer.checkpointer.get_checkpoint_file()
        check_checkpoint(torch.load(last, map_location="cpu", weights_only=False), last, param="resume")
    trainer.resume_or_load(resume=resume)
    trainer.train()
    dist.cleanup()
    return Path(cfg.OUTPUT_DIR) / "model_final.pth"
