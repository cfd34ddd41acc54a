"""``python -m hpaseg.segment``: the ``hpaseg segment`` command; its code is :mod:`hpaseg.cli.segment`."""

import sys

from .cli.segment import main

if __name__ == "__main__":
    sys.exit(main())
