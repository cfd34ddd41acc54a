"""``python -m hpaseg.relabel``: the ``hpaseg relabel`` command; its code is :mod:`hpaseg.cli.relabel`."""

import sys

from .cli.relabel import main

if __name__ == "__main__":
    sys.exit(main())
