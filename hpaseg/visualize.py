"""``python -m hpaseg.visualize``: the ``hpaseg visualize`` command; its code is :mod:`hpaseg.cli.visualize`."""

import sys

from .cli.visualize import main

if __name__ == "__main__":
    sys.exit(main())
