"""``python -m hpaseg.demo``: the ``hpaseg demo`` command; its code is :mod:`hpaseg.cli.demo`."""

import sys

from .cli.demo import main

if __name__ == "__main__":
    sys.exit(main())
