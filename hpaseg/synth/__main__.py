"""``python -m hpaseg.synth``: the ``hpaseg synth`` command (:mod:`hpaseg.cli.synth`)."""

import sys

from ..cli.synth import main

sys.exit(main())
