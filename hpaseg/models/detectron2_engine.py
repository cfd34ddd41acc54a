"""The detectron2 engine: ResNet101-FPN and ResNeXt101-32x8d-FPN Mask R-CNN on RGBY cells.

detectron2 is optional (not on PyPI): it is imported only inside these functions, and
everything here raises a clear :class:`~hpaseg.errors.InputError` when it is missing.

* Configs: ``detectron_configs/Base-HPA-MaskRCNN.yaml`` and short ``_BASE_`` children;
  hpaseg's own keys live under ``HPA`` and are added in one place, :func:`add_hpa_config`.
* Data: :func:`register_hpa_datasets` (explicit, no import side effect) registers
  ``hpa_train``/``hpa_val`` from the COCO files of ``hpaseg propagate``;
  :class:`HPADatasetMapper` reads the four-channel image cache of :mod:`hpaseg.dataset`.
* Four channels: ``MODEL.PIXEL_MEAN``/``PIXEL_STD`` have four values, so detectron2
  builds a four-channel stem; :class:`RGBYCheckpointer` adapts RGB (or BGR) pretrained
  stems to RGBY when loading.
* Evaluation: :class:`HPAEvaluator` computes the competition mAP on the validation split.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..classes import CLASS_NAMES, NUM_CLASSES
from ..errors import InputError

__all__ = [
    "require_detectron2",
    "add_hpa_config",
    "load_config",
    "register_hpa_datasets",
    "HPADatasetMapper",
    "HPAEvaluator",
    "RGBYCheckpointer",
    "train_main",
    "predict",
]

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "detectron_configs"
_STEM_KEY = "backbone.bottom_up.stem.conv1.weight"


def require_detectron2() -> None:
    """Raise a one-line InputError when detectron2 cannot be imported."""
    try:
        import detectron2  # noqa: F401
    except ImportError as exc:
        raise InputError(
            "--engine detectron2: detectron2 is not installed; install it from its official source "
            "(pip install 'git+https://github.com/facebookresearch/detectron2.git', see README) or use --engine torchvision"
        ) from exc


def add_hpa_config(cfg) -> None:
    """Add hpaseg's keys (``cfg.HPA``) to a detectron2 config: the one place they are defined."""
    from detectron2.config import CfgNode as CN

    cfg.HPA = CN()
    cfg.HPA.DATASET_DIR = ""  # folder with train.json/val.json from hpaseg propagate
    cfg.HPA.DATA_DIR = ""  # folder of the training images
    cfg.HPA.IMAGE_SIZE = 1024  # working size (longer side, px); anchors scale with it
    cfg.HPA.EVAL_MAX_IMAGES = 50  # validation images scored by the competition metric
    cfg.HPA.PRETRAINED_FORMAT = "BGR"  # channel order of MODEL.WEIGHTS' stem: BGR (MSRA) or RGB (FAIR, torchvision)
    cfg.HPA.AUGMENT = True  # random flips of training images


def load_config(config_file: str | Path, opts: list[str] | None = None, **overrides: Any):
    """Read a detectron2 YAML (with its ``_BASE_`` chain), then ``--opts KEY VALUE`` pairs.

    Unknown keys raise an InputError naming the key and the file.
    """
    require_detectron2()
    from detectron2.config import get_cfg

    from .maskrcnn import anchor_sizes

    path = Path(config_file)
    if not path.is_file():
        raise InputError(f"--config {path}: no such file; choose one of {', '.join(sorted(p.name for p in CONFIG_DIR.glob('*.yaml')))} in {CONFIG_DIR}")
    cfg = get_cfg()
    add_hpa_config(cfg)
    try:
        cfg.merge_from_file(str(path))
    except KeyError as exc:
        raise InputError(f"--config {path}: unknown key {exc.args[0] if exc.args else exc}; see detectron2's config reference and hpaseg's HPA.* keys") from None
    except Exception as exc:  # yaml errors, bad _BASE_
        raise InputError(f"--config {path}: cannot read ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    try:
        cfg.merge_from_list(list(opts or []))
    except (KeyError, AssertionError, ValueError) as exc:
        raise InputError(f"--opts {' '.join(opts or [])}: {str(exc).splitlines()[0]}") from None
    for key, value in overrides.items():
        cfg.merge_from_list([key, value])
    if len(cfg.MODEL.PIXEL_MEAN) != 4 or len(cfg.MODEL.PIXEL_STD) != 4:
        raise InputError(f"--config {path}: MODEL.PIXEL_MEAN and PIXEL_STD need four values (RGBY), got {len(cfg.MODEL.PIXEL_MEAN)} and {len(cfg.MODEL.PIXEL_STD)}")
    sizes = anchor_sizes(cfg.HPA.IMAGE_SIZE, len(cfg.MODEL.ROI_HEADS.IN_FEATURES) + 1)
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [list(s) for s in sizes]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = NUM_CLASSES
    cfg.INPUT.MIN_SIZE_TRAIN = (cfg.HPA.IMAGE_SIZE,)
    cfg.INPUT.MAX_SIZE_TRAIN = cfg.HPA.IMAGE_SIZE
    cfg.INPUT.MIN_SIZE_TEST = cfg.HPA.IMAGE_SIZE
    cfg.INPUT.MAX_SIZE_TEST = cfg.HPA.IMAGE_SIZE
    return cfg


def _records_to_dicts(records, cache_dir: Path, image_size: int) -> list[dict]:
    from ..dataset import working_shape

    out = []
    for rec in records:
        h, w = working_shape(rec.height, rec.width, image_size)
        # height/width = working size: evaluation compares at that resolution.
        out.append({"file_name": rec.image_id, "image_id": rec.image_id, "height": h, "width": w, "cells": rec.cells, "cache_dir": str(cache_dir)})
    return out


def register_hpa_datasets(cfg, *, build_cache: bool = True, progress: bool = True) -> dict[str, int]:
    """Register ``hpa_train`` and ``hpa_val`` (replacing earlier registrations) and fill the image cache.

    Returns the number of images of each.
    """
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from .. import dataset as ds

    dataset_dir = Path(cfg.HPA.DATASET_DIR)
    train = [r for r in ds.load_coco_split(dataset_dir / "train.json") if r.cells]
    val = [r for r in ds.load_coco_split(dataset_dir / "val.json") if r.cells] if (dataset_dir / "val.json").is_file() else []
    if not train:
        raise InputError(f"HPA.DATASET_DIR {dataset_dir}: train.json has no image with cells; nothing to train on")
    cache_dir = dataset_dir / f"cache_{cfg.HPA.IMAGE_SIZE}px"
    if build_cache:
        ds.build_cache(train + val, cfg.HPA.DATA_DIR, cache_dir, cfg.HPA.IMAGE_SIZE, progress=progress)
    for name, records in (("hpa_train", train), ("hpa_val", val)):
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        dicts = _records_to_dicts(records, cache_dir, cfg.HPA.IMAGE_SIZE)
        DatasetCatalog.register(name, lambda dicts=dicts: dicts)
        MetadataCatalog.get(name).set(thing_classes=list(CLASS_NAMES), evaluator_type="hpa")
    return {"hpa_train": len(train), "hpa_val": len(val)}


class HPADatasetMapper:
    """Reads a cached RGBY image and its cell label image, applies flips when training,
    and returns detectron2's model input: ``image`` (4, H, W) float in 0-255 and, when
    training, ``instances`` with one instance per (cell, label)."""

    def __init__(self, cfg, is_train: bool = True) -> None:
        self.is_train = is_train
        self.augment = is_train and cfg.HPA.AUGMENT

    def __call__(self, record: dict) -> dict:
        from detectron2.data import transforms as T
        from detectron2.structures import BitMasks, Boxes, Instances

        cache = Path(record["cache_dir"])
        image = np.load(cache / f"{record['image_id']}.image.npy")
        cells = np.load(cache / f"{record['image_id']}.cells.npy")
        if self.augment:
            aug = T.AugmentationList([T.RandomFlip(horizontal=True, vertical=False), T.RandomFlip(horizontal=False, vertical=True)])
            data = T.AugInput(image, sem_seg=cells)
            aug(data)
            image, cells = data.image, data.sem_seg
        out = {
            "image": torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))).float(),
            "image_id": record["image_id"],
            "height": record["height"],
            "width": record["width"],
        }
        if self.is_train:
            masks, classes = [], []
            for cell, labels in record["cells"].items():
                mask = cells == cell
                if mask.any():
                    for k in labels:
                        masks.append(mask)
                        classes.append(k)
            h, w = cells.shape
            instances = Instances((h, w))
            bit = BitMasks(torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, h, w), dtype=torch.bool))
            instances.gt_masks = bit
            instances.gt_boxes = bit.get_bounding_boxes() if masks else Boxes(torch.zeros((0, 4)))
            instances.gt_classes = torch.tensor(classes, dtype=torch.int64)
            out["instances"] = instances
        return out


def _instances_to_cells(instances, image_shape, out_shape, config):
    from ..predict import cell_labels, compose_label_image, group_detections

    inst = instances.to("cpu")
    masks = inst.pred_masks.float() if inst.has("pred_masks") else torch.zeros((0,) + tuple(image_shape))
    cells = group_detections(inst.pred_boxes.tensor, inst.pred_classes + 1, inst.scores, masks, config)
    label_image, kept = compose_label_image(cells, tuple(masks.shape[-2:]) if len(masks) else tuple(image_shape), tuple(out_shape), config)
    return label_image, {k: cell_labels(cells[i].scores, config) for k, i in enumerate(kept, start=1)}


class HPAEvaluator:
    """Competition mAP on ``hpa_val`` against the propagated (weak) cell labels, at the working size.

    Follows detectron2's ``DatasetEvaluator`` protocol (reset / process / evaluate).
    """

    def __init__(self, dataset_name: str, max_images: int = 50) -> None:
        from detectron2.data import DatasetCatalog

        self.records = {r["image_id"]: r for r in DatasetCatalog.get(dataset_name)}
        self.max_images = max_images
        self.reset()

    def reset(self) -> None:
        self._truth, self._preds = [], []

    def process(self, inputs, outputs) -> None:
        from ..predict import PostprocessConfig, submission_row
        from ..submission import Prediction, SubmissionRow, encode_label_image

        for inp, out in zip(inputs, outputs):
            if len(self._truth) >= self.max_images:
                return
            rec = self.records[inp["image_id"]]
            cells = np.load(Path(rec["cache_dir"]) / f"{rec['image_id']}.cells.npy")
            encoded = encode_label_image(cells, list(rec["cells"]))
            self._truth.append(SubmissionRow(rec["image_id"], cells.shape[1], cells.shape[0], [Prediction(k, 1.0, encoded[c]) for c, ks in rec["cells"].items() if (cells == c).any() for k in ks]))
            label_image, cell_scores = _instances_to_cells(out["instances"], cells.shape, cells.shape, PostprocessConfig())
            self._preds.append(submission_row(rec["image_id"], label_image, cell_scores))

    def evaluate(self) -> dict:
        from detectron2.utils import comm

        from ..metrics import competition_map

        truth = sum(comm.gather(self._truth, dst=0), [])
        preds = sum(comm.gather(self._preds, dst=0), [])
        if not comm.is_main_process():
            return {}
        value = float(competition_map(truth, preds).mAP) if truth else float("nan")
        return {"hpa": {"mAP": value, "images": len(truth)}}


def RGBYCheckpointer(model, save_dir: str = "", *, pretrained_format: str = "BGR", **kwargs):
    """A ``DetectionCheckpointer`` that adapts a 3-channel stem to the model's 4 channels on load.

    ``pretrained_format`` is the channel order of the checkpoint's stem (``BGR`` for the
    MSRA ImageNet models of detectron2's zoo, ``RGB`` for FAIR's and torchvision's).
    """
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.checkpoint.c2_model_loading import align_and_update_state_dicts

    from .channels import rgb_to_rgby_weight

    class _RGBYCheckpointer(DetectionCheckpointer):
        def _load_model(self, checkpoint):
            if checkpoint.get("matching_heuristics", False):
                self._convert_ndarray_to_tensor(checkpoint["model"])
                checkpoint["model"] = align_and_update_state_dicts(
                    self.model.state_dict(), checkpoint["model"], c2_conversion=checkpoint.get("__author__", None) == "Caffe2"
                )
                checkpoint["matching_heuristics"] = False
            weights = checkpoint["model"]
            own = self.model.state_dict()
            if _STEM_KEY in weights and _STEM_KEY in own:
                stem = torch.as_tensor(np.asarray(weights[_STEM_KEY])) if not isinstance(weights[_STEM_KEY], torch.Tensor) else weights[_STEM_KEY]
                if stem.shape[1] == 3 and own[_STEM_KEY].shape[1] == 4:
                    if pretrained_format.upper() == "BGR":
                        stem = stem[:, [2, 1, 0]]
                    weights[_STEM_KEY] = rgb_to_rgby_weight(stem)
                    self.logger.info("adapted the %s stem of the checkpoint to RGBY", pretrained_format)
            return super()._load_model(checkpoint)

    return _RGBYCheckpointer(model, save_dir, **kwargs)


def _trainer_class():
    from detectron2.data import build_detection_test_loader, build_detection_train_loader
    from detectron2.engine import DefaultTrainer

    class HPATrainer(DefaultTrainer):
        """detectron2's DefaultTrainer with the HPA mapper, evaluator and RGBY checkpointer."""

        def __init__(self, cfg) -> None:
            super().__init__(cfg)
            model = self.model
            self.checkpointer = RGBYCheckpointer(model, cfg.OUTPUT_DIR, pretrained_format=cfg.HPA.PRETRAINED_FORMAT, trainer=self._trainer)

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


def train_main(args) -> int:
    """``hpaseg train --engine detectron2``: set up, register, train (one process per GPU,
    started by torchrun or srun; :mod:`hpaseg.dist` joins them)."""
    require_detectron2()
    from detectron2.utils import comm
    from detectron2.utils.logger import setup_logger

    from .. import dist

    if not args.config:
        raise InputError(f"--engine detectron2 needs --config, e.g. {CONFIG_DIR / 'mask_rcnn_R_101_FPN_hpa.yaml'}")
    device = args.device
    overrides = {"HPA.DATASET_DIR": str(args.dataset), "HPA.DATA_DIR": str(args.data), "OUTPUT_DIR": str(args.out), "MODEL.DEVICE": device, "SEED": args.seed}
    cfg = load_config(args.config, args.opts, **overrides)
    if args.pretrained:
        cfg.MODEL.WEIGHTS = args.pretrained
    if args.workers is not None:
        cfg.DATALOADER.NUM_WORKERS = args.workers
    if args.no_amp or device == "cpu":
        cfg.SOLVER.AMP.ENABLED = False
    info, _ = dist.init(device)
    if info.distributed:
        comm.create_local_process_group(int(__import__("os").environ.get("LOCAL_WORLD_SIZE", __import__("os").environ.get("SLURM_NTASKS_PER_NODE", info.world_size))))
    Path(cfg.OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=info.rank, name="detectron2")
    if comm.is_main_process():
        register_hpa_datasets(cfg, build_cache=True, progress=not args.quiet)
    comm.synchronize()
    register_hpa_datasets(cfg, build_cache=False)
    cfg.freeze()
    if comm.is_main_process():
        with open(Path(cfg.OUTPUT_DIR) / "config.yaml", "w") as fh:
            fh.write(cfg.dump())
    trainer = _trainer_class()(cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()
    if comm.is_main_process():
        print(f"wrote {Path(cfg.OUTPUT_DIR) / 'model_final.pth'}")
    dist.cleanup()
    return 0


def predict(args, config, ids: list[str]):
    """``hpaseg predict --engine detectron2``: returns submission rows (and saved masks)."""
    require_detectron2()
    from detectron2.modeling import build_model
    from tqdm import tqdm

    from .. import io
    from ..dataset import resize_image
    from ..predict import submission_row

    weights = Path(args.weights)
    if not weights.is_file():
        raise InputError(f"--weights {weights}: no such file; give RUN/model_final.pth from 'hpaseg train --engine detectron2'")
    config_file = Path(args.config) if args.config else weights.parent / "config.yaml"
    cfg = load_config(config_file, [], **{"MODEL.DEVICE": args.device, "MODEL.WEIGHTS": str(weights)})
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = config.min_score
    model = build_model(cfg).eval()
    state = torch.load(weights, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or "model" not in state:
        raise InputError(f"--weights {weights}: not a detectron2 checkpoint (no 'model' key)")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise InputError(f"--weights {weights}: weights do not fit the model of {config_file} ({str(exc).splitlines()[0]})") from exc
    rows, saved = [], []
    with torch.no_grad():
        for image_id, image in tqdm(io.iter_rgby(args.data, ids, workers=args.workers), total=len(ids), desc="predict", unit="img", disable=args.quiet):
            small = resize_image(image, cfg.HPA.IMAGE_SIZE)
            inputs = [{"image": torch.as_tensor(np.ascontiguousarray(small.transpose(2, 0, 1))).float(), "height": small.shape[0], "width": small.shape[1]}]
            out = model(inputs)[0]
            label_image, cell_scores = _instances_to_cells(out["instances"], small.shape[:2], image.shape[:2], config)
            rows.append(submission_row(image_id, label_image, cell_scores))
            if args.save_masks:
                saved.append((image_id, label_image, cell_scores))
    return rows, saved
