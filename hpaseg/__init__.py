"""hpaseg: weakly supervised single-cell classification of Human Protein Atlas images.

Subpackages, from the bottom layer up (imports point down only):

* :mod:`hpaseg.classes`, :mod:`hpaseg.errors` — class and channel names; ``InputError``
* :mod:`hpaseg.io`, :mod:`hpaseg.transforms` — files (images, masks, tables, atomic
  writes); the one resize and tensor conversion
* :mod:`hpaseg.runtime` — checkpoints, logs, schedules, seeds, configs, distributed set-up
* :mod:`hpaseg.segmentation`, :mod:`hpaseg.submission` — cells and nuclei; the Kaggle format
* :mod:`hpaseg.labels`, :mod:`hpaseg.evaluation` — weak labels, COCO, image cache, label
  rules; the competition metric and classification metrics
* :mod:`hpaseg.detection`, :mod:`hpaseg.classification` — Mask R-CNN (torchvision,
  detectron2); timm classifiers and the cell-classifier route
* :mod:`hpaseg.viz` — figures
* :mod:`hpaseg.synth` — synthetic data with per-cell truth
* :mod:`hpaseg.pipeline` — the predict loop, the classifier study's grid, the demo
* :mod:`hpaseg.cli`, :mod:`hpaseg.bench` — the commands (``hpaseg <stage>``, ``python -m
  hpaseg.<stage>``) and the benchmarks (``python -m hpaseg.bench <name>``)
"""

from .classes import CLASS_NAMES, NEGATIVE, NUM_CLASSES, Channel

__all__ = ["CLASS_NAMES", "NEGATIVE", "NUM_CLASSES", "Channel", "__version__"]
__version__ = "0.2.0"
