"""Start and stop a real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-scheduler.

The binaries come from :mod:`sim.harness.targets.cluster.build`. Every run gets its own directory under
``$TMPDIR/peerpods-controlplane/`` (data, certificates, logs, kubeconfigs, the pids of its
processes and the pid of the Python process that owns it); :meth:`ControlPlane.stop` stops
the processes and removes the directory. Two things make a killed run harmless to the
next one: the processes are started with ``PR_SET_PDEATHSIG`` (the kernel kills them when
their parent dies), and :func:`clean_stale_runs`, called before each start, kills what a
dead owner's pid file still lists (after checking the process really belongs to that run
directory) and removes the directory.

Settings, and why:

* kube-apiserver: client-certificate authentication (the suite is ``system:masters``,
  kube-scheduler ``system:kube-scheduler``), ``--authorization-mode=Node,RBAC`` as in
  production; the default admission plugins minus ``ServiceAccount`` (no
  kube-controller-manager runs, so no namespace gets its ``default`` service account,
  which that plugin requires of every pod); priority-and-fairness off (one client).
* kube-scheduler: the default profile, leader election off, and the retry back-off of
  unschedulable pods cut to 1 s (default 1-10 s) so a freed unit reaches a waiting pod
  within a second.
* etcd: ``--unsafe-no-fsync`` (throw-away data).

Ports are chosen free on 127.0.0.1; a component that finds its port taken (another
process bound it first) is restarted on other ports, up to :data:`PORT_ATTEMPTS` times.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from plumbum import local

from sim.errors import TargetError
from sim.harness.targets.cluster.build import ControlPlaneBinaries
from sim.harness.targets.cluster.pki import KeyPair, Pki
from sim.ports import free_port
from sim.processes import Process, die_with_parent, terminate

RUNS_DIR_NAME = "peerpods-controlplane"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 3
LOG_TAIL_LINES = 30
SERVICE_CIDR = "10.96.0.0/16"
ADDRESS_IN_USE = ("address already in use", "bind: address already in use")


def runs_root() -> Path:
    return Path(tempfile.gettempdir()) / RUNS_DIR_NAME


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), deepest first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = list(children.get(pid, []))
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found[::-1]


def clean_stale_runs(root: Path | None = None, log: Callable[[str], None] | None = None) -> list[Path]:
    """Kill and remove what runs whose owner died left behind; returns the directories removed."""
    root = root or runs_root()
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for run in sorted(root.iterdir()):
        if not run.is_dir():
            continue
        try:
            owner = int((run / "owner.pid").read_text().strip())
        except (OSError, ValueError):  # not written yet (or lost): the owner its name carries
            owner = _owner_in_name(run.name)
        if owner > 0 and _pid_alive(owner):
            continue  # a live run of another process
        for line in _read_lines(run / "pids"):
            name, pid_text, *rest = [*line.split(" ", 2), ""]
            marker = rest[0].strip() or str(run)
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                pid = int(pid_text)
                if marker in _cmdline(pid):  # never a recycled pid of someone else
                    for child in _descendants(pid):  # a server's workers, before they are orphaned
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.kill(child, signal.SIGKILL)
                    os.kill(pid, signal.SIGKILL)
                    if log:
                        log(f"killed stale {name} (pid {pid}) of {run}")
        shutil.rmtree(run, ignore_errors=True)
        removed.append(run)
        if log:
            log(f"removed stale control plane directory {run}")
    return removed


def _owner_in_name(name: str) -> int:
    """The pid in a run directory's name (``run-<pid>-<random>``), or -1."""
    parts = name.split("-")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else -1


def _read_lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return []


class ControlPlaneError(TargetError):
    """A component would not start; the message carries its command and log tail."""


@dataclass
class Component:
    """One running process of the control plane."""

    name: str
    process: Process  # plumbum's Popen
    log: Path
    port: int
    command: list[str] = field(default_factory=list)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.rstrip().splitlines()[-lines:])


class _PortTaken(Exception):
    pass


class ControlPlane:
    """etcd + kube-apiserver + kube-scheduler of one run; :meth:`start`, then :meth:`stop`."""

    def __init__(
        self,
        binaries: ControlPlaneBinaries,
        *,
        root: Path | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
        log: Callable[[str], None] | None = None,
        scheduler_qps: int | None = None,
    ) -> None:
        self.binaries = binaries
        #: kube-scheduler's client rate limit (requests/s; default 50, burst 100, as installed)
        self.scheduler_qps = scheduler_qps
        self.root = root or runs_root()
        self.ready_timeout = ready_timeout
        self._log = log or (lambda line: None)
        self.components: dict[str, Component] = {}
        self.run_dir: Path | None = None
        self.kubeconfig: Path | None = None
        self.api_port: int | None = None
        self.ready_seconds: float | None = None
        self._pki: Pki | None = None
        self._admin: KeyPair | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ControlPlane:
        started = time.monotonic()
        clean_stale_runs(self.root, self._log)
        self.root.mkdir(parents=True, exist_ok=True)
        # the owner in the name too: another run cleaning up between mkdtemp and owner.pid
        # (two workers starting together) must not take this one for a dead run's
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=self.root))
        (self.run_dir / "owner.pid").write_text(f"{os.getpid()}\n")
        try:
            self._pki = Pki(self.run_dir / "pki")
            self._admin = self._pki.issue(
                "admin", "peerpods-conformance", organization="system:masters", client=True
            )
            self._with_ports("etcd", self._start_etcd)
            self._with_ports("kube-apiserver", self._start_apiserver)
            self.kubeconfig = self._write_kubeconfig("admin.kubeconfig", self._admin)
            self._with_ports("kube-scheduler", self._start_scheduler)
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL) and remove the run directory."""
        for name in ("kube-scheduler", "kube-apiserver", "etcd"):
            component = self.components.pop(name, None)
            if component is not None:
                _terminate(component.process)
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pids(self) -> list[int]:
        return [component.process.pid for component in self.components.values()]

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def versions(self) -> dict[str, str]:
        return {
            "kube-apiserver": self.binaries.kubernetes_version,
            "kube-scheduler": self.binaries.kubernetes_version,
            "etcd": self.binaries.etcd_version,
        }

    # ------------------------------------------------------------------ components
    def _with_ports(self, name: str, start: Callable[[], Component]) -> None:
        for attempt in range(PORT_ATTEMPTS):
            component = start()
            self.components[name] = component
            self._record_pid(component)
            try:
                self._wait_ready(component)
                self._log(f"{name} ready on 127.0.0.1:{component.port}")
                return
            except _PortTaken:
                self._log(f"{name}: port {component.port} was taken; trying another (attempt {attempt + 2})")
                _terminate(component.process)
                del self.components[name]
        raise ControlPlaneError(f"{name}: no free loopback port after {PORT_ATTEMPTS} attempts")

    def _record_pid(self, component: Component) -> None:
        self.record_process(component.name, component.process.pid)

    def record_process(self, name: str, pid: int, marker: str | None = None) -> None:
        """Note a process of this run (``marker``: a string of its command line, by default the
        run directory), so that the next run kills it if this one is killed."""
        assert self.run_dir is not None
        with (self.run_dir / "pids").open("a") as handle:
            handle.write(f"{name} {pid}{' ' + marker if marker else ''}\n")

    def _launch(self, name: str, binary: str, args: Sequence[str], port: int) -> Component:
        assert self.run_dir is not None
        log = self.run_dir / f"{name}.log"
        path = self.binaries.path(binary)
        if not path.is_file():
            raise ControlPlaneError(f"{name}: {path} is missing; run `peerpods-conformance cluster prepare`")
        command = local[str(path)][list(args)]
        with log.open("ab") as handle:
            process = command.popen(
                stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
        return Component(name, process, log, port, [str(path), *args])

    def _start_etcd(self) -> Component:
        assert self.run_dir is not None
        client, peer = free_port(), free_port()
        data = self.run_dir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)
        args = [
            "--name=default",
            f"--data-dir={data}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
        return self._launch("etcd", "etcd", args, client)

    def _start_apiserver(self) -> Component:
        assert self.run_dir is not None and self._pki is not None
        port = free_port()
        self.api_port = port
        serving = self._pki.issue(
            "apiserver",
            "kube-apiserver",
            server_names=("127.0.0.1", "localhost", "10.96.0.1", "kubernetes", "kubernetes.default.svc"),
        )
        sa_key = self._pki.service_account_key()
        etcd = self.components["etcd"]
        args = [
            f"--etcd-servers=http://127.0.0.1:{etcd.port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.run_dir / 'apiserver-certs'}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={self._pki.ca}",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--disable-admission-plugins=ServiceAccount",
            "--enable-priority-and-fairness=false",
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--v=1",
        ]
        return self._launch("kube-apiserver", "kube-apiserver", args, port)

    def _start_scheduler(self) -> Component:
        assert self.run_dir is not None and self._pki is not None
        port = free_port()
        client = self._pki.issue("scheduler-client", "system:kube-scheduler", client=True)
        serving = self._pki.issue("scheduler", "kube-scheduler", server_names=("127.0.0.1", "localhost"))
        kubeconfig = self._write_kubeconfig("scheduler.kubeconfig", client)
        config = self.run_dir / "scheduler-config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": {
                        "kubeconfig": str(kubeconfig),
                        **(
                            {"qps": self.scheduler_qps, "burst": 2 * self.scheduler_qps}
                            if self.scheduler_qps
                            else {}
                        ),
                    },
                    "leaderElection": {"leaderElect": False},
                    "podInitialBackoffSeconds": 1,
                    "podMaxBackoffSeconds": 1,
                }
            )
        )
        args = [
            f"--config={config}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            "--v=1",
        ]
        return self._launch("kube-scheduler", "kube-scheduler", args, port)

    # ------------------------------------------------------------------ readiness
    def _wait_ready(self, component: Component) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while not self._ready(component):
            if component.process.poll() is not None:
                tail = component.log_tail()
                if any(marker in tail.lower() for marker in ADDRESS_IN_USE):
                    raise _PortTaken
                raise ControlPlaneError(
                    f"{component.name} exited with status {component.process.returncode} "
                    "before it was ready\n"
                    f"command: {' '.join(component.command)}\nlast lines of {component.log}:\n{tail}"
                )
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{component.name} not ready within {self.ready_timeout:.0f} s\n"
                    f"command: {' '.join(component.command)}\nlast lines of {component.log}:\n"
                    f"{component.log_tail()}"
                )
            time.sleep(0.05)

    def _ready(self, component: Component) -> bool:
        if component.name == "etcd":
            return _http_ok(http.client.HTTPConnection("127.0.0.1", component.port, timeout=1.0), "/health")
        context = self.ssl_context()
        path = "/readyz" if component.name == "kube-apiserver" else "/healthz"
        return _http_ok(
            http.client.HTTPSConnection("127.0.0.1", component.port, context=context, timeout=2.0), path
        )

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the control plane's CA, presenting the admin certificate."""
        assert self._pki is not None and self._admin is not None
        context = ssl.create_default_context(cafile=str(self._pki.ca))
        context.load_cert_chain(str(self._admin.cert), str(self._admin.key))
        return context

    def _write_kubeconfig(self, name: str, pair: KeyPair) -> Path:
        assert self.run_dir is not None and self._pki is not None
        path = self.run_dir / name
        config: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.server, "certificate-authority": str(self._pki.ca)},
                }
            ],
            "users": [
                {"name": "user", "user": {"client-certificate": str(pair.cert), "client-key": str(pair.key)}}
            ],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "user"}}],
            "current-context": "local",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def log_tails(self) -> str:
        return "\n".join(f"--- {c.name} ---\n{c.log_tail()}" for c in self.components.values())


def _http_ok(conn: http.client.HTTPConnection, path: str) -> bool:
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            return False
        if path == "/health":
            return bool(json.loads(body or b"{}").get("health") == "true")
        return True
    except (OSError, http.client.HTTPException, ValueError):
        return False
    finally:
        conn.close()


def _terminate(process: Process, timeout: float = STOP_TIMEOUT_S) -> None:
    terminate(process, timeout)
