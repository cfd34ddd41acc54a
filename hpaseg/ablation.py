"""``python -m hpaseg.ablation``: the ``hpaseg ablation`` command; its code is :mod:`hpaseg.cli.ablation`."""

import sys

from .cli.ablation import main

if __name__ == "__main__":
    sys.exit(main())
