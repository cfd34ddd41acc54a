"""hpaseg: weakly supervised single-cell classification of Human Protein Atlas images.

Stages, each a module with ``main(argv)`` and a CLI (``python -m hpaseg.<stage>`` or
``hpaseg <stage>``): ``synth``, ``segment``, ``propagate``, ``train``, ``predict``,
``classify``, ``ablation``, ``submit``, ``validate``, ``evaluate``, ``visualize``,
``demo``, ``bench``. Library code: ``io`` (the only module that reads and writes data
files), ``segment``, ``propagate``, ``dataset``, ``submission``, ``metrics``,
``visualize``, ``training``, ``dist`` and the models in ``hpaseg.models``.
"""
from .classes import CLASS_NAMES, NEGATIVE, NUM_CLASSES, Channel

__all__ = ["CLASS_NAMES", "NEGATIVE", "NUM_CLASSES", "Channel", "__version__"]
__version__ = "0.1.0"
