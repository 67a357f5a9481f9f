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
    "sim.harness.cli.run",
    "sim.harness.cli.mutate",
    "sim.harness.cli.initdata",
    "sim.harness.cli.webhook",
    "sim.harness.cli.diff",
    "sim.harness.cli.lpar",
    "sim.harness.cli.cluster",
    "sim.harness.cli.adaptor",
)

#: Sub-commands that need an optional extra of the package (pyproject.toml), by command name.
OPTIONAL_COMMANDS: dict[str, tuple[str, str]] = {
    "sim.harness.cli.webhook": ("webhook", "webhook"),
    "sim.harness.cli.diff": ("diff", "webhook"),
    "sim.harness.cli.lpar": ("lpar", "lpar"),
}

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
            if module_name not in OPTIONAL_COMMANDS or (exc.name or "").startswith("sim"):
                raise
            _register_missing_extra(subparsers, module_name, str(exc.name))
            continue
        module.register(subparsers)
    return parser


def _register_missing_extra(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], module_name: str, missing: str
) -> None:
    """Keep the command visible, and say how to install what it needs, instead of crashing."""
    command, extra = OPTIONAL_COMMANDS[module_name]
    message = (
        f"'{command}' needs the Python package {missing!r}: "
        f"pip install 'peerpods-conformance[{extra}]' (or `pip install -e '.[{extra}]'` in a checkout)"
    )
    parser = subparsers.add_parser(command, help=f"(needs the [{extra}] extra)", add_help=False)

    def unavailable(args: argparse.Namespace) -> int:
        raise ConformanceInputError(message)

    parser.set_defaults(func=unavailable, accepts_extra=True)


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
