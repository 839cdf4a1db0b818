"""``python -m mlpipe`` runs the command line."""

import sys

from mlpipe.cli import main

sys.exit(main())
