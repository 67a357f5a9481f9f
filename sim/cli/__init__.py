"""The `peerpods-conformance` command: one sub-command module per job.

Each module in COMMAND_MODULES exposes ``register(subparsers)``; the handler it sets as
``func`` returns the exit status. Input errors are reported in one place, here, so that
every sub-command prints them the same way and exits 2 without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sim import __version__
from sim.errors import ConformanceInputError, TargetError

COMMAND_MODULES: tuple[str, ...] = (
    "sim.cli.run",
    "sim.cli.mutate",
    "sim.cli.initdata",
    "sim.cli.webhook",
    "sim.cli.diff",
    "sim.cli.lpar",
)

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """Assemble the parser from whichever sub-command modules are installed."""
    parser = argparse.ArgumentParser(
        prog="peerpods-conformance",
        description="Conformance suite for confidential containers with peer pods on IBM Z / LinuxONE.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return int(args.func(args))
    except ConformanceInputError as exc:
        print(f"peerpods-conformance: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TargetError as exc:
        print(f"peerpods-conformance: target error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
