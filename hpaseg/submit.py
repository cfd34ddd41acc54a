"""``python -m hpaseg.submit``: the ``hpaseg submit`` command; its code is :mod:`hpaseg.cli.submit`."""

import sys

from .cli.submit import main

if __name__ == "__main__":
    sys.exit(main())
