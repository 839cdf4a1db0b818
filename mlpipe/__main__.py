"""``python -m mlpipe`` runs the command line."""

import sys

from mlpipe.cli import main

# Guarded: a process started with "spawn" (training ranks) imports this module again.
if __name__ == "__main__":
    sys.exit(main())
