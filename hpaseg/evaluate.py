"""``python -m hpaseg.evaluate``: the ``hpaseg evaluate`` command; its code is :mod:`hpaseg.cli.evaluate`."""

import sys

from .cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
