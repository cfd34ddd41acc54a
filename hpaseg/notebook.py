"""``python -m hpaseg.notebook``: the notebook runner (run, strip, check); its code is :mod:`hpaseg.cli.notebook`."""

import sys

from .cli.notebook import main

if __name__ == "__main__":
    sys.exit(main())
