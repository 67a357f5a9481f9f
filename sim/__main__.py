"""``python -m sim`` runs the peerpods-conformance command."""

import sys

from sim.harness.cli import main

sys.exit(main())
