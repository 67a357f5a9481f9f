"""``python -m sim`` runs the peerpods-conformance command."""

import sys

from sim.cli import main

sys.exit(main())
