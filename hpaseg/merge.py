"""``python -m hpaseg.merge``: the ``hpaseg merge`` command; its code is :mod:`hpaseg.cli.merge`."""

import sys

from .cli.merge import main

if __name__ == "__main__":
    sys.exit(main())
