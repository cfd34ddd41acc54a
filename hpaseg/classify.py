"""``python -m hpaseg.classify``: the ``hpaseg classify`` command; its code is :mod:`hpaseg.cli.classify`."""

import sys

from .cli.classify import main

if __name__ == "__main__":
    sys.exit(main())
