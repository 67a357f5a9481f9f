"""The KVM host side of the emulated LPAR: libvirt connection, daemons, pool and network.

A missing or stopped libvirt is the most common reason the ``lpar`` target cannot run, so
every failure here names the URI and the exact fix. On ``qemu:///system`` the suite starts
``virtlogd`` and ``libvirtd`` itself when it runs as root and they are not running (CI
containers have no systemd); otherwise it says how to start them.

libvirtd is started under ``tini -s`` (a child subreaper) when tini is installed. libvirt
daemonizes every QEMU it starts, so a QEMU that exits is reaped by the nearest subreaper,
else by pid 1; until then it is a zombie, which libvirt's kill loop (``kill(pid, 0)`` every
200 ms) still counts as running. Where pid 1 reaps late (a container's or a micro-VM's
init; 1.2-1.6 s on this machine) every pod VM's stop waited that long.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plumbum import local
from plumbum.commands.processes import CommandNotFound

from sim.errors import ConformanceInputError, TargetError

TEST_URI = "test:///default"
SYSTEM_URI = "qemu:///system"
DAEMONS = ("virtlogd", "libvirtd")
#: Reaps libvirtd's QEMU processes the moment they exit (see the module's docstring).
REAPER = "tini"
#: libvirtd's own messages when the suite starts it in the foreground under the reaper.
LIBVIRTD_LOG = Path("/var/log/libvirt/libvirtd.log")
SOCKET = Path("/run/libvirt/libvirt-sock")
PACKAGES_HINT = (
    "apt-get install qemu-system-misc qemu-utils libvirt-daemon-system (or run .ci/setup-lpar-host)"
)
#: Where libvirt-qemu can read kernels (Debian creates it for exactly this purpose).
BOOT_DIR = Path("/var/lib/libvirt/boot")
CONSOLE_DIR = Path("/var/log/libvirt/qemu")
DEFAULT_POOL_PATH = Path("/var/lib/libvirt/images")


def import_libvirt() -> Any:
    """The libvirt module, or an input error saying how to install it."""
    try:
        import libvirt
    except ImportError:
        raise ConformanceInputError(
            "the lpar target needs libvirt-python: apt-get install libvirt-dev pkg-config, then "
            "pip install -e '.[lpar]'"
        ) from None
    # libvirt prints every error to stderr by default; the suite reports them itself.
    libvirt.registerErrorHandler(_quiet, None)
    return libvirt


def _quiet(_context: object, _error: object) -> None:
    """Swallow libvirt's default stderr print; errors still raise libvirtError."""


def _running(name: str) -> bool:
    pidfile = Path(f"/run/{name}.pid")
    if pidfile.is_file():
        try:
            os.kill(int(pidfile.read_text().strip()), 0)
            return True
        except (ValueError, ProcessLookupError, PermissionError):
            pass
    try:
        returncode, _, _ = local["pgrep"]["-x", name].run(retcode=None)
    except CommandNotFound:
        return False
    return bool(returncode == 0)


def start_daemons(*, log: Callable[[str], None] = lambda message: None) -> list[str]:
    """Start virtlogd and libvirtd when missing (root only); returns the ones started."""
    missing = [name for name in DAEMONS if not _running(name)]
    if not missing:
        return []
    if os.geteuid() != 0:
        commands = " && ".join(f"sudo {name} -d" for name in missing)
        raise TargetError(
            f"{', '.join(missing)} not running, and only root can start them: run `{commands}` "
            f"(or `sudo systemctl start {' '.join(missing)}`)"
        )
    for name in missing:
        binary = shutil.which(name) or f"/usr/sbin/{name}"
        if not Path(binary).exists():
            raise TargetError(f"{name} is not installed; {PACKAGES_HINT}")
        command = _daemon_command(name, binary)
        LIBVIRTD_LOG.parent.mkdir(parents=True, exist_ok=True)
        shown = " ".join(command.formulate())
        log(f"starting {name}: {shown}")
        # stderr goes to a file, not a pipe: the daemon's child may keep it open for good.
        with tempfile.TemporaryFile(mode="w+") as errors:
            returncode = command.popen(stdin=None, stdout=errors, stderr=errors).wait()
            if returncode != 0:
                errors.seek(0)
                raise TargetError(f"{shown} failed ({returncode}): {errors.read().strip()[-400:]}")
    deadline = time.monotonic() + 10
    while not SOCKET.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return missing


def _daemon_command(name: str, binary: str) -> Any:
    """``<daemon> -d``; libvirtd in the foreground under ``tini -s`` when tini is installed,
    forked off into its own session (``setsid -f``) so it outlives the suite."""
    reaper = shutil.which(REAPER)
    setsid = shutil.which("setsid")
    if name != "libvirtd" or reaper is None or setsid is None:
        return local[binary]["-d"]
    script = 'exec "$0" -s -- "$1" >>"$2" 2>&1'  # tini -s -- libvirtd >>log
    return local[setsid]["-f", "sh", "-c", script, reaper, binary, str(LIBVIRTD_LOG)]


def connect(uri: str, *, start: bool = True) -> Any:
    """An open libvirt connection to ``uri``; TargetError naming the URI and fix otherwise."""
    libvirt = import_libvirt()
    if uri.startswith("qemu:///system") and start:
        start_daemons()
    try:
        connection = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        fix = (
            f"start the daemons (as root: `virtlogd -d && libvirtd -d`) and check {PACKAGES_HINT}"
            if uri.startswith("qemu")
            else "check the URI (the libvirt simulator is test:///default)"
        )
        raise TargetError(f"cannot connect to libvirt at {uri}: {exc.get_error_message()}; {fix}") from None
    if connection is None:  # pragma: no cover - old bindings returned None
        raise TargetError(f"cannot connect to libvirt at {uri}")
    return connection


def is_test_driver(connection: Any) -> bool:
    """libvirt's in-memory simulator: no daemon, no guest ever runs."""
    return str(connection.getType()).upper() == "TEST"


def ensure_network(connection: Any, name: str) -> None:
    """The pod VMs' network (LIBVIRT_NET) must exist and be active."""
    libvirt = import_libvirt()
    try:
        network = connection.networkLookupByName(name)
    except libvirt.libvirtError:
        raise TargetError(
            f"libvirt at {connection.getURI()} has no network {name!r} (LIBVIRT_NET); "
            f"define it, e.g. `virsh net-define /usr/share/libvirt/networks/default.xml`"
        ) from None
    if not network.isActive():
        network.create()


def ensure_pool(connection: Any, name: str, path: Path | None = None) -> Any:
    """The storage pool (LIBVIRT_POOL), created as a dir pool at ``path`` when missing."""
    libvirt = import_libvirt()
    try:
        pool = connection.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        if path is None:
            raise TargetError(
                f"libvirt at {connection.getURI()} has no storage pool {name!r} (LIBVIRT_POOL)"
            ) from None
        path.mkdir(parents=True, exist_ok=True)
        xml = f"<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>"
        pool = (
            connection.storagePoolCreateXML(xml, 0)
            if is_test_driver(connection)
            else connection.storagePoolDefineXML(xml, 0)
        )
    if not pool.isActive():
        pool.create()
    refresh_pool(pool)
    return pool


#: libvirt refuses to refresh a pool while a volume in it is being built (``virStorageVolCreateXML``
#: and ``CreateXMLFrom`` hold an asynchronous job on the pool: "pool 'default' has asynchronous
#: jobs running."). Another worker, another run or an adaptor under test may be building one; a pod
#: VM's volumes take milliseconds, a clone of a large image seconds.
POOL_BUSY_WAIT_S = 30.0
POOL_BUSY = "has asynchronous jobs running"


def refresh_pool(pool: Any, *, wait: float = POOL_BUSY_WAIT_S) -> None:
    """``pool.refresh()``, waiting up to ``wait`` seconds while another client builds a volume in it;
    any other failure, or a pool still busy after ``wait``, raises libvirt's error."""
    libvirt = import_libvirt()
    deadline = time.monotonic() + wait
    delay = 0.01
    while True:
        try:
            pool.refresh(0)
            return
        except libvirt.libvirtError as exc:
            if POOL_BUSY not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def ensure_base_volume(pool: Any, name: str, *, capacity_mib: int = 256) -> Any:
    """LIBVIRT_VOL_NAME, the image every pod VM's boot volume is backed by.

    The emulated pod VM boots its kernel directly, so the base image carries no data; it
    exists so that each pod VM gets a real qcow2 overlay on it, as on a real LPAR.
    """
    libvirt = import_libvirt()
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError:
        pass
    xml = (
        f"<volume><name>{name}</name><capacity unit='MiB'>{capacity_mib}</capacity>"
        "<target><format type='qcow2'/></target></volume>"
    )
    return pool.createXML(xml, 0)


def stage_boot_file(source: Path, sha256: str, directory: Path | None = None) -> Path:
    """Copy an asset where libvirt-qemu may read it (root's cache is not), keyed by checksum:
    ``directory``, by default :data:`BOOT_DIR`."""
    directory = directory or BOOT_DIR
    target = directory / f"peerpods-{sha256[:16]}-{source.name}"
    if not target.exists():
        directory.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        shutil.copyfile(source, partial)
        partial.chmod(0o644)
        partial.rename(target)
    return target
