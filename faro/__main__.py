"""``python -m faro``: the faro command."""

import sys

from faro.cli import main

sys.exit(main())
