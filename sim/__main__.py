"""``python -m sim`` runs the peerpods-conformance command."""

from sim.harness.cli import console_script

console_script()
