"""``python -m hpaseg.train``: the ``hpaseg train`` command; its code is :mod:`hpaseg.cli.train`."""

import sys

from .cli.train import main

if __name__ == "__main__":
    sys.exit(main())
