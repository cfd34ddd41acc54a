"""``python -m hpaseg.bench train``: Mask R-CNN training and inference throughput.

Every backbone of each engine is timed on the same synthetic RGBY batch (same image
size, batch size and cells), randomly initialised: training images/s over ``--iters``
SGD steps after one warm-up step, and inference images/s over ``--iters`` forward
passes in eval mode with the score threshold at 0 and ``DETECTIONS_TIMED`` detections
per image for every model (random weights would otherwise return arbitrary numbers of
detections, and the mask head's cost with them). The last line gives the torchvision/detectron2 ratio of training
throughput for ResNet101-FPN and ResNeXt101-FPN (detectron2 rows are skipped, and the
ratio is ``nan``, when detectron2 is not installed).

Both engines run at equal settings, printed (read from the built models) before the
figures: the same RPN proposals (per level before NMS and per image after it, training
and inference), RoIs per image, image size and batch, and the same BatchNorm handling
(``--backbone-mode``): ``frozen`` (default, what a run from ImageNet weights does on both
engines: FrozenBatchNorm and the stem and first stage not trained, detectron2's
``FrozenBN`` with ``FREEZE_AT: 2``) or ``trainable`` (BatchNorm with batch statistics,
every layer trained). ResNet and ResNeXt rows of the two engines are timed in pairs,
torchvision then detectron2, ``--rounds`` times; the ratios are of the medians.

Example (GPU, as recorded in benchmarks/RESULTS.md)::

    python -m hpaseg.bench train --device cuda --amp --image-size 1024 --batch-size 4 --iters 10
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torchvision.models.resnet import Bottleneck
from torchvision.ops.misc import FrozenBatchNorm2d

from ..cli.base import ArgumentParser, add_quiet, cli_entry
from ..detection import build_maskrcnn, target_from_cells
from ..detection.detectron2 import load_config
from ..errors import InputError
from ..io import check_output_path, write_json
from ..synth import image_rng, synth_image
from ..transforms import to_tensor
from .common import sync

__all__ = ["build_parser", "bench_torchvision", "bench_detectron2", "synth_batch", "main"]

TORCHVISION_BACKBONES = ("densenet121", "densenet121_c5", "resnet101_fpn", "resnext101_fpn")
#: Detections per image at inference, the same for both engines: with random weights and no
#: score threshold every model returns exactly this many, so the mask head's work is equal.
DETECTIONS_TIMED = 100
DETECTRON2_CONFIGS = {
    "resnet101_fpn": "mask_rcnn_R_101_FPN_hpa.yaml",
    "resnext101_fpn": "mask_rcnn_X_101_32x8d_FPN_hpa.yaml",
}


def synth_batch(size: int, n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, dict[int, tuple[int, ...]]]]:
    out = []
    for i in range(n):
        s = synth_image(image_rng(seed, "test", i), size)
        out.append((s.image, s.cell_mask, s.cell_labels))
    return out


def _time_steps(step, iters: int, device: torch.device) -> float:
    step()  # warm-up (cuDNN autotuning, allocator)
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    sync(device)
    return time.perf_counter() - start


def _measure(
    model: torch.nn.Module,
    losses: Callable[[], dict],
    detect: Callable[[], list[int]],
    n_images: int,
    *,
    device: torch.device,
    amp: bool,
    iters: int,
) -> tuple[float, float, float]:
    """Time ``iters`` SGD steps on ``losses()`` and ``iters`` calls of ``detect()`` (which
    returns the detection count of each image): (train images/s, inference images/s,
    mean detections per image)."""
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.0, momentum=0.9
    )  # lr 0: the same computation every timed step
    scaler = torch.amp.GradScaler(device.type, enabled=amp)

    def train_step() -> None:
        model.train()
        with torch.autocast(device.type, enabled=amp):
            loss = sum(losses().values())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    detections: list[int] = []

    @torch.no_grad()
    def infer_step() -> None:
        model.eval()
        with torch.autocast(device.type, enabled=amp):
            detections.extend(detect())

    train_ips = n_images * iters / _time_steps(train_step, iters, device)
    infer_ips = n_images * iters / _time_steps(infer_step, iters, device)
    return train_ips, infer_ips, float(np.mean(detections))


def _count(model: torch.nn.Module, frozen_types: tuple[type, ...], bn_types: tuple[type, ...]) -> dict[str, int]:
    """Norm layers by kind and parameters by trainability, in a model's backbone."""
    modules = list(model.modules())
    return {
        "frozen_bn_layers": sum(isinstance(m, frozen_types) for m in modules),
        "trainable_bn_layers": sum(isinstance(m, bn_types) for m in modules),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "frozen_params": sum(p.numel() for p in model.parameters() if not p.requires_grad),
    }


def torchvision_settings(model: torch.nn.Module) -> dict:
    """The settings that decide a torchvision Mask R-CNN's training cost, read from the model."""
    return {
        "rpn_pre_nms_topk_train": model.rpn._pre_nms_top_n["training"],
        "rpn_pre_nms_topk_test": model.rpn._pre_nms_top_n["testing"],
        "rpn_post_nms_topk_train": model.rpn._post_nms_top_n["training"],
        "rpn_post_nms_topk_test": model.rpn._post_nms_top_n["testing"],
        "roi_batch_per_image": model.roi_heads.fg_bg_sampler.batch_size_per_image,
        **_count(model.backbone, (FrozenBatchNorm2d,), (torch.nn.BatchNorm2d,)),
    }


def _zero_residual_scales(blocks: list[torch.nn.Module], norm_of: Callable[[torch.nn.Module], torch.nn.Module]) -> None:
    """Start every residual block as the identity (zero scale on its last norm).

    Randomly initialised frozen-BN ResNets blow their activations up (no statistics to
    normalise them), and then return no detections; pretrained-like blocks keep them
    finite without changing the computation that is timed."""
    with torch.no_grad():
        for block in blocks:
            norm_of(block).weight.zero_()


def bench_torchvision(
    backbone: str,
    batch,
    *,
    device: torch.device,
    amp: bool,
    iters: int,
    image_size: int,
    backbone_mode: str = "frozen",
) -> tuple[float, float, float, dict]:
    """(training images/s, inference images/s, detections per image, settings) of a torchvision Mask R-CNN."""
    frozen = backbone_mode == "frozen"
    model = build_maskrcnn(backbone, image_size=image_size, score_threshold=0.0, frozen_backbone=frozen).to(device)
    model.roi_heads.detections_per_img = DETECTIONS_TIMED
    if frozen and backbone.startswith("res"):
        blocks = [m for m in model.backbone.body.modules() if isinstance(m, Bottleneck)]
        _zero_residual_scales(blocks, lambda b: b.bn3)
    settings = torchvision_settings(model)
    images = [to_tensor(img).to(device) for img, _, _ in batch]
    targets = [{k: v.to(device) for k, v in target_from_cells(cells, labels).items()} for _, cells, labels in batch]
    return (
        *_measure(
            model,
            lambda: model(images, targets),
            lambda: [len(o["boxes"]) for o in model(images)],
            len(images),
            device=device,
            amp=amp,
            iters=iters,
        ),
        settings,
    )


def detectron2_settings(model: torch.nn.Module) -> dict:
    """The settings that decide a detectron2 Mask R-CNN's training cost, read from the model."""
    from detectron2.layers import FrozenBatchNorm2d as D2Frozen

    rpn = model.proposal_generator
    return {
        "rpn_pre_nms_topk_train": rpn.pre_nms_topk[True],
        "rpn_pre_nms_topk_test": rpn.pre_nms_topk[False],
        "rpn_post_nms_topk_train": rpn.post_nms_topk[True],
        "rpn_post_nms_topk_test": rpn.post_nms_topk[False],
        "roi_batch_per_image": model.roi_heads.batch_size_per_image,
        **_count(model.backbone, (D2Frozen,), (torch.nn.BatchNorm2d,)),
    }


def bench_detectron2(
    backbone: str,
    batch,
    *,
    device: torch.device,
    amp: bool,
    iters: int,
    image_size: int,
    backbone_mode: str = "frozen",
) -> tuple[float, float, float, dict]:
    """(training images/s, inference images/s, detections per image, settings) of a detectron2 Mask R-CNN."""
    from detectron2.modeling import build_model
    from detectron2.modeling.backbone.resnet import BottleneckBlock
    from detectron2.structures import BitMasks, Boxes, Instances
    from detectron2.utils.events import EventStorage

    # "frozen" is the configs' own FrozenBN with FREEZE_AT 2; "trainable": BatchNorm, nothing frozen.
    mode_opts = [] if backbone_mode == "frozen" else ["MODEL.RESNETS.NORM", "BN", "MODEL.BACKBONE.FREEZE_AT", "0"]

    cfg = load_config(
        DETECTRON2_CONFIGS[backbone],
        [
            "MODEL.WEIGHTS",
            "",
            "MODEL.DEVICE",
            device.type,
            "HPA.IMAGE_SIZE",
            str(image_size),
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
            "0.0",
            "TEST.DETECTIONS_PER_IMAGE",
            str(DETECTIONS_TIMED),
            "MODEL.PIXEL_STD",
            "[57.375, 57.12, 58.395, 57.2475]",
            *mode_opts,
        ],
    )
    model = build_model(cfg).to(device)
    if backbone_mode == "frozen":
        blocks = [m for m in model.backbone.bottom_up.modules() if isinstance(m, BottleneckBlock)]
        _zero_residual_scales(blocks, lambda b: b.conv3.norm)
    settings = detectron2_settings(model)
    inputs = []
    for img, cells, labels in batch:
        target = target_from_cells(cells, labels)  # one instance per cell, as HPADatasetMapper
        inst = Instances(cells.shape)
        inst.gt_masks, inst.gt_boxes = BitMasks(target["masks"].bool()), Boxes(target["boxes"])
        inst.gt_classes = torch.zeros(len(target["boxes"]), dtype=torch.int64)
        inst.gt_multilabels = target["multilabels"]
        inputs.append(
            {
                "image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float(),
                "instances": inst,
                "height": cells.shape[0],
                "width": cells.shape[1],
            }
        )
    plain = [{k: v for k, v in d.items() if k != "instances"} for d in inputs]

    def losses() -> dict:
        with EventStorage(0):  # detectron2 logs into an event storage while training
            return model(inputs)

    return (
        *_measure(
            model,
            losses,
            lambda: [len(o["instances"]) for o in model(plain)],
            len(inputs),
            device=device,
            amp=amp,
            iters=iters,
        ),
        settings,
    )


#: Settings that must agree between the engines for a fair comparison.
EQUAL_SETTINGS: tuple[str, ...] = (
    "rpn_pre_nms_topk_train",
    "rpn_pre_nms_topk_test",
    "rpn_post_nms_topk_train",
    "rpn_post_nms_topk_test",
    "roi_batch_per_image",
)
BACKBONE_MODES: tuple[str, ...] = ("frozen", "trainable")


def build_parser() -> ArgumentParser:
    """Options of ``python -m hpaseg.bench train``."""
    parser = ArgumentParser(
        prog="hpaseg bench train", description="Mask R-CNN training/inference throughput per backbone and engine."
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu")
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA)")
    parser.add_argument("--image-size", type=int, default=256, help="image size in px (default 256)")
    parser.add_argument("--batch-size", type=int, default=2, help="images per step (default 2)")
    parser.add_argument("--iters", type=int, default=2, help="timed steps after one warm-up (default 2)")
    parser.add_argument(
        "--backbones", nargs="+", default=list(TORCHVISION_BACKBONES), help="torchvision backbones to time"
    )
    parser.add_argument("--engines", nargs="+", default=["torchvision", "detectron2"], help="engines to time")
    parser.add_argument(
        "--backbone-mode",
        default="frozen",
        choices=BACKBONE_MODES,
        help="BatchNorm handling of both engines: frozen (FrozenBN, stem and first stage frozen; default) or trainable",
    )
    parser.add_argument("--rounds", type=int, default=1, help="times each engine pair is timed (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out-json", help="also write the figures here")
    add_quiet(parser)
    return parser


def _runs(backbones: Sequence[str], engines: Sequence[str], rounds: int) -> list[tuple[str, str]]:
    """(engine, backbone) in timing order: torchvision-only backbones first, then each
    backbone both engines have as a torchvision/detectron2 pair, ``rounds`` times.

    >>> _runs(["densenet121", "resnet101_fpn"], ["torchvision", "detectron2"], 2)[1:]
    [('torchvision', 'resnet101_fpn'), ('detectron2', 'resnet101_fpn'), ('torchvision', 'resnet101_fpn'), ('detectron2', 'resnet101_fpn')]
    """
    runs = [("torchvision", b) for b in backbones if b not in DETECTRON2_CONFIGS and "torchvision" in engines]
    paired = [b for b in DETECTRON2_CONFIGS if b in backbones or "torchvision" not in engines]
    for _ in range(rounds):
        for b in paired:
            runs += [(e, b) for e in ("torchvision", "detectron2") if e in engines]
    return runs


def _print_settings(rows: list[dict], image_size: int, batch_size: int, backbone_mode: str) -> None:
    """The settings of each (engine, backbone), and whether the engines agree on them."""
    seen = {}
    for r in rows:
        seen.setdefault((r["engine"], r["backbone"]), r["settings"])
    print(f"settings (read from the models): image {image_size} px, batch {batch_size}, backbone mode {backbone_mode}")
    keys = list(next(iter(seen.values())))
    print(f"{'engine':<12} {'backbone':<16} " + " ".join(f"{k}" for k in keys))
    for (engine, backbone), st in seen.items():
        print(f"{engine:<12} {backbone:<16} " + " ".join(f"{st[k]:>{len(k)}}" for k in keys))
    for backbone in DETECTRON2_CONFIGS:
        tv, d2 = seen.get(("torchvision", backbone)), seen.get(("detectron2", backbone))
        if tv and d2:
            differ = [k for k in EQUAL_SETTINGS if tv[k] != d2[k]]
            bn_same = (tv["frozen_bn_layers"] > 0) == (d2["frozen_bn_layers"] > 0) and (
                tv["trainable_bn_layers"] > 0
            ) == (d2["trainable_bn_layers"] > 0)
            print(
                f"{backbone}: engines equal in proposals and RoIs: {not differ}"
                + (f" (differ: {', '.join(differ)})" if differ else "")
                + f"; same BatchNorm handling: {bn_same}"
            )


@cli_entry("bench train", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; prints the settings, a table and, last, the torchvision/detectron2 ratios."""
    args = build_parser().parse_args(argv)
    if args.out_json:
        check_output_path(args.out_json, option="--out-json", folder=False)
    for b in args.backbones:
        if b not in TORCHVISION_BACKBONES:
            raise InputError(f"--backbones {b!r}: expected some of {', '.join(TORCHVISION_BACKBONES)}")
    for e in args.engines:
        if e not in ("torchvision", "detectron2"):
            raise InputError(f"--engines {e!r}: expected torchvision and/or detectron2")
    if args.rounds < 1:
        raise InputError(f"--rounds {args.rounds}: expected a positive integer")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = args.amp and device.type == "cuda"
    torch.manual_seed(0)
    batch = synth_batch(args.image_size, args.batch_size, seed=0)
    engines = list(args.engines)
    if "detectron2" in engines and importlib.util.find_spec("detectron2") is None:
        print("detectron2 not installed: its rows are skipped", file=sys.stderr)
        engines.remove("detectron2")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"device: {name}; image {args.image_size} px, batch {args.batch_size}, {args.iters} timed steps, amp={amp}, "
        f"backbone mode {args.backbone_mode}, {args.rounds} round(s)"
    )
    print(f"{'engine':<12} {'backbone':<16} {'train img/s':>12} {'infer img/s':>12} {'dets/img':>9}")
    rows = []
    for engine, backbone in _runs(args.backbones, engines, args.rounds):
        fn = bench_torchvision if engine == "torchvision" else bench_detectron2
        train_ips, infer_ips, dets, settings = fn(
            backbone,
            batch,
            device=device,
            amp=amp,
            iters=args.iters,
            image_size=args.image_size,
            backbone_mode=args.backbone_mode,
        )
        rows.append(
            {
                "engine": engine,
                "backbone": backbone,
                "train_images_per_s": train_ips,
                "infer_images_per_s": infer_ips,
                "detections_per_image": dets,
                "settings": settings,
            }
        )
        print(f"{engine:<12} {backbone:<16} {train_ips:>12.3f} {infer_ips:>12.3f} {dets:>9.0f}", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if rows:
        _print_settings(rows, args.image_size, args.batch_size, args.backbone_mode)

    def median(engine: str, backbone: str) -> float:
        values = [r["train_images_per_s"] for r in rows if r["engine"] == engine and r["backbone"] == backbone]
        return float(np.median(values)) if values else float("nan")

    ratios = {b: median("torchvision", b) / median("detectron2", b) for b in DETECTRON2_CONFIGS}
    if args.out_json:
        write_json(
            args.out_json,
            {
                "device": name,
                "image_size": args.image_size,
                "batch_size": args.batch_size,
                "iters": args.iters,
                "amp": amp,
                "backbone_mode": args.backbone_mode,
                "rounds": args.rounds,
                "rows": rows,
                "train_ratio_tv_over_d2": ratios,
            },
            indent=2,
        )
    print(f"r101_fpn_tv_over_d2={ratios['resnet101_fpn']:.2f} x101_fpn_tv_over_d2={ratios['resnext101_fpn']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
