"""``python -m hpaseg.validate``: the ``hpaseg validate`` command; its code is :mod:`hpaseg.cli.validate`."""

import sys

from .cli.validate import main

if __name__ == "__main__":
    sys.exit(main())
