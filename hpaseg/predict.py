"""``python -m hpaseg.predict``: the ``hpaseg predict`` command; its code is :mod:`hpaseg.cli.predict`."""

import sys

from .cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
