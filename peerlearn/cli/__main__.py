"""`python -m peerlearn.cli`: the `peerlearn` command."""

import sys

from peerlearn.cli import main

sys.exit(main())
