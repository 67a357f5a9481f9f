"""The `peerpods-conformance` command: one sub-command module per job.

Each module in COMMAND_MODULES exposes ``register(subparsers)``; the handler it sets as
``func`` returns the exit status. Input errors are reported in one place, here, so that
every sub-command prints them the same way and exits 2 without a traceback; so are a
missing optional extra (exit 2, naming the ``pip install`` that fixes it), result files that
cannot be written (exit 4, the previous ones untouched), and SIGINT/SIGTERM ("interrupted",
exit 130/143; see :mod:`sim.harness.cli.signals`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from sim import __version__
from sim.errors import ConformanceInputError, ReportWriteError, TargetError
from sim.harness.cli import signals
from sim.harness.needs import install_hint, missing_part

COMMAND_MODULES: tuple[str, ...] = (
    "sim.harness.cli.run",
    "sim.harness.cli.listing",
    "sim.harness.cli.results",
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

EXIT_USAGE, EXIT_BROKEN = 2, 4


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
    message = f"'{command}' needs the Python package {missing!r} (the [{extra}] extra): {install_hint(extra)}"
    parser = subparsers.add_parser(
        command,
        help=f"(needs the [{extra}] extra)",
        description=f"Not available in this installation:\n{message}.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def unavailable(args: argparse.Namespace) -> int:
        raise ConformanceInputError(message)

    parser.set_defaults(func=unavailable, accepts_extra=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status."""
    with signals.installed():
        try:
            return _main(argv)
        except KeyboardInterrupt:
            print(f"peerpods-conformance: {signals.message()}", file=sys.stderr, flush=True)
            return signals.exit_status()


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return int(args.func(args))
    except ModuleNotFoundError as exc:
        error = missing_part(f"'{args.command}'", exc.name or "")
        if error is None:
            raise
        print(f"peerpods-conformance: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ConformanceInputError as exc:
        print(f"peerpods-conformance: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ReportWriteError as exc:
        print(f"peerpods-conformance: {exc}", file=sys.stderr)
        return EXIT_BROKEN
    except TargetError as exc:
        print(f"peerpods-conformance: target error: {exc}", file=sys.stderr)
        return 1


def console_script() -> None:
    """The installed command (and ``python -m sim``): :func:`main`, then exit with its status.

    An interrupted command leaves with ``os._exit``: CPython remembers a KeyboardInterrupt raised
    while some extension modules import (even one that was handled) and would otherwise end
    the process by SIGINT (status -2) instead of 130/143.
    """
    try:
        status = main()
    except BrokenPipeError:  # the reader went away (`... | head`): not an error of the command
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    if status in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":  # pragma: no cover
    console_script()
