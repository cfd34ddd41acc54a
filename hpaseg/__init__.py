"""hpaseg: weakly supervised single-cell classification of Human Protein Atlas images.

Stages, each a module with ``main(argv)`` and a CLI (``python -m hpaseg.<stage>`` or
``hpaseg <stage>``): ``synth``, ``segment``, ``propagate``, ``submit``, ``validate``,
``evaluate``, ``demo``, ``bench``. Library code lives in ``io``, ``segment``,
``propagate``, ``submission`` and ``metrics``.
"""
from .classes import CLASS_NAMES, NEGATIVE, NUM_CLASSES, Channel

__all__ = ["CLASS_NAMES", "NEGATIVE", "NUM_CLASSES", "Channel", "__version__"]
__version__ = "0.1.0"
