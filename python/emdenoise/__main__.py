"""``python -m emdenoise`` runs the command line."""

import sys

from emdenoise.cli import main

sys.exit(main())
