"""Starting, probing and stopping cloud-api-adaptor processes for the ``adaptor`` target.

Two kinds of adaptor run here, through the same API:

* the suite's reference, ``peerpods-conformance adaptor serve`` (the default, what CI runs);
* a user's build of upstream's ``cloud-api-adaptor`` (``--adaptor-binary``), started with the
  libvirt provider's options as a deployment gives them from peer-pods-cm and
  peer-pods-secret (:func:`caa_arguments`).

Each process gets its own socket and pods directory inside the run's directory, dies with
the suite (``PR_SET_PDEATHSIG``), and counts as started once it answers ``Version`` on its
socket. One that exits first, or does not answer in time, did not start: the error quotes
the end of its output.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from plumbum import local

from sim.errors import ConformanceInputError
from sim.peerpods.adaptor import AdaptorStartError
from sim.peerpods.hypervisor.client import AdaptorUnreachable, HypervisorClient, RemoteError
from sim.peerpods.hypervisor.wire import check_socket_path
from sim.processes import Process, die_with_parent, terminate

__all__ = ["SHIM_VERSION", "AdaptorLauncher", "RunningAdaptor", "Spawn", "caa_arguments"]

#: Starts an adaptor process: argv, its own environment settings, where its output goes.
Spawn = Callable[[Sequence[str], Mapping[str, str], IO[Any]], Process]

#: What the suite, as the shim, sends in ``Version``.
SHIM_VERSION = "0.0.1"
#: How long an adaptor has to answer Version after it starts ($PEERPODS_ADAPTOR_START_TIMEOUT overrides).
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
#: Idle adaptors kept for later scenarios with the same environment (most scenarios share one).
MAX_IDLE = 2
RUNS_PREFIX = "ppa-"
#: The firmware of x86_64 pod VMs; an empty value cannot be given through the environment (CAA
#: reads an empty variable as "the default"), so the launcher turns BIOS into ``-firmware ""``.
FIRMWARE_KEY = "LIBVIRT_EFI_FIRMWARE"
BIOS = "bios"


@dataclass
class RunningAdaptor:
    """One adaptor process and the connection the suite, as its shim, holds to it."""

    name: str
    process: Process
    socket: Path
    pods_dir: Path
    log: Path
    client: HypervisorClient
    version: str
    environment: dict[str, str]

    def output(self, lines: int = 15) -> str:
        """The end of what the process printed."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def caa_arguments(environment: Mapping[str, str], socket: Path, pods_dir: Path) -> list[str]:
    """Upstream's command line for the libvirt provider. The deployment's keys reach it as
    environment variables, which CAA reads as its flags' defaults (``LIBVIRT_URI``,
    ``LIBVIRT_POOL``, ``LIBVIRT_NET``, ``LIBVIRT_VOL_NAME``, ``DISABLECVM``, ...: the libvirt
    provider's ``ParseCmd``), as the chart's entrypoint runs it; the flags say only where its
    socket and pods directory are, and that the pod VM's forwarder speaks plain TCP (the
    suite's pod VM agent serves no TLS). An x86_64 pod VM boots with SeaBIOS
    (``-firmware ""``: the image boots from its MBR; OVMF is CAA's default)."""
    arguments = ["libvirt", "-socket", str(socket), "-pods-dir", str(pods_dir), "-disable-tls"]
    if environment.get(FIRMWARE_KEY) == BIOS:
        arguments += ["-firmware", ""]
    return arguments


class AdaptorLauncher:
    """Starts adaptors of one kind (``binary`` None: the reference) in ``run_dir``."""

    def __init__(
        self,
        binary: Path | None,
        *,
        cache: Path | None = None,
        spawn: Spawn | None = None,
        run_dir: Path | None = None,
        boot: str = "volume",
    ) -> None:
        """``boot``: how the reference adaptor boots its pod VMs (``adaptor serve --boot``)."""
        if binary is not None:
            binary = binary.resolve()
            if not binary.is_file() or not os.access(binary, os.X_OK):
                raise ConformanceInputError(f"--adaptor-binary {binary}: not an executable file")
        self.binary = binary
        self.cache = cache
        self.boot = boot
        #: How processes start: here, dying with the suite; or inside an isolated LPAR.
        self.spawn: Spawn = spawn or _spawn_here
        base = Path(run_dir or _short_base())
        _remove_dead_runs(base)
        # short on purpose: a sandbox's agent socket sits 78 characters below its pods folder
        self.run_dir = base / f"{RUNS_PREFIX}{os.getpid()}-{next(_LAUNCHERS)}"
        shutil.rmtree(self.run_dir, ignore_errors=True)  # a dead process's, whose pid this one has now
        self.run_dir.mkdir(mode=0o700, parents=True)
        self._count = 0
        self._idle: dict[frozenset[tuple[str, str]], list[RunningAdaptor]] = {}
        #: Every process started, so that close() ends them all, even one whose start was interrupted.
        self._processes: list[Process] = []

    @property
    def reference(self) -> bool:
        return self.binary is None

    @property
    def boots_volume(self) -> bool:
        """Whether the adaptor boots its pod VMs from the image on their volume (a user's build
        always does; the reference unless told ``--boot kernel``)."""
        return self.binary is not None or self.boot == "volume"

    def argv(self, environment: Mapping[str, str], socket: Path, pods_dir: Path) -> list[str]:
        if self.binary is not None:
            return [str(self.binary), *caa_arguments(environment, socket, pods_dir)]
        argv = [sys.executable, "-m", "sim", "adaptor", "serve", "--socket", str(socket)]
        argv += ["--pods-dir", str(pods_dir)]
        if self.cache is not None:
            argv += ["--cache", str(self.cache)]
        if self.boot != "volume":
            argv += ["--boot", self.boot]
        return argv

    def start(self, name: str, environment: Mapping[str, str], *, fresh: bool = True) -> RunningAdaptor:
        """Start one adaptor; :class:`AdaptorStartError` quoting its output when it does not start.

        ``fresh=False``: an idle process of an earlier scenario, started with exactly this
        environment and still answering, may be handed out instead (an adaptor deployment runs
        for many pods; a restart in a scenario always asks for a fresh one)."""
        if not fresh:
            idle = self._take_idle(environment)
            if idle is not None:
                return idle
        self._count += 1
        directory = self.run_dir / f"{self._count}"
        directory.mkdir()
        socket, pods_dir, log = directory / "hypervisor.sock", directory / "pods", directory / "adaptor.log"
        check_socket_path(str(socket), what="the adaptor socket")
        # the adaptor listens for the shim's agent connection at <pods-dir>/<64-hex sandbox id>/agent.ttrpc
        check_socket_path(str(pods_dir / ("0" * 64) / "agent.ttrpc"), what="a sandbox's agent socket")
        argv = self.argv(environment, socket, pods_dir)
        with log.open("ab") as handle:
            process = self.spawn(argv, environment, handle)
        self._processes.append(process)
        limit = float(os.environ.get("PEERPODS_ADAPTOR_START_TIMEOUT") or START_TIMEOUT_S)
        deadline = time.monotonic() + limit
        while True:
            if process.poll() is not None:
                tail = _tail(log)
                raise AdaptorStartError(f"{name} exited at start with status {process.returncode}: {tail}")
            if socket.exists():
                try:
                    client = HypervisorClient(str(socket))
                    version = client.version(SHIM_VERSION, timeout=5.0)
                except (AdaptorUnreachable, RemoteError):
                    pass
                else:
                    return RunningAdaptor(
                        name, process, socket, pods_dir, log, client, version, dict(environment)
                    )
            if time.monotonic() > deadline:
                terminate(process, STOP_TIMEOUT_S)
                raise AdaptorStartError(
                    f"{name} did not answer Version on {socket} within {limit:g} s: {_tail(log)}"
                )
            time.sleep(0.05)

    def stop(self, running: RunningAdaptor, *, reuse: bool = False) -> int | None:
        """SIGTERM (SIGKILL after a grace period); its exit status. Its directory goes.
        ``reuse``: keep it, idle, for a later :meth:`start` with the same environment."""
        if reuse and running.process.poll() is None:
            self._idle.setdefault(_key(running.environment), []).append(running)
            self._trim_idle()
            return None
        running.client.close()
        status = terminate(running.process, STOP_TIMEOUT_S)
        kept = self.run_dir / "logs" / f"{running.socket.parent.name}-adaptor.log"
        kept.parent.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            running.log.replace(kept)  # for the results bundle (log_files)
        shutil.rmtree(running.socket.parent, ignore_errors=True)
        return status

    def logs(self) -> dict[str, Path]:
        """Each adaptor process's output, stopped ones included, by its number in the run."""
        found = sorted((self.run_dir / "logs").glob("*-adaptor.log"))
        found += sorted(self.run_dir.glob("*/adaptor.log"))
        return {
            f"adaptor/{path.name if path.parent.name == 'logs' else path.parent.name + '-adaptor.log'}": path
            for path in found
        }

    def _trim_idle(self) -> None:
        """Keep at most :data:`MAX_IDLE` idle adaptors: the oldest goes first."""
        idle = sorted(
            (r for waiting in self._idle.values() for r in waiting), key=lambda r: int(r.socket.parent.name)
        )
        for running in idle[: max(0, len(idle) - MAX_IDLE)]:
            self._idle[_key(running.environment)].remove(running)
            self.stop(running)

    def _take_idle(self, environment: Mapping[str, str]) -> RunningAdaptor | None:
        waiting = self._idle.get(_key(environment), [])
        while waiting:
            running = waiting.pop()
            if running.process.poll() is None:
                try:
                    running.client.version(SHIM_VERSION, timeout=5.0)
                except (AdaptorUnreachable, RemoteError):
                    pass
                else:
                    return running
            self.stop(running)
        return None

    def identity(self) -> dict[str, str]:
        """What the certificate names as the adaptor under test (besides its Version answer)."""
        if self.binary is None:
            return {"adaptor": "the suite's reference (peerpods-conformance adaptor serve)"}
        digest = hashlib.sha256(self.binary.read_bytes()).hexdigest()
        return {
            "adaptor": str(self.binary),
            "adaptor SHA-256": digest,
            "adaptor's own version": _version_output(self.binary),
        }

    def close(self) -> None:
        """Stop every idle adaptor, then any other process still running (an interrupted start's),
        then remove the run's directory, which no process then writes into (an adaptor makes
        its socket's and pods' folders again if they are gone)."""
        for waiting in self._idle.values():
            for running in waiting:
                self.stop(running)
        self._idle.clear()
        for process in self._processes:
            terminate(process, STOP_TIMEOUT_S)
        self._processes.clear()
        shutil.rmtree(self.run_dir, ignore_errors=True)


def _spawn_here(argv: Sequence[str], environment: Mapping[str, str], output: IO[Any]) -> Process:
    """Start the adaptor in the suite's own namespaces, dying with the suite."""
    return local[argv[0]][list(argv[1:])].popen(
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
        env={**_base_environment(), **environment},
    )


_LAUNCHERS = itertools.count(1)


def _remove_dead_runs(base: Path) -> None:
    """Folders of runs killed half-way (their pid, in the name, is gone): removed, never a live one's.
    Their processes died with them (PR_SET_PDEATHSIG, or with their isolated LPAR)."""
    for folder in base.glob(f"{RUNS_PREFIX}*-*"):
        pid = folder.name.removeprefix(RUNS_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def _short_base() -> str:
    """Where the run's adaptor folders go: ``/run`` (as CAA's own ``/run/peerpod``) when it can
    write there, else the temporary folder. A sandbox's agent socket sits 78 characters below
    its pods folder, and a unix socket's path holds 107."""
    return "/run" if os.access("/run", os.W_OK) else tempfile.gettempdir()


def _key(environment: Mapping[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset(environment.items())


def _base_environment() -> dict[str, str]:
    """The suite's own environment, less what must not leak into the adaptor's configuration."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("LIBVIRT_", "PEERPODS_"))}


def _tail(log: Path) -> str:
    try:
        text = log.read_text(errors="replace").strip()
    except OSError:
        return "(no output)"
    lines = text.splitlines()[-12:]
    return "\n".join(lines)[-1500:] if lines else "(no output)"


def _version_output(binary: Path) -> str:
    for flag in ("version", "-version", "--version"):  # CAA: the `version` sub-command
        try:
            code, out, err = local[str(binary)][flag].run(retcode=None, timeout=10)
        except Exception as exc:
            return f"(not known: {exc})"
        text = (out or err).strip()
        if code == 0 and text:
            return text.splitlines()[0][:200]
    return "(not known)"
