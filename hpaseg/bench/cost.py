"""``python -m hpaseg.bench cost``: the full-scale cost model, measured here and extrapolated.

Every per-image stage of the pipeline runs, through the library calls its CLI makes, on a
few synthetic fields of the HPA size (``--size``, 2048 px; :mod:`hpaseg.synth`) in a
temporary folder, the process pinned to **one CPU core** (torch and OpenCV on one thread):

``segment``          the built-in watershed segmenter, masks written (``hpaseg segment``)
``propagate``        image labels to cells, COCO files (``hpaseg propagate``)
``descriptors``      the descriptor cache of the CPU preset (``hpaseg classify --cache-only``)
``crops``            the crop cache of the GPU preset, EfficientNet-B0's 128-px crops (same)
``images``           Mask R-CNN's image cache at 1024 px (``hpaseg train --cache-only``)
``predict-descriptors``, ``predict-cnn``
                     the cell-classifier route over the test fields, read, classify, encode,
                     write (``hpaseg predict --classifier``; descriptors network with its image
                     head; EfficientNet-B0 on 128-px crops, on this CPU), randomly initialised
``predict-maskrcnn`` the Mask R-CNN chain (:func:`hpaseg.bench.predict.run_chain`) with
                     DenseNet121-FPN at 1024 px on this CPU, one field, detections built
                     from the true cells; its non-forward part is what stays on the CPU of a
                     GPU node
``merge``            ``hpaseg merge`` of the test submission (validated)

and two training measurements: an epoch of the descriptor network per image, and one
training step of the GPU preset (EfficientNet-B0, 64 crops of 128 px) on this CPU.
Bytes on disk per image are read from the folders each stage wrote.

Extrapolation: ``hours = seconds per image x images / workers / 3600`` for 21,806
training and 559 test images (Kaggle's), with 1 core, 16 cores and ``--tasks`` array tasks
of ``--cores-per-task`` cores each: the per-image stages are independent images (``--shard
I/N``, ``--workers``), assumed to scale linearly, with no I/O or memory contention.
Training is one process: its row gives one core's figure only. GPU figures are **not
measured here**: they come from a ``python -m hpaseg.bench gpu`` JSON (``--gpu-json``) or
are reported as unknown, never guessed; the target of predicting the 559 test images in
at most an hour on one GPU is checked against what is measured.

Writes ``--out-md`` (the tables) and ``--out-json`` (every figure); the last line printed:
``predict_h_1core=... predict_target_met=True|False out=...``. ``--smoke`` runs the same
code on tiny fields (a test of the machinery, not a measurement).
"""

from __future__ import annotations

import datetime
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .. import __version__, io
from ..cli.base import ArgumentParser, add_quiet, cli_entry
from ..errors import InputError
from ..io import check_output_path, read_json, write_json
from .common import machine, peak_rss_mb, pinned_cores
from .cost_measure import measure

__all__ = [
    "KAGGLE_TRAIN_IMAGES",
    "KAGGLE_TEST_IMAGES",
    "PREDICT_TARGET_H",
    "CostSizes",
    "STAGES",
    "hours",
    "cost_table",
    "gpu_figures",
    "markdown",
    "build_parser",
    "main",
]

#: Images of the Kaggle HPA single-cell competition: training set and public test set.
KAGGLE_TRAIN_IMAGES = 21_806
KAGGLE_TEST_IMAGES = 559
#: Target: the whole test set predicted in at most this many hours on one GPU.
PREDICT_TARGET_H = 1.0
#: Cores of the one-node column.
NODE_CORES = 16
_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class CostSizes:
    """What is measured: field size and counts, and the presets' sizes (:meth:`smoke`: tiny)."""

    size: int = 2048
    n_train: int = 3
    n_test: int = 1
    crop_size: int = 128  # the GPU preset's crops (hpaseg.classification.CELL_PRESETS["gpu"])
    cnn_batch: int = 64  # the GPU preset's batch
    cnn_steps: int = 2  # timed training steps, after one warm-up
    descriptor_epochs: int = 5  # timed epochs of the descriptor network
    maskrcnn_size: int = 1024  # Mask R-CNN's working size (the GPU preset)
    detections: int = 100  # detections per field through the Mask R-CNN chain
    seed: int = 0

    @classmethod
    def smoke(cls) -> CostSizes:
        return cls(
            size=256, crop_size=32, cnn_batch=4, cnn_steps=1, descriptor_epochs=1, maskrcnn_size=128, detections=10
        )


@dataclass(frozen=True)
class Stage:
    """One row of the cost model."""

    key: str
    label: str
    command: str
    split: str  # "train", "test" or "both": which images it runs on
    sharded: bool  # a per-image stage with --shard I/N (else one process)


#: The rows of the model, in pipeline order.
STAGES: tuple[Stage, ...] = (
    Stage("segment", "segment (watershed)", "hpaseg segment --shard I/N", "both", True),
    Stage("propagate", "propagate labels to cells", "hpaseg propagate", "train", False),
    Stage("descriptors", "descriptor cache (CPU preset)", "hpaseg classify --cache-only --shard I/N", "train", True),
    Stage("crops", "crop cache, 128 px (GPU preset)", "hpaseg classify --cache-only --shard I/N", "train", True),
    Stage("images", "image cache, 1024 px (Mask R-CNN)", "hpaseg train --cache-only --shard I/N", "train", True),
    Stage("train-descriptors", "train: descriptor net, CPU preset", "hpaseg classify", "train", False),
    Stage("train-cnn", "train: EfficientNet-B0 crops, GPU preset, on this CPU", "hpaseg classify", "train", False),
    Stage("predict-descriptors", "predict: cell classifier, descriptors", "hpaseg predict --shard I/N", "test", True),
    Stage("predict-cnn", "predict: cell classifier, EfficientNet-B0, CPU", "hpaseg predict --shard I/N", "test", True),
    Stage("predict-maskrcnn", "predict: Mask R-CNN 1024 px, CPU", "hpaseg predict --shard I/N", "test", True),
    Stage("merge", "merge + validate the parts", "hpaseg merge", "test", False),
)

#: Training passes over the data in a run of each preset: epochs x rounds (1 + refine_rounds
#: 2 of the refined supervision) x runs (descriptors: validated run, then the refit on train + val).
TRAINING_PASSES: dict[str, tuple[int, int, int]] = {"train-descriptors": (150, 3, 2), "train-cnn": (20, 3, 1)}


def hours(seconds_per_image: float, images: int, workers: int = 1) -> float:
    """Wall-clock hours of ``images`` at ``seconds_per_image`` each on ``workers`` workers
    (independent images, linear scaling).

    >>> hours(3.6, 1000)
    1.0
    >>> hours(3.6, 1000, 16)
    0.0625
    """
    if workers < 1:
        raise InputError(f"workers {workers}: expected at least 1", param="workers")
    return seconds_per_image * images / workers / _SECONDS_PER_HOUR


def _images(split: str, n_train: int, n_test: int) -> int:
    return {"train": n_train, "test": n_test, "both": n_train + n_test}[split]


def cost_table(
    measured: dict[str, dict],
    *,
    n_train: int = KAGGLE_TRAIN_IMAGES,
    n_test: int = KAGGLE_TEST_IMAGES,
    tasks: int = 64,
    cores_per_task: int = 1,
) -> list[dict]:
    """The rows of the model: each stage's measured seconds and bytes per image, extrapolated.

    Parameters
    ----------
    measured : dict
        Stage key -> ``{"seconds_per_image": s, "bytes_per_image": b}`` (training stages:
        ``seconds_per_image_epoch``), as :func:`hpaseg.bench.cost_measure.measure` returns.
    n_train, n_test : int
        Images to extrapolate to.
    tasks, cores_per_task : int
        The array column: ``tasks x cores_per_task`` workers.

    Returns
    -------
    list of dict
        Per stage: ``seconds_per_image`` (training: per image for the whole run, epochs x
        rounds x runs of :data:`TRAINING_PASSES`), ``images``, ``hours_1_core``,
        ``hours_16_cores`` and ``hours_array`` (None for a stage that is one process),
        ``bytes_per_image`` and ``gb_total`` (None when it writes nothing that stays).
    """
    rows = []
    for stage in STAGES:
        m = measured[stage.key]
        n = _images(stage.split, n_train, n_test)
        seconds = m.get("seconds_per_image")
        if stage.key in TRAINING_PASSES:
            seconds = m["seconds_per_image_epoch"] * int(np.prod(TRAINING_PASSES[stage.key]))
        size = m.get("bytes_per_image")
        rows.append(
            {
                "stage": stage.key,
                "label": stage.label,
                "command": stage.command,
                "images": n,
                "seconds_per_image": seconds,
                "hours_1_core": hours(seconds, n),
                "hours_16_cores": hours(seconds, n, NODE_CORES) if stage.sharded else None,
                "hours_array": hours(seconds, n, tasks * cores_per_task) if stage.sharded else None,
                "bytes_per_image": size,
                "gb_total": None if size is None else size * n / 1e9,
            }
        )
    return rows


def gpu_figures(gpu_json: str | Path | None, backbone: str = "densenet121") -> dict:
    """Mask R-CNN's training images/s and predict seconds per 2048-px image on one GPU, from a
    ``python -m hpaseg.bench gpu`` JSON; without one, both unknown (None) and why."""
    if gpu_json is None:
        return {"source": "not measured: no GPU on this machine and no --gpu-json given", "device": None}
    r = read_json(gpu_json)
    sections = r.get("sections", {}) if isinstance(r, dict) else {}
    rows = [x for x in sections.get("train", {}).get("rows", []) if x.get("backbone") == backbone]
    predict = sections.get("predict", {})
    return {
        "source": str(gpu_json),
        "device": r.get("device"),
        "train_images_per_s": rows[0]["train_images_per_s"] if rows else None,
        "train_image_size": sections.get("train", {}).get("image_size"),
        "predict_seconds_per_image": predict.get("total_seconds_per_image"),
        "predict_forward_share": predict.get("forward_share"),
    }


def _fmt_h(value: float | None) -> str:
    """Hours in the unit that reads best.

    >>> _fmt_h(None), _fmt_h(0.004), _fmt_h(0.5), _fmt_h(26.04)
    ('—', '14 s', '30.0 min', '26.0 h')
    """
    if value is None:
        return "—"
    if value < 1 / 60:
        return f"{value * _SECONDS_PER_HOUR:.0f} s"
    return f"{value * 60:.1f} min" if value < 1 else f"{value:.1f} h"


def _fmt_bytes(value: float | None) -> str:
    if value is None:
        return "—"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


def predict_plan(measured: dict[str, dict], gpu: dict, n_test: int = KAGGLE_TEST_IMAGES) -> dict:
    """The test set on one GPU node against :data:`PREDICT_TARGET_H`, from measured costs.

    The cell-classifier route (GPU preset) is bounded by its cost measured on one CPU core
    (segmentation + predict; a GPU only takes over the network's forward pass). Mask R-CNN's
    chain keeps its non-forward part on the CPU; its forward pass needs the GPU figure."""
    budget_s = PREDICT_TARGET_H * _SECONDS_PER_HOUR / n_test
    cell = measured["segment"]["seconds_per_image"] + measured["predict-cnn"]["seconds_per_image"]
    maskrcnn_cpu_side = measured["predict-maskrcnn"]["non_forward_seconds_per_image"]
    gpu_total = gpu.get("predict_seconds_per_image")
    return {
        "budget_seconds_per_image": budget_s,
        "cell_classifier_seconds_per_image_1_core": cell,
        "cell_classifier_hours_1_core": hours(cell, n_test),
        "cell_classifier_target_met": hours(cell, n_test) <= PREDICT_TARGET_H,
        "maskrcnn_cpu_side_seconds_per_image_1_core": maskrcnn_cpu_side,
        "maskrcnn_forward_budget_seconds_per_image": budget_s - maskrcnn_cpu_side,
        "maskrcnn_gpu_hours": None if gpu_total is None else hours(gpu_total, n_test),
        "maskrcnn_target_met": None if gpu_total is None else hours(gpu_total, n_test) <= PREDICT_TARGET_H,
    }


def markdown(result: dict) -> str:
    """The tables of a result of :func:`run` as markdown."""
    a = result["arguments"]
    lines = [
        f"Measured {result['date']} on {result['machine']} (`{result['cpu']}`), one core, "
        f"{a['size']}-px synthetic fields ({a['n_train']} training, {a['n_test']} test), hpaseg {result['hpaseg']}, "
        f"torch {result['torch']}. Extrapolated to {a['train_images']:,} training and {a['test_images']:,} test "
        f"images; array: {a['tasks']} tasks x {a['cores_per_task']} core(s).",
        "",
        "| stage | command | images | s/image (1 core) | 1 core | 16 cores | "
        f"{a['tasks']} tasks | disk/image | disk total |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["table"]:
        lines.append(
            f"| {r['label']} | `{r['command']}` | {r['images']:,} | {r['seconds_per_image']:.3f} | "
            f"{_fmt_h(r['hours_1_core'])} | {_fmt_h(r['hours_16_cores'])} | {_fmt_h(r['hours_array'])} | "
            f"{_fmt_bytes(r['bytes_per_image'])} | {_fmt_bytes(None if r['gb_total'] is None else r['gb_total'] * 1e9)} |"
        )
    lines += ["", *_gpu_lines(result)]
    return "\n".join(lines) + "\n"


def _gpu_lines(result: dict) -> list[str]:
    gpu, plan, a = result["gpu"], result["predict_plan"], result["arguments"]
    n_test = a["test_images"]
    budget = plan["budget_seconds_per_image"]
    lines = [f"GPU figures: {gpu['source']}" + (f" ({gpu['device']})" if gpu.get("device") else "") + "."]
    ips = gpu.get("train_images_per_s")
    images_seen = a["maskrcnn_iterations"] * a["maskrcnn_batch"]
    lines.append(
        f"* Mask R-CNN training, {a['maskrcnn_iterations']:,} iterations x {a['maskrcnn_batch']} images: "
        + (
            f"{hours(1 / ips, images_seen):.1f} h on one GPU ({ips:.2f} images/s)."
            if ips
            else "unknown (no GPU figure)."
        )
    )
    lines.append(
        f"* Predict target, {n_test} test images in <= {PREDICT_TARGET_H:g} h on one GPU node "
        f"(<= {budget:.2f} s/image):"
    )
    lines.append(
        f"  * cell classifier (GPU preset): segment + predict measured on one CPU core "
        f"{plan['cell_classifier_seconds_per_image_1_core']:.2f} s/image = {_fmt_h(plan['cell_classifier_hours_1_core'])}"
        f" for the test set; a GPU only speeds up its forward pass: target "
        f"{'met' if plan['cell_classifier_target_met'] else 'NOT met'} from measured costs."
    )
    gpu_h = plan["maskrcnn_gpu_hours"]
    lines.append(
        f"  * Mask R-CNN: the chain's CPU side (read, resize, paste, NMS, encode) measured "
        f"{plan['maskrcnn_cpu_side_seconds_per_image_1_core']:.2f} s/image on one core; the target holds if the "
        f"GPU forward pass takes <= {plan['maskrcnn_forward_budget_seconds_per_image']:.2f} s/image"
        + ("" if gpu_h is None else f"; measured on the GPU: {_fmt_h(gpu_h)} for the test set.")
        + ("" if gpu_h is not None else " (GPU forward not measured here).")
    )
    return lines


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(sizes: CostSizes, *, tasks: int, cores_per_task: int, gpu_json: str | None, progress: bool) -> dict:
    """Measure (pinned to one core), extrapolate and plan; returns the whole result."""
    device = machine(torch.device("cpu"))
    with pinned_cores(1), tempfile.TemporaryDirectory(prefix="hpaseg-bench-cost-") as tmp:
        t0 = time.perf_counter()
        measured = measure(sizes, Path(tmp), progress=progress)
        seconds = time.perf_counter() - t0
    gpu = gpu_figures(gpu_json)
    return {
        "date": datetime.date.today().isoformat(),
        "machine": device,
        "cpu": _cpu_name(),
        "hpaseg": __version__,
        "torch": torch.__version__,
        "arguments": {
            **asdict(sizes),
            "train_images": KAGGLE_TRAIN_IMAGES,
            "test_images": KAGGLE_TEST_IMAGES,
            "tasks": tasks,
            "cores_per_task": cores_per_task,
            "maskrcnn_iterations": 20_000,
            "maskrcnn_batch": 4,
            "training_passes": {k: list(v) for k, v in TRAINING_PASSES.items()},
        },
        "measured": measured,
        "measure_seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "table": cost_table(measured, tasks=tasks, cores_per_task=cores_per_task),
        "gpu": gpu,
        "predict_plan": predict_plan(measured, gpu),
    }


def build_parser() -> ArgumentParser:
    """Options of ``python -m hpaseg.bench cost``."""
    parser = ArgumentParser(prog="hpaseg bench cost", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=64, help="array tasks of the array column (default 64)")
    parser.add_argument("--cores-per-task", type=int, default=1, help="cores of each array task (default 1)")
    parser.add_argument("--gpu-json", help="figures of 'python -m hpaseg.bench gpu --out-json' for the GPU rows")
    parser.add_argument("--out-md", help="write the tables here (markdown)")
    parser.add_argument("--out-json", help="write every figure here")
    parser.add_argument("--smoke", action="store_true", help="tiny fields: a test of the machinery, not a measurement")
    add_quiet(parser)
    return parser


@cli_entry("bench cost", build_parser)
def main(argv: Sequence[str] | None = None) -> int:
    """Run the cost model; the last line gives the test set's predict time and the target."""
    args = build_parser().parse_args(argv)
    for name in ("tasks", "cores_per_task"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected a positive integer")
    for name in ("out_md", "out_json"):
        if getattr(args, name):
            check_output_path(getattr(args, name), option=f"--{name.replace('_', '-')}", folder=False)
    if args.gpu_json and not Path(args.gpu_json).is_file():
        raise InputError(f"--gpu-json {args.gpu_json}: no such file; write it with python -m hpaseg.bench gpu")
    sizes = CostSizes.smoke() if args.smoke else CostSizes()
    result = run(
        sizes, tasks=args.tasks, cores_per_task=args.cores_per_task, gpu_json=args.gpu_json, progress=not args.quiet
    )
    text = markdown(result)
    print(text)
    if args.out_md:
        with io.atomic_write(args.out_md) as fh:
            fh.write(text)
    if args.out_json:
        write_json(args.out_json, result, indent=2)
    plan = result["predict_plan"]
    print(
        f"predict_h_1core={plan['cell_classifier_hours_1_core']:.3f} "
        f"predict_target_met={plan['cell_classifier_target_met']} measure_s={result['measure_seconds']:.0f} "
        f"out={args.out_json or args.out_md or '-'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
