"""``python -m hpaseg.propagate``: the ``hpaseg propagate`` command; its code is :mod:`hpaseg.cli.propagate`."""

import sys

from .cli.propagate import main

if __name__ == "__main__":
    sys.exit(main())
