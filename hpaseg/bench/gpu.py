"""``python -m hpaseg.bench gpu --out-json FILE``: the GPU check in one command (about 8 minutes on one GPU).

Sections, each written to ``FILE`` as soon as it is done (so a run stopped early keeps
what it measured), each skipped with the reason once ``--budget-s`` is spent:

``train``
    Training and inference images/s of every backbone (torchvision; detectron2's
    ResNet101-FPN and ResNeXt101-FPN too when installed) at ``--image-size`` (1024) with
    AMP, equal settings (:mod:`hpaseg.bench.train`), and each one's peak GPU memory
    (``torch.cuda.max_memory_allocated``).
``predict``
    The predict chain per 2048-px image, step by step (:mod:`hpaseg.bench.predict`).
``loader``
    The image cache and DataLoader at the working size (:mod:`hpaseg.bench.loader`), and
    how many workers keep the fastest backbone fed.
``learn``
    A short training run (``--train-iters``, 60) of DenseNet121-FPN on a small synthetic
    dataset through ``hpaseg train``'s library call; its logged losses, and whether the last
    ones are below the first ones.

Without CUDA it stops with a one-line error (exit code 2), unless ``--device cpu --smoke``
asks for a tiny CPU run of every section (what the tests run). The last line:
``sections=N/M loss_first=A loss_last=B loss_falling=True|False out=FILE``.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..cli.base import ArgumentParser, add_quiet, cli_entry
from ..detection import BACKBONES, TrainConfig, train_torchvision
from ..errors import InputError
from ..io import write_json
from ..runtime.logger import read_metrics
from .common import machine, peak_rss_mb, synth_training_set
from .loader import bench_loader
from .predict import bench_predict
from .train import DETECTRON2_CONFIGS, bench_detectron2, bench_torchvision, synth_batch

__all__ = ["GpuCheck", "build_parser", "run_check", "main"]

#: Backbones timed by default (the torchvision engine's FPN models).
DEFAULT_BACKBONES: tuple[str, ...] = ("densenet121", "resnet101_fpn", "resnext101_fpn")


@dataclass(frozen=True)
class GpuCheck:
    """Sizes of the check: the full GPU run, or the tiny CPU smoke run (:meth:`smoke`)."""

    image_size: int = 1024
    batch_size: int = 4
    iters: int = 5
    predict_size: int = 2048
    predict_images: int = 2
    detections: int = 100
    loader_images: int = 8
    loader_workers: tuple[int, ...] = (0, 2, 4)
    loader_samples: int = 48
    learn_images: int = 16
    learn_size: int = 512
    learn_image_size: int = 512
    train_iters: int = 60
    log_period: int = 5

    @classmethod
    def smoke(cls) -> GpuCheck:
        """Every section at toy sizes, for a CPU test of the machinery."""
        return cls(
            image_size=128,
            batch_size=1,
            iters=1,
            predict_size=256,
            predict_images=1,
            detections=10,
            loader_images=2,
            loader_workers=(0,),
            loader_samples=2,
            learn_images=2,
            learn_size=128,
            learn_image_size=128,
            train_iters=4,
            log_period=1,
        )


def _peak_gpu_mb(device: torch.device) -> float | None:
    """Peak GPU memory since the last reset in MiB; None off CUDA."""
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} MiB"


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def section_train(check: GpuCheck, backbones: Sequence[str], device: torch.device) -> dict:
    """Training/inference images/s and peak GPU memory per backbone and engine, with AMP."""
    amp = device.type == "cuda"
    batch = synth_batch(check.image_size, check.batch_size, seed=0)
    runs = [("torchvision", b, bench_torchvision) for b in backbones]
    if device.type == "cuda" and importlib.util.find_spec("detectron2") is not None:
        runs += [("detectron2", b, bench_detectron2) for b in DETECTRON2_CONFIGS]
    rows = []
    for engine, backbone, fn in runs:
        _reset_peak(device)
        train_ips, infer_ips, dets, settings = fn(
            backbone, batch, device=device, amp=amp, iters=check.iters, image_size=check.image_size
        )
        rows.append(
            {
                "engine": engine,
                "backbone": backbone,
                "train_images_per_s": train_ips,
                "infer_images_per_s": infer_ips,
                "detections_per_image": dets,
                "peak_gpu_mb": _peak_gpu_mb(device),
                "settings": settings,
            }
        )
        print(
            f"train: {engine:<11} {backbone:<15} train {train_ips:8.2f} img/s, infer {infer_ips:8.2f} img/s, "
            f"peak GPU {_mib(rows[-1]['peak_gpu_mb'])}",
            flush=True,
        )
    return {"image_size": check.image_size, "batch_size": check.batch_size, "amp": amp, "rows": rows}


def section_predict(check: GpuCheck, device: torch.device) -> dict:
    """The predict chain at ``predict_size`` input (:func:`hpaseg.bench.predict.bench_predict`)."""
    _reset_peak(device)
    r = bench_predict(
        size=check.predict_size,
        image_size=check.image_size,
        backbone="densenet121",
        weights=None,
        detections=check.detections,
        images=check.predict_images,
        device=device,
        seed=0,
    )
    r["peak_gpu_mb"] = _peak_gpu_mb(device)
    print(
        f"predict: {r['total_seconds_per_image']:.3f} s/image, forward share {r['forward_share']:.2f}, "
        f"peak GPU {_mib(r['peak_gpu_mb'])}",
        flush=True,
    )
    return r


def section_loader(check: GpuCheck, train_ips: float) -> dict:
    """The loader at the working size and the workers needed to feed ``train_ips`` images/s."""
    r = bench_loader(
        size=check.predict_size,
        image_size=check.image_size,
        images=check.loader_images,
        workers=check.loader_workers,
        batch_size=check.batch_size,
        samples=check.loader_samples,
        seed=0,
    )
    per_worker = max(row["images_per_s_per_worker"] for row in r["rows"])
    r["fastest_model_train_images_per_s"] = train_ips
    r["workers_needed"] = int(np.ceil(train_ips / per_worker)) if np.isfinite(train_ips) else None
    print(f"loader: {per_worker:.1f} images/s per worker; workers needed {r['workers_needed']}", flush=True)
    return r


def section_learn(check: GpuCheck, device: torch.device) -> dict:
    """A short DenseNet121-FPN training run on synthetic data; its losses."""
    with tempfile.TemporaryDirectory(prefix="hpaseg-bench-gpu-") as tmp:
        root = Path(tmp)
        data, dataset = synth_training_set(root, n_images=check.learn_images, size=check.learn_size)
        cfg = TrainConfig(
            backbone="densenet121",
            dataset=str(dataset),
            data=str(data),
            out=str(root / "run"),
            image_size=check.learn_image_size,
            batch_size=check.batch_size,
            max_iter=check.train_iters,
            warmup_iters=max(1, check.train_iters // 6),
            checkpoint_period=0,
            eval_period=0,
            log_period=check.log_period,
            device=device.type,
            workers=2 if device.type == "cuda" else 0,
        )
        t0 = time.perf_counter()
        train_torchvision(cfg, progress=False)
        seconds = time.perf_counter() - t0
        records = [r for r in read_metrics(root / "run") if "loss" in r]
    losses = [float(r["loss"]) for r in records]
    k = max(1, len(losses) // 4)
    first, last = float(np.mean(losses[:k])), float(np.mean(losses[-k:]))
    print(f"learn: {check.train_iters} iterations in {seconds:.1f} s, loss {first:.3f} -> {last:.3f}", flush=True)
    return {
        "iterations": check.train_iters,
        "seconds": seconds,
        "iterations_logged": [int(r["iteration"]) for r in records],
        "losses": losses,
        "loss_first": first,
        "loss_last": last,
        "loss_falling": last < first,
    }


def run_check(
    check: GpuCheck, *, device: torch.device, backbones: Sequence[str], budget_s: float, out_json: str | Path
) -> dict:
    """Run every section within ``budget_s`` seconds, writing ``out_json`` after each."""
    start = time.perf_counter()
    result: dict = {
        "device": machine(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "check": check.__dict__ | {"loader_workers": list(check.loader_workers)},
        "budget_s": budget_s,
        "sections": {},
        "skipped": {},
    }

    def fastest() -> float:
        rows = result["sections"].get("train", {}).get("rows", [])
        return max((r["train_images_per_s"] for r in rows), default=float("nan"))

    sections: list[tuple[str, Callable[[], dict]]] = [
        ("train", lambda: section_train(check, backbones, device)),
        ("predict", lambda: section_predict(check, device)),
        ("loader", lambda: section_loader(check, fastest())),
        ("learn", lambda: section_learn(check, device)),
    ]
    for name, fn in sections:
        spent = time.perf_counter() - start
        if spent > budget_s:
            result["skipped"][name] = f"budget of {budget_s:.0f} s spent ({spent:.0f} s)"
            print(f"{name}: skipped, {result['skipped'][name]}", flush=True)
            continue
        t0 = time.perf_counter()
        result["sections"][name] = fn() | {"section_seconds": time.perf_counter() - t0}
        result["elapsed_s"] = time.perf_counter() - start
        result["peak_rss_mb"] = peak_rss_mb()
        write_json(out_json, result, indent=2)
    write_json(out_json, result, indent=2)
    return result


def build_parser() -> ArgumentParser:
    """Options of ``python -m hpaseg.bench gpu``."""
    parser = ArgumentParser(prog="hpaseg bench gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--out-json", required=True, help="where the figures go (written after each section)")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu with --smoke")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a test of the machinery, not a measurement")
    parser.add_argument("--backbones", nargs="+", default=list(DEFAULT_BACKBONES), help="torchvision backbones")
    parser.add_argument("--budget-s", type=float, default=420.0, help="start no section after this (default 420 s)")
    add_quiet(parser)
    return parser


@cli_entry("bench gpu", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run the GPU check; the last line gives the sections done and the short run's losses."""
    args = build_parser().parse_args(argv)
    for b in args.backbones:
        if b not in BACKBONES:
            raise InputError(f"--backbones {b!r}: expected some of {', '.join(BACKBONES)}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "no CUDA device here (torch.cuda.is_available() is False); run it on a GPU machine, "
            "or pass --device cpu --smoke for a tiny CPU smoke run"
        )
    if device.type != "cuda" and not args.smoke:
        raise InputError(f"--device {args.device}: the GPU check needs cuda; add --smoke for a tiny CPU smoke run")
    check = GpuCheck.smoke() if args.smoke else GpuCheck()
    backbones = args.backbones[:1] if args.smoke else args.backbones
    print(f"GPU check on {machine(device)}{' (smoke sizes)' if args.smoke else ''}; figures -> {args.out_json}")
    r = run_check(check, device=device, backbones=backbones, budget_s=args.budget_s, out_json=args.out_json)
    learn = r["sections"].get("learn", {})
    print(
        f"sections={len(r['sections'])}/{len(r['sections']) + len(r['skipped'])} "
        f"loss_first={learn.get('loss_first', float('nan')):.3f} loss_last={learn.get('loss_last', float('nan')):.3f} "
        f"loss_falling={learn.get('loss_falling', False)} out={args.out_json}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
