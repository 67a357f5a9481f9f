"""Named network namespaces for the isolated LPAR: made, entered, emptied and removed with ``ip``.

Every namespace a run makes is named ``ppc-<pid>-<n>`` (a pod's: ``ppc-<pid>-<n>-pod<k>``),
where ``pid`` is the run's own process. A run killed half-way leaves its namespaces, and
the processes in them, behind; the next run finds them by that name and removes the ones
whose owner is gone (:func:`remove_stale`), never another live run's.

An owner is identified by its pid, the pid's start time and the boot id, all recorded at
start (:class:`Owner`), so a pid reused after the owner died, or after a reboot, is not
mistaken for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from plumbum import local
from plumbum.commands.base import BaseCommand

from sim.errors import TargetError

PREFIX = "ppc-"
#: Where ``ip netns add`` pins a namespace; a process enters it by this path.
NETNS_DIR = Path("/run/netns")
NAME = re.compile(r"^ppc-(?P<pid>\d+)-(?P<n>\d+)(?:-pod(?P<pod>\d+))?$")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
#: The interface a pod's namespace gets, as a CNI plugin names it.
POD_INTERFACE = "eth0"
#: A node namespace's port on the pod VMs' bridge: this prefix and the node's index.
NODE_PORT_PREFIX = "ppcnode"

Log = Callable[[str], None]


def ip() -> BaseCommand:
    """``ip`` (iproute2) through plumbum."""
    return local["ip"]


def _run(command: BaseCommand) -> str:
    returncode, stdout, stderr = command.run(retcode=None)
    if returncode != 0:
        raise TargetError(f"`{' '.join(command.formulate())}` failed ({returncode}): {str(stderr).strip()}")
    return str(stdout)


def path(name: str) -> Path:
    """The namespace's file: what a process (or CAA's networkNamespacePath) opens to enter it."""
    return NETNS_DIR / name


def names() -> list[str]:
    """Every named network namespace on the machine."""
    return [line.split()[0] for line in _run(ip()["netns", "list"]).splitlines() if line.strip()]


def add(name: str) -> None:
    """A new namespace with its loopback up."""
    _run(ip()["netns", "add", name])
    _run(ip()["-n", name, "link", "set", "lo", "up"])


def pids(name: str) -> list[int]:
    """The processes in the namespace (zombies are not listed: they have no namespace left)."""
    returncode, stdout, _ = ip()["netns", "pids", name].run(retcode=None)
    if returncode != 0:  # the namespace is already gone
        return []
    return [int(field) for field in str(stdout).split()]


def _signal_all(name: str, signum: int) -> None:
    for pid in pids(name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _wait_empty(name: str, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = pids(name)
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = pids(name)
    return left


def empty(name: str, *, grace: float = 3.0) -> list[int]:
    """Stop every process in the namespace: SIGTERM, then SIGKILL after ``grace`` s; the survivors."""
    _signal_all(name, signal.SIGTERM)
    if not _wait_empty(name, grace):
        return []
    _signal_all(name, signal.SIGKILL)
    return _wait_empty(name, 2.0)


def delete(name: str) -> None:
    """Remove the namespace (its processes first); no error when it is already gone."""
    if not path(name).exists() and name not in names():
        return
    survivors = empty(name)
    if survivors:
        raise TargetError(f"network namespace {name}: processes {survivors} survive SIGKILL")
    _run(ip()["netns", "delete", name])


@dataclass(frozen=True)
class Owner:
    """The process a run's namespaces belong to."""

    pid: int
    start_time: int | None
    boot_id: str | None

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(pid, _start_time(pid), _boot_id())

    def alive(self) -> bool:
        """The same process still runs (not merely a process with the same pid)."""
        if not Path(f"/proc/{self.pid}").exists():
            return False
        if self.boot_id is not None and self.boot_id != _boot_id():
            return False
        return self.start_time is None or self.start_time == _start_time(self.pid)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Owner:
        data = json.loads(text)
        return cls(int(data["pid"]), data.get("start_time"), data.get("boot_id"))


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _boot_id() -> str | None:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return None


def owner_of(name: str, records: Path) -> Owner | None:
    """The owner of a namespace named by this module: its record in ``records``, else its pid."""
    match = NAME.match(name)
    if match is None:
        return None
    lpar = name.split("-pod", 1)[0]
    try:
        return Owner.from_json((records / lpar / "owner.json").read_text())
    except (OSError, ValueError, KeyError):
        return Owner(int(match["pid"]), None, None)


def remove_stale(records: Path, *, log: Log = lambda message: None) -> list[str]:
    """Remove what dead runs left: their namespaces (processes first) and run directories.

    ``records`` holds one directory per run, named like its namespace, with the owner's
    ``owner.json``. A namespace or directory whose owner still runs is left alone.
    """
    removed: list[str] = []
    for name in names():
        owner = owner_of(name, records)
        if owner is None or owner.alive():
            continue
        log(f"removing network namespace {name} left by pid {owner.pid}")
        delete(name)
        removed.append(name)
    if records.is_dir():
        for directory in sorted(records.iterdir()):
            owner = owner_of(directory.name, records)
            if owner is None or owner.alive() or path(directory.name).exists():
                continue
            log(f"removing {directory} left by pid {owner.pid}")
            _remove_tree(directory)
            removed.append(str(directory))
    return removed


def _remove_tree(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    if directory.exists():
        raise TargetError(f"cannot remove {directory}")


@dataclass(frozen=True)
class PodNetns:
    """A pod sandbox's network namespace, as a CNI plugin leaves it for Kata.

    One interface (``eth0``) with the pod's address and a default route through the
    gateway, the other end of its veth pair in the LPAR's namespace: what CAA reads
    (interface, address, routes) from the ``networkNamespacePath`` the shim passes it.
    """

    name: str
    path: Path
    interface: str
    address: IPv4Interface
    gateway: IPv4Interface
    #: The veth end in the LPAR's namespace (the worker side, like a CNI bridge port).
    host_interface: str


def add_on_bridge(
    name: str, host: str, bridge: str, index: int, address: IPv4Interface, gateway: IPv4Interface
) -> PodNetns:
    """Make namespace ``name`` a host on ``bridge`` of namespace ``host``: an ``eth0`` with
    ``address`` whose veth peer is a port of the bridge, and a default route via ``gateway``
    (a worker node beside the pod VMs on their network)."""
    host_interface = f"{NODE_PORT_PREFIX}{index}"
    host_side = [["link", "set", host_interface, "master", bridge, "up"]]
    return _wired(name, host, host_interface, host_side, address, gateway)


def add_pod(name: str, host: str, index: int, subnet: IPv4Network) -> PodNetns:
    """Make pod namespace ``name`` wired to the LPAR namespace ``host`` on ``subnet``'s ``index``-th /24."""
    blocks: Iterator[IPv4Network] = subnet.subnets(new_prefix=24)
    block = next((b for i, b in enumerate(blocks) if i == index), None)
    if block is None:
        raise TargetError(f"pod subnet {subnet} has no /24 number {index} left for pod namespace {name}")
    hosts = block.hosts()
    gateway = IPv4Interface(f"{next(hosts)}/{block.prefixlen}")
    address = IPv4Interface(f"{next(hosts)}/{block.prefixlen}")
    host_interface = f"ppcpod{index}"
    host_side = [["addr", "add", str(gateway), "dev", host_interface], ["link", "set", host_interface, "up"]]
    return _wired(name, host, host_interface, host_side, address, gateway)


def _wired(
    name: str,
    host: str,
    host_interface: str,
    host_side: list[list[str]],
    address: IPv4Interface,
    gateway: IPv4Interface,
) -> PodNetns:
    """Namespace ``name`` with an ``eth0`` at ``address`` and a default route via ``gateway``,
    its veth peer ``host_interface`` in ``host`` set up by the ``ip`` commands ``host_side``."""
    add(name)
    try:
        _run(ip()["-n", host, "link", "add", host_interface, "type", "veth", "peer", "name", POD_INTERFACE,
                  "netns", name])  # fmt: skip
        for command in host_side:
            _run(ip()["-n", host, *command])
        _run(ip()["-n", name, "addr", "add", str(address), "dev", POD_INTERFACE])
        _run(ip()["-n", name, "link", "set", POD_INTERFACE, "up"])
        _run(ip()["-n", name, "route", "add", "default", "via", str(gateway.ip), "dev", POD_INTERFACE])
    except BaseException:
        delete(name)
        raise
    return PodNetns(name, path(name), POD_INTERFACE, address, gateway, host_interface)
