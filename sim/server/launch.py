"""Run the reference webhook as a real child process on loopback, for tests and CI.

Tests and CI must exercise the server exactly as it would run in a pod - a separate
process started from the ``webhook serve`` command line, spoken to over TLS - so this
module starts that command on a free loopback port with a throw-away CA, waits until
``/readyz`` answers over verified TLS, and stops it with SIGTERM (the signal a kubelet
sends), escalating to SIGKILL only if it does not exit.

As a script it wraps another command (for tox or .ci/run)::

    python -m sim.server.launch -- peerpods-conformance run --target webhook \\
        --webhook-url @WEBHOOK_URL@ --webhook-ca @WEBHOOK_CA@

The command runs with ``WEBHOOK_URL`` and ``WEBHOOK_CA`` in its environment, and the
``@WEBHOOK_URL@``/``@WEBHOOK_CA@`` placeholders in its arguments replaced (tox does not
expand variables set at run time); the script exits with the command's status.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from plumbum import local

from sim.errors import TargetError
from sim.ports import free_port
from sim.processes import Process, terminate

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
PATH = "/mutate-v1-pod"


@dataclass
class LaunchedServer:
    """A running ``webhook serve`` child: where it listens and how to trust it."""

    url: str
    ca: Path
    port: int
    process: Process
    log: Path

    def log_text(self) -> str:
        """What the server printed so far (stdout and stderr)."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only this server's CA."""
        return ssl.create_default_context(cafile=str(self.ca))


def serve_command() -> list[str]:
    """The console script of this environment, or the same entry point through Python."""
    script = Path(sys.executable).with_name("peerpods-conformance")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from sim.harness.cli import main; sys.exit(main())"]


def _ready(server: LaunchedServer) -> bool:
    """True once /readyz answers 200 over TLS verified against the server's CA."""
    if not server.ca.exists():
        return False
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=1.0)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def stop(server: LaunchedServer, timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM, as a kubelet would; SIGKILL if the server is still there after ``timeout``."""
    return terminate(server.process, timeout)


@contextmanager
def launched(
    extra_args: Sequence[str] = (),
    *,
    env: dict[str, str] | None = None,
    ready_timeout: float = READY_TIMEOUT_S,
) -> Iterator[LaunchedServer]:
    """Start ``webhook serve --self-signed`` on a free loopback port; yield it once ready.

    The port is free when chosen but could be taken before the server binds it; the
    server then refuses to start naming the address, and another port is tried.
    """
    workdir = Path(tempfile.mkdtemp(prefix="peerpods-webhook-"))
    try:
        for attempt in range(3):
            server = _start(workdir / f"try{attempt}", extra_args, env)
            try:
                _wait_ready(server, ready_timeout)
            except _PortTaken:
                continue
            except BaseException:
                stop(server)
                raise
            try:
                yield server
            finally:
                stop(server)
            return
        raise TargetError("webhook server: no free loopback port after 3 attempts")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class _PortTaken(Exception):
    """Another process bound the chosen port first."""


def _start(workdir: Path, extra_args: Sequence[str], env: dict[str, str] | None) -> LaunchedServer:
    workdir.mkdir(parents=True)
    ca, log = workdir / "ca.pem", workdir / "server.log"
    port = free_port()
    program, *args = serve_command()
    args += ["webhook", "serve", "--host", "127.0.0.1", "--port", str(port), "--self-signed", str(ca)]
    command = local[program][[*args, *extra_args]]
    with log.open("wb") as log_handle, local.env(**(env or {})):
        proc = command.popen(stdout=log_handle, stderr=subprocess.STDOUT)
    return LaunchedServer(f"https://127.0.0.1:{port}{PATH}", ca, port, proc, log)


def _wait_ready(server: LaunchedServer, ready_timeout: float) -> None:
    deadline = time.monotonic() + ready_timeout
    while not _ready(server):
        if server.process.poll() is not None:
            text = server.log_text()
            if "Address already in use" in text:
                raise _PortTaken
            raise TargetError(f"webhook server exited with {server.process.returncode}:\n{text}")
        if time.monotonic() > deadline:
            raise TargetError(f"webhook server not ready within {ready_timeout} s:\n{server.log_text()}")
        time.sleep(0.05)


@contextmanager
def webhook_server(extra_args: Sequence[str] = ()) -> Iterator[tuple[str, Path]]:
    """The reference server on loopback as ``(url, ca_path)``, for a caller needing only those."""
    with launched(extra_args) as server:
        yield server.url, server.ca


def substitute(args: Sequence[str], url: str, ca: Path) -> list[str]:
    """Replace the ``@WEBHOOK_URL@`` / ``@WEBHOOK_CA@`` placeholders in a command line."""
    return [a.replace("@WEBHOOK_URL@", url).replace("@WEBHOOK_CA@", str(ca)) for a in args]


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command while the reference server is up; exit with the command's status."""
    parser = argparse.ArgumentParser(
        prog="python -m sim.server.launch",
        description="Run COMMAND with WEBHOOK_URL/WEBHOOK_CA set while the reference webhook serves.",
    )
    parser.add_argument("--serve-arg", action="append", default=[], help="extra argument for webhook serve")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (python -m sim.server.launch -- COMMAND ...)")
    if shutil.which(command[0]) is None:
        parser.error(f"{command[0]}: command not found")
    with launched(args.serve_arg) as server:
        print(f"launch: reference webhook at {server.url} (CA {server.ca})", file=sys.stderr, flush=True)
        program, *rest = substitute(command, server.url, server.ca)
        with local.env(WEBHOOK_URL=server.url, WEBHOOK_CA=str(server.ca)):
            # stdin, stdout and stderr are the caller's
            status, _, _ = local[program][rest].run(retcode=None, stdin=None, stdout=None, stderr=None)
        return int(status)


if __name__ == "__main__":
    sys.exit(main())
