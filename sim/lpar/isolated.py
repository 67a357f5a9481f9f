"""An isolated LPAR host: a private libvirtd in a network namespace the run made.

It stands for the KVM host of one IBM Z LPAR, with nothing shared with the machine's own
libvirt: its own ``libvirtd`` and ``virtlogd`` run inside a new network namespace
(``ppc-<pid>-<n>``) and a private mount namespace where ``/run/libvirt``, ``/var/lib/libvirt``,
``/var/cache/libvirt``, ``/var/log/libvirt`` and ``/etc/libvirt`` are bind mounts of
directories of this run (``<base>/<name>/``). From the root namespace those directories
are ordinary paths, so the suite and an adaptor reach the daemon by its socket:
``qemu:///system?socket=<base>/<name>/run/libvirt-sock``.

Inside, the host has what CAA's libvirt provider expects of a default install: a network
``default`` (a bridge with an address and a DHCP range, no forwarding) and a dir storage
pool ``default``. The namespace's default route goes through that bridge: CAA refuses to
start without a default route ("failed to identify the host primary interface"), and the
address of the interface holding it is the worker address a pod VM's tunnel goes back to,
which a guest on the bridge reaches without a router. Processes the run starts inside
(the adaptor) come from :meth:`IsolatedLpar.popen` and :meth:`IsolatedLpar.run`; a pod
sandbox's namespace from :meth:`IsolatedLpar.pod_netns`.

All traffic stays inside: the pod VMs, dnsmasq and the adaptor live in the namespace, whose
only links are its bridge and the pods' veth pairs. On exit everything is removed (domains,
networks, pools, the daemons, QEMU, the namespaces, the directories); a run killed
half-way is cleaned up by the next one (:func:`sim.lpar.netns.remove_stale`).

libvirtd runs under ``tini -s`` for the reason given in :mod:`sim.lpar.host`. QEMU's
capabilities, which libvirtd probes once per emulator binary (about 8 s for the 14 of
qemu-system-misc here), are kept between runs in the LPAR cache and copied in at start.
libvirtd itself is pinned to one CPU (its QEMU processes are not: libvirt gives them every
host CPU): libvirt 9.0 drops its cached capabilities of the KVM emulators when the host's
CPUID differs from the one it recorded ("host cpuid changed"), and in a virtual machine the
CPUID differs between vCPUs, so an unpinned libvirtd re-probed i386 and x86_64 on about
half of its starts (+1.5-2 s).
"""

from __future__ import annotations

import functools
import grp
import itertools
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from plumbum import local
from plumbum.commands.base import BaseCommand

from sim.errors import ConformanceInputError, TargetError
from sim.lpar import netns
from sim.lpar.assets import default_cache_dir
from sim.lpar.host import REAPER, import_libvirt

#: Where each run's directory is made, unless given (PEERPODS_LPAR_DIR overrides).
DEFAULT_BASE = Path("/var/tmp/peerpods-lpar")
BASE_ENV = "PEERPODS_LPAR_DIR"
NETWORK = "default"
POOL = "default"
BRIDGE = "virbr0"
#: libvirt's namespace for options passed to the network's dnsmasq as they are.
DNSMASQ_XMLNS = "http://libvirt.org/schemas/network/dnsmasq/1.0"
#: The pod VMs' network inside the namespace; private addresses never leave it.
DEFAULT_SUBNET = IPv4Network("192.168.150.0/24")
#: Addresses at the top of the pod VMs' subnet kept out of DHCP, for worker node namespaces.
NODE_ADDRESSES = 16
#: The pod sandboxes' addresses (one /24 each) inside their own namespaces.
DEFAULT_POD_SUBNET = IPv4Network("10.244.0.0/16")
#: libvirt's directories, each replaced by a directory of the run (mode of the original).
PRIVATE_DIRS = {
    "run": (Path("/run/libvirt"), 0o755),
    "lib": (Path("/var/lib/libvirt"), 0o755),
    "cache": (Path("/var/cache/libvirt"), 0o711),
    "log": (Path("/var/log/libvirt"), 0o755),
    "etc": (Path("/etc/libvirt"), 0o755),
}
SYSTEM_CONFIG = Path("/etc/libvirt")
#: Empty in the private /etc/libvirt: the system's domains, networks, pools, secrets, hooks.
DEFINITION_DIRS = ("qemu", "qemu/networks", "qemu/autostart", "storage", "secrets", "hooks")
TOOLS = ("ip", "unshare", "taskset", "libvirtd", "virtlogd", REAPER, "dnsmasq", "iptables")
PACKAGES_HINT = "apt-get install iproute2 util-linux libvirt-daemon-system dnsmasq-base iptables tini"
CAPABILITIES = Path("qemu") / "capabilities"
DEV_KVM = Path("/dev/kvm")
KVM_GROUP = "kvm"
KVM_NODE = "kvm"
SOCKET_MAX = 107  # sun_path holds 108 bytes with its NUL
LOG_TAIL = 1200

Log = Callable[[str], None]
#: plumbum's Popen: a subprocess.Popen with plumbum's additions (bytes streams unless asked)
Process = Any

# The daemons' command, run by `ip netns exec NAME unshare --mount --propagation private`:
# bind the run's directories over libvirt's, then virtlogd in the background and libvirtd
# in the foreground under the reaper (which then also reaps virtlogd).
_SCRIPT = """set -e
run="$1"; reaper="$2"; kvm="$3"; cpu="$4"; shift 4
for pair in "$@"; do  # <run's subdirectory>:<libvirt's directory>
  mkdir -p "${pair#*:}"
  mount --bind "$run/${pair%%:*}" "${pair#*:}"
done
if [ -n "$kvm" ]; then mount --bind "$kvm" /dev/kvm; fi
virtlogd -p "$run/virtlogd.pid" >>"$run/virtlogd.log" 2>&1 &
exec taskset -c "$cpu" "$reaper" -s -- libvirtd -p "$run/libvirtd.pid" >>"$run/libvirtd.log" 2>&1
"""


class LparHostMissing(ConformanceInputError):
    """The isolated LPAR cannot be made here; the message names what is missing."""


def check_prerequisites() -> None:
    """Root, and every tool the isolated LPAR runs; LparHostMissing naming the missing ones."""
    if os.geteuid() != 0:
        raise LparHostMissing(
            "the isolated LPAR needs root: it creates network namespaces and runs its own libvirtd"
        )
    missing = [tool for tool in TOOLS if _which(tool) is None]
    if missing:
        raise LparHostMissing(f"the isolated LPAR needs {', '.join(missing)}: {PACKAGES_HINT}")


def _check_reachable(base: Path) -> None:
    """QEMU runs as libvirt's own user and opens the pool's volumes: every existing directory
    down to ``base`` must let others through (o+x); LparHostMissing naming the one that does not."""
    for directory in (base, *base.parents):
        if directory.exists() and not directory.stat().st_mode & stat.S_IXOTH:
            raise LparHostMissing(
                f"the isolated LPAR's directory {base} is under {directory}, which libvirt's QEMU user "
                f"cannot enter (mode {stat.S_IMODE(directory.stat().st_mode):o}, no o+x); "
                f"choose another base directory (${BASE_ENV})"
            )


def _make_dir(directory: Path, mode: int) -> None:
    directory.mkdir(mode=mode)
    directory.chmod(mode)


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def default_base() -> Path:
    """$PEERPODS_LPAR_DIR, else /var/tmp/peerpods-lpar."""
    configured = os.environ.get(BASE_ENV)
    return Path(configured) if configured else DEFAULT_BASE


def shared_dir_for(uri: str) -> Path | None:
    """The shared folder of the isolated LPAR whose libvirtd answers at ``uri`` (its
    ``?socket=<run dir>/run/libvirt-sock``), or None for any other URI: a run given such a URI
    (one of several LPARs) puts boot files and consoles where that libvirtd sees them."""
    from urllib.parse import parse_qs, urlsplit

    sockets = parse_qs(urlsplit(uri).query).get("socket", [])
    if len(sockets) != 1:
        return None
    socket = Path(sockets[0])
    shared = socket.parent.parent / "shared"
    if socket.name != "libvirt-sock" or socket.parent.name != "run" or not shared.is_dir():
        return None
    return shared


class IsolatedLpar:
    """The KVM host of one emulated LPAR, private to this run. Use as a context manager.

    ``start()`` (or ``with``) makes the namespace, the daemons, the network and the pool;
    ``stop()`` (or leaving the ``with``) removes all of it, and is safe to call twice.
    """

    _numbers = itertools.count()

    def __init__(
        self,
        *,
        base: Path | None = None,
        subnet: IPv4Network = DEFAULT_SUBNET,
        pod_subnet: IPv4Network = DEFAULT_POD_SUBNET,
        start_timeout: float = 60.0,
        capabilities_cache: Path | None = None,
        log: Log = lambda message: None,
    ) -> None:
        self.base = (base or default_base()).resolve()
        self.subnet = subnet
        self.pod_subnet = pod_subnet
        self.start_timeout = start_timeout
        self.capabilities_cache = capabilities_cache or default_cache_dir() / "libvirt-qemu-capabilities"
        self.log = log
        self.name = ""
        self._daemon: Process | None = None
        self._pods: list[netns.PodNetns] = []
        self._pod_numbers = itertools.count()
        #: seconds per phase of the last start() and stop()
        self.timings: dict[str, float] = {}

    # -- what the suite and the adaptor are given -------------------------------------

    @property
    def run_dir(self) -> Path:
        """This run's directory: libvirt's state, logs and the pool."""
        return self.base / self.name

    @property
    def socket(self) -> Path:
        """The private libvirtd's read-write socket, as seen from the root namespace."""
        return self.run_dir / "run" / "libvirt-sock"

    @property
    def uri(self) -> str:
        """The libvirt URI of this host, for libvirt-python, virsh and CAA's ``-uri``."""
        return f"qemu:///system?socket={self.socket}"

    @property
    def netns_path(self) -> Path:
        """The LPAR's network namespace (where the adaptor runs)."""
        return netns.path(self.name)

    @property
    def pool_dir(self) -> Path:
        """The directory of storage pool ``default`` (LIBVIRT_POOL)."""
        return self.run_dir / "pool"

    @property
    def shared_dir(self) -> Path:
        """A directory at the same path for the suite and for the private daemons and QEMU
        (libvirt's own directories are not: /var/log/libvirt inside is ``<run_dir>/log``
        outside). Put here what a domain's XML names and the suite reads or writes: kernel
        and initramfs files, console logs. Readable by libvirt's QEMU user."""
        return self.run_dir / "shared"

    @property
    def qemu_log_dir(self) -> Path:
        """QEMU's per-domain logs (``<domain>.log``), written by the private virtlogd."""
        return self.run_dir / "log" / "qemu"

    @property
    def bridge_address(self) -> IPv4Interface:
        """The host's address on the pod VMs' network (and its primary interface's)."""
        return IPv4Interface(f"{next(self.subnet.hosts())}/{self.subnet.prefixlen}")

    @property
    def daemon_log(self) -> Path:
        return self.run_dir / "libvirtd.log"

    # -- life cycle ---------------------------------------------------------------------

    def __enter__(self) -> IsolatedLpar:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Make the namespace, start the daemons, define the network and the pool."""
        if self.name:
            raise TargetError(f"isolated LPAR {self.name} is already started")
        check_prerequisites()
        _check_reachable(self.base)
        self.timings = {}
        with self._phase("start: stale runs"):
            netns.remove_stale(self.base, log=self.log)
        self.name = self._new_name()
        if len(str(self.socket)) > SOCKET_MAX:
            name, self.name = self.name, ""
            raise LparHostMissing(
                f"the isolated LPAR's socket path {self.base / name / 'run' / 'libvirt-sock'} is longer "
                f"than {SOCKET_MAX} bytes; choose a shorter base directory (${BASE_ENV})"
            )
        try:
            with self._phase("start: directories"):
                self._make_directories()
            with self._phase("start: namespace"):
                netns.add(self.name)
            with self._phase("start: daemons"):
                self._start_daemons()
            with self._phase("start: network"):
                self._define_network()
            with self._phase("start: pool"):
                self._define_pool()
        except BaseException:
            try:
                self.stop()  # nothing half-made is left; the first failure is the one reported
            except TargetError as exc:
                self.log(str(exc))
            raise
        self.log(f"isolated LPAR {self.name} up: {self.uri}")

    def stop(self) -> None:
        """Remove everything start() made; what cannot be removed is named in a TargetError."""
        if not self.name:
            return
        problems: list[str] = []
        with self._phase("stop: libvirt objects"):
            self._remove_libvirt_objects()
        with self._phase("stop: processes"):
            # the pods' namespaces, with those whose making was interrupted (known by their name only)
            pods = {pod.name for pod in self._pods}
            pods.update(name for name in netns.names() if name.startswith(f"{self.name}-pod"))
            for pod_name in sorted(pods):
                self._attempt(problems, f"pod namespace {pod_name}", netns.delete, pod_name)
            self._pods.clear()
            survivors = netns.empty(self.name)
            if survivors:
                problems.append(f"processes {survivors} in {self.name} survive SIGKILL")
            if self._daemon is not None:
                try:
                    self._daemon.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    problems.append(f"libvirtd's wrapper (pid {self._daemon.pid}) did not exit")
                self._daemon = None
        with self._phase("stop: namespace"):
            self._attempt(problems, f"network namespace {self.name}", netns.delete, self.name)
        with self._phase("stop: directories"):
            if self.run_dir.exists():
                self._attempt(problems, str(self.run_dir), shutil.rmtree, self.run_dir)
        name, self.name = self.name, ""
        if problems:
            raise TargetError(f"isolated LPAR {name} not fully removed: {'; '.join(problems)}")

    # -- processes and pods inside ------------------------------------------------------

    def command(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> BaseCommand:
        """``argv`` inside the LPAR's network namespace; ``env`` is given to that process only
        (through ``env``, so ``ip`` itself never loads an LD_PRELOAD meant for the adaptor)."""
        if not self.name:
            raise TargetError("the isolated LPAR is not started")
        if not argv:
            raise ConformanceInputError("no command to run in the isolated LPAR")
        settings = [f"{key}={value}" for key, value in (env or {}).items()]
        if "=" in argv[0]:
            raise ConformanceInputError(f"command {argv[0]!r}: a program name with '=' cannot be run")
        return local["ip"]["netns", "exec", self.name, "env", *settings, *argv]

    def run(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = 60.0
    ) -> str:
        """Run ``argv`` inside to completion; its stdout, or TargetError with its stderr."""
        command = self.command(argv, env=env)
        returncode, stdout, stderr = command.run(retcode=None, timeout=timeout)
        if returncode != 0:
            raise TargetError(
                f"`{' '.join(argv)}` in {self.name} failed ({returncode}): {str(stderr).strip()[-LOG_TAIL:]}"
            )
        return str(stdout)

    def popen(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
        cwd: Path | None = None,
    ) -> Process:
        """Start ``argv`` inside, in its own session. stop() ends it if the caller has not; the
        caller, its parent, still reaps it (``wait()``)."""
        command = self.command(argv, env=env)
        if cwd is not None:
            command = command.with_cwd(cwd)
        process: Process = command.popen(stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True)
        return process

    def pod_netns(self) -> netns.PodNetns:
        """A pod sandbox's network namespace (an ``eth0`` with an address and a default route),
        wired to the LPAR's namespace; removed by stop() or :meth:`remove_pod_netns`."""
        if not self.name:
            raise TargetError("the isolated LPAR is not started")
        index = next(self._pod_numbers)
        pod = netns.add_pod(f"{self.name}-pod{index}", self.name, index, self.pod_subnet)
        self._pods.append(pod)
        return pod

    def node_netns(self) -> netns.PodNetns:
        """A worker node's network namespace: a host on the pod VMs' network (one of the
        addresses at the top of the subnet, outside the DHCP range) with a default route via
        the bridge, as a worker node of a peer pods cluster reaches its pod VMs. Each node's
        adaptor runs in its own, as on separate machines (CAA's tunnels are named per
        namespace); removed by stop() or :meth:`remove_pod_netns`."""
        if not self.name:
            raise TargetError("the isolated LPAR is not started")
        used = {pod.host_interface for pod in self._pods}
        index = next((i for i in range(NODE_ADDRESSES) if f"{netns.NODE_PORT_PREFIX}{i}" not in used), None)
        if index is None:
            raise TargetError(f"the isolated LPAR has addresses for {NODE_ADDRESSES} node namespaces at once")
        top = list(self.subnet.hosts())[-NODE_ADDRESSES:]
        address = IPv4Interface(f"{top[index]}/{self.subnet.prefixlen}")
        node = netns.add_on_bridge(
            f"{self.name}-node{index}", self.name, BRIDGE, index, address, self.bridge_address
        )
        self._pods.append(node)
        return node

    def remove_pod_netns(self, pod: netns.PodNetns) -> None:
        """Remove a pod's (or node's) namespace (and the processes in it) before stop(). Its veth
        pair goes first, at once: a namespace that something else still refers to (a pod's VXLAN
        device whose underlay is a node's namespace) outlives its name, and its port would
        otherwise linger in the LPAR's namespace and collide with the next one of that name."""
        netns.ip()["-n", self.name, "link", "del", pod.host_interface].run(retcode=None)
        netns.delete(pod.name)
        self._pods = [kept for kept in self._pods if kept.name != pod.name]

    def connect(self) -> Any:
        """A libvirt connection to this host (the caller closes it)."""
        libvirt = import_libvirt()
        try:
            return libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise TargetError(
                f"cannot connect to the isolated LPAR's libvirtd at {self.uri}: {exc.get_error_message()}"
                f"{self._log_tail()}"
            ) from None

    def leftovers(self) -> list[str]:
        """What of this host still exists (empty after stop()): namespaces, processes, directories."""
        if not self.name:
            return []
        found = [name for name in netns.names() if name == self.name or name.startswith(f"{self.name}-")]
        found += [f"pid {pid}" for pid in netns.pids(self.name)]
        if self.run_dir.exists():
            found.append(str(self.run_dir))
        return found

    # -- the steps ------------------------------------------------------------------------

    def _new_name(self) -> str:
        existing = set(netns.names())
        while True:
            name = f"{netns.PREFIX}{os.getpid()}-{next(self._numbers)}"
            if name not in existing and not (self.base / name).exists():
                return name

    def _make_directories(self) -> None:
        # modes set explicitly, whatever the umask: libvirt's QEMU user walks down to the pool
        for directory in reversed([self.base, *self.base.parents]):
            if not directory.exists():
                _make_dir(directory, 0o755)
        _make_dir(self.run_dir, 0o755)
        (self.run_dir / "owner.json").write_text(netns.Owner.current().to_json())
        for private, (_, mode) in PRIVATE_DIRS.items():
            _make_dir(self.run_dir / private, mode)
        etc = self.run_dir / "etc"
        # the daemons' settings, none of the system's definitions (domains, networks, pools...)
        for conf in SYSTEM_CONFIG.glob("*.conf"):
            shutil.copy2(conf, etc / conf.name)
        if (SYSTEM_CONFIG / "nwfilter").is_dir():
            shutil.copytree(SYSTEM_CONFIG / "nwfilter", etc / "nwfilter")
        for definitions in DEFINITION_DIRS:
            (etc / definitions).mkdir(parents=True, exist_ok=True)
        _make_dir(self.pool_dir, 0o755)
        _make_dir(self.shared_dir, 0o755)
        if self.capabilities_cache.is_dir():
            shutil.copytree(self.capabilities_cache, self.run_dir / "cache" / CAPABILITIES)

    def _kvm_node(self) -> Path | None:
        """/dev/kvm as a KVM host's udev leaves it (group kvm, 0660), for the private daemons only.

        libvirt runs QEMU as its own user (Debian: libvirt-qemu, in group kvm). Where no udev
        set up /dev/kvm (a container, a micro-VM: root-only 0600), KVM guests fail with "Could
        not access KVM kernel module: Permission denied" and libvirt re-probes the KVM
        emulators' capabilities on each call (2 s here). The run's own device node, bound
        over /dev/kvm in the private mount namespace, changes nothing outside it.
        """
        node = self.run_dir / KVM_NODE
        if node.exists():
            return node
        try:
            device = DEV_KVM.stat()
            group = grp.getgrnam(KVM_GROUP).gr_gid
        except (OSError, KeyError):
            return None
        if not stat.S_ISCHR(device.st_mode):
            return None
        try:
            os.mknod(node, stat.S_IFCHR | 0o660, device.st_rdev)
            os.chown(node, 0, group)
            node.chmod(0o660)
        except OSError as exc:  # a nodev file system: the system's /dev/kvm as it is
            self.log(f"no private /dev/kvm for {self.name} ({exc}); KVM guests use the system's")
            return None
        return node

    def _start_daemons(self) -> None:
        reaper = _which(REAPER) or REAPER
        cpu = min(os.sched_getaffinity(0))
        command = local["ip"][
            "netns", "exec", self.name, "unshare", "--mount", "--propagation", "private",
            "sh", "-c", _SCRIPT, "sh", str(self.run_dir), reaper, str(self._kvm_node() or ""), str(cpu),
            *(f"{private}:{system}" for private, (system, _) in PRIVATE_DIRS.items()),
        ]  # fmt: skip
        self.log(f"starting libvirtd and virtlogd in {self.name}")
        daemon: Process = command.popen(
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        self._daemon = daemon
        libvirt = import_libvirt()
        deadline = time.monotonic() + self.start_timeout
        while True:
            if daemon.poll() is not None:
                raise TargetError(
                    f"libvirtd in {self.name} exited at start ({daemon.returncode}){self._log_tail()}"
                )
            if self.socket.exists():
                try:
                    connection = libvirt.open(self.uri)
                except libvirt.libvirtError:
                    connection = None
                if connection is not None:
                    # the first capabilities call probes every QEMU binary: done here, not in
                    # the adaptor's first call
                    try:
                        connection.getCapabilities()
                    except libvirt.libvirtError as exc:
                        raise TargetError(
                            f"libvirtd in {self.name} cannot list its capabilities: "
                            f"{exc.get_error_message()}{self._log_tail()}"
                        ) from None
                    finally:
                        connection.close()
                    break
            if time.monotonic() > deadline:
                raise TargetError(
                    f"libvirtd in {self.name} did not answer on {self.socket} within "
                    f"{self.start_timeout:.0f} s{self._log_tail()}"
                )
            time.sleep(0.05)
        self._keep_capabilities()

    def _keep_capabilities(self) -> None:
        """Copy libvirtd's probed QEMU capabilities to the LPAR cache for the next run."""
        probed = self.run_dir / "cache" / CAPABILITIES
        if not probed.is_dir():
            return
        self.capabilities_cache.mkdir(parents=True, exist_ok=True)
        for entry in probed.glob("*.xml"):
            target = self.capabilities_cache / entry.name
            if not target.exists() or target.stat().st_mtime < entry.stat().st_mtime:
                partial = target.with_suffix(".partial")
                shutil.copy2(entry, partial)
                partial.replace(target)

    def _define_network(self) -> None:
        hosts = list(itertools.islice(self.subnet.hosts(), 2, None))[:-NODE_ADDRESSES]
        if len(hosts) < 2:
            raise ConformanceInputError(f"pod VM subnet {self.subnet} is too small for a DHCP range")
        xml = (
            f"<network xmlns:dnsmasq='{DNSMASQ_XMLNS}'><name>{NETWORK}</name>"
            f"<bridge name='{BRIDGE}' stp='off' delay='0'/>"
            f"<ip address='{self.bridge_address.ip}' netmask='{self.subnet.netmask}'>"
            f"<dhcp><range start='{hosts[0]}' end='{hosts[-1]}'/></dhcp></ip>"
            "<dnsmasq:options><dnsmasq:option value='no-ping'/></dnsmasq:options></network>"
        )
        connection = self.connect()
        try:
            network = connection.networkDefineXML(xml)
            network.create()
            network.setAutostart(False)
        finally:
            connection.close()
        netns.ip()["-n", self.name, "route", "add", "default", "dev", BRIDGE].run()

    def _define_pool(self) -> None:
        xml = f"<pool type='dir'><name>{POOL}</name><target><path>{self.pool_dir}</path></target></pool>"
        connection = self.connect()
        try:
            pool = connection.storagePoolDefineXML(xml, 0)
            pool.create(0)
        finally:
            connection.close()

    def _remove_libvirt_objects(self) -> None:
        """Destroy and undefine every domain, network and pool through the private libvirtd.

        A courtesy, so that QEMU and dnsmasq stop the way libvirt stops them: what fails here
        (a domain that crashed meanwhile, a daemon that died) goes anyway when every process
        of the namespace is ended and the run's directory, which holds all of libvirt's
        state, is removed.
        """
        if self._daemon is None or self._daemon.poll() is not None or not self.socket.exists():
            return
        libvirt = import_libvirt()
        try:
            connection = libvirt.open(self.uri)
        except libvirt.libvirtError:
            return
        undefine = (
            libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        )
        try:
            for domain in connection.listAllDomains(0):
                self._quietly(libvirt, f"domain {domain.name()}", domain.destroy, domain.isActive)
                remove = functools.partial(domain.undefineFlags, undefine)
                self._quietly(libvirt, f"domain {domain.name()}", remove, domain.isPersistent)
            for network in connection.listAllNetworks(0):
                self._quietly(libvirt, f"network {network.name()}", network.destroy, network.isActive)
                self._quietly(libvirt, f"network {network.name()}", network.undefine, network.isPersistent)
            for pool in connection.listAllStoragePools(0):
                self._quietly(libvirt, f"pool {pool.name()}", pool.destroy, pool.isActive)
                self._quietly(libvirt, f"pool {pool.name()}", pool.undefine, pool.isPersistent)
        except libvirt.libvirtError as exc:
            self.log(f"{self.name}: listing libvirt objects failed at teardown: {exc.get_error_message()}")
        finally:
            connection.close()

    def _quietly(
        self, libvirt: Any, what: str, action: Callable[[], object], needed: Callable[[], object]
    ) -> None:
        """``action()`` when ``needed()``; a libvirt error (the object changed meanwhile) is only logged."""
        try:
            if needed():
                action()
        except libvirt.libvirtError as exc:
            self.log(f"{self.name}: {what} at teardown: {exc.get_error_message()}")

    def _attempt(self, problems: list[str], what: str, action: Callable[..., object], *args: object) -> None:
        try:
            action(*args)
        except Exception as exc:
            problems.append(f"{what}: {exc}")

    def _phase(self, what: str) -> _Phase:
        return _Phase(self.timings, what)

    def _log_tail(self) -> str:
        try:
            text = self.daemon_log.read_text(errors="replace").strip()
        except OSError:
            return f" (no log at {self.daemon_log})"
        if not text:
            return f" ({self.daemon_log} is empty)"
        return f"; the end of {self.daemon_log}:\n{text[-LOG_TAIL:]}"


class _Phase:
    """Adds the seconds its ``with`` block took to ``timings[what]``."""

    def __init__(self, timings: dict[str, float], what: str) -> None:
        self.timings = timings
        self.what = what
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.what] = self.timings.get(self.what, 0.0) + time.monotonic() - self.started
