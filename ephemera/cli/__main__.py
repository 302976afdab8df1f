"""``python -m ephemera.cli ...``: the ``ephemera`` command without its console script."""

import sys

from ephemera.cli import main

sys.exit(main())
