"""``python -m predrnn`` runs the command line."""

import sys

from predrnn.cli import main

sys.exit(main())
