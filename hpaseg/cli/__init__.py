"""The command line: ``hpaseg <stage> [args]`` dispatches to ``hpaseg.cli.<stage>.main``.

One thin module per stage: it parses the flags, builds the library's typed config and
makes one library call; only this package knows flag names. ``python -m hpaseg.<stage>``
(the entry-point modules at the package's top) runs the same ``main``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

__all__ = ["STAGES", "main"]

#: stage name -> (module, one-line description). Modules are imported only when used.
STAGES: dict[str, tuple[str, str]] = {
    "synth": ("hpaseg.cli.synth", "generate a synthetic HPA-like dataset in the Kaggle layout"),
    "segment": ("hpaseg.cli.segment", "segment cells and nuclei -> {ID}_cellmask.png / {ID}_nucleimask.png"),
    "propagate": ("hpaseg.cli.propagate", "give every cell its image's labels -> COCO train.json/val.json, cells.csv"),
    "relabel": (
        "hpaseg.cli.relabel",
        "write a dataset with cleaned per-cell labels (a cell classifier's refined_labels.csv) for Mask R-CNN",
    ),
    "train": (
        "hpaseg.cli.train",
        "train Mask R-CNN (torchvision or detectron2; CPU, GPU, multi-GPU, SLURM) -> RUN/model_final.pth",
    ),
    "predict": ("hpaseg.cli.predict", "per-cell masks and labels for test images -> Kaggle submission CSV"),
    "classify": (
        "hpaseg.cli.classify",
        "train a multi-label image- or cell-level classifier (descriptors or timm backbones; weak supervision) -> RUN/",
    ),
    "ablation": (
        "hpaseg.cli.ablation",
        "classifier study grid: backbones x losses x augments -> results.csv, results.md, plots",
    ),
    "submit": ("hpaseg.cli.submit", "cell masks + per-cell label table -> Kaggle submission CSV"),
    "merge": (
        "hpaseg.cli.merge",
        "join the partial submissions of a predict job array (--shard I/N) into one, validated",
    ),
    "validate": ("hpaseg.cli.validate", "check a Kaggle submission CSV strictly"),
    "evaluate": ("hpaseg.cli.evaluate", "score a submission with the competition metric (mAP @ mask IoU 0.6)"),
    "visualize": (
        "hpaseg.cli.visualize",
        "draw predicted cells in class colours next to weak labels and truth -> {ID}_overlay.png",
    ),
    "demo": ("hpaseg.cli.demo", "run the whole pipeline on a small synthetic dataset"),
    "bench": ("hpaseg.bench", "benchmarks (encode, segment, train, learn)"),
}


def _usage() -> str:
    width = max(len(s) for s in STAGES)
    lines = ["usage: hpaseg <stage> [options]   (hpaseg <stage> --help for a stage's options)", "", "stages:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in STAGES.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpaseg <stage> ...``; returns the stage's exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    stage, rest = argv[0], argv[1:]
    if stage not in STAGES:
        print(f"hpaseg: error: unknown stage {stage!r}; expected one of {', '.join(STAGES)}", file=sys.stderr)
        return 2
    module = importlib.import_module(STAGES[stage][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
