"""The libvirt provider's guests: booting a defined pod VM and reading its own report.

On a host that boots guests (qemu:///system) the domain starts in the background, at most
one boot per core (:class:`BootQueue`), and the guest's agent writes its report to the
serial console (:mod:`sim.lpar.console`); a pod VM that fails to start or never reports
is destroyed and the reason kept for its pod. On ``test:///default`` nothing boots.

Two ways to boot, one per kind of host:

* the kernel handed over (the ``lpar`` target, whose pod VMs sit on the host's own libvirt
  network): ready once the guest's report is on its console;
* the image on the boot volume (``from_volume``: the reference adaptor in the run's own LPAR,
  as CAA boots it): ready as CAA decides it, once the domain holds a DHCP lease on its network
  (``libvirt.go`` ``CreateDomain``, which polls ``domifaddr --source lease``) and a TCP
  connection to the guest's agent-protocol-forwarder on port 15150 succeeds
  (``pkg/adaptor/proxy``); the report is then read from the console as well.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import ConformanceInputError, TargetError
from sim.lpar import console, domain, host
from sim.lpar.assets import Assets
from sim.lpar.diskboot import FORWARDER_PORT
from sim.peerpods.diskreport import report_of
from sim.peerpods.podvm import GuestReport

__all__ = ["BootQueue", "BootRecord", "GuestBoot", "Instance", "lease_address", "libvirt_message"]

#: How often the readiness of a pod VM booted from its volume is checked (CAA: every 3 s).
READY_POLL_S = 0.1
#: How long a pod VM that is ready (its forwarder accepts) has to show its report on the console.
REPORT_AFTER_READY_S = 10.0


@dataclass
class Instance:
    """What the provider remembers about one pod VM it made, and how its boot went."""

    name: str
    volumes: list[str]
    console: Path
    report: GuestReport | None = None
    failure: str | None = None
    defined_at: float = 0.0
    started_at: float | None = None
    reported_at: float | None = None
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class BootRecord:
    """One pod VM's boot: seconds queued (defined, waiting for a boot slot), seconds booting
    (started until its guest reported or it failed), and how it ended."""

    name: str
    queued: float
    booting: float | None
    outcome: str  # reported | failed | cancelled


class BootQueue:
    """Boots pod VMs in the background, ``workers`` at once (default: as many as the host has cores).

    Emulated s390x guests are CPU-bound (QEMU TCG); more concurrent boots than cores only
    slow every one of them down, and their report timeouts start only once they start. How
    many at once pay on a given LPAR is measured (:mod:`sim.harness.targets.bootconcurrency`).
    """

    def __init__(self, workers: int | None = None, *, choose: Callable[[], int] | None = None) -> None:
        """``choose``: decides the number at the first boot (a measurement costs boots; a process
        that never boots, such as a parallel run's controller, never pays it)."""
        self._workers = workers
        self._choose = choose
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        #: Every boot this queue ran, in the order they ended.
        self.log: list[BootRecord] = []
        self._log_lock = threading.Lock()

    @property
    def workers(self) -> int:
        """How many pod VMs boot at once (chosen now if not yet)."""
        if self._workers is None:
            self._workers = (self._choose() if self._choose is not None else None) or os.cpu_count() or 1
        return self._workers

    def submit(self, job: Callable[[], None]) -> None:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="podvm-boot")
        self._pool.submit(job)

    def record(self, instance: Instance) -> None:
        end = instance.reported_at or time.monotonic()
        started = instance.started_at
        queued = (started if started is not None else end) - instance.defined_at
        outcome = "reported" if instance.report is not None else "failed"
        if instance.report is None and instance.cancelled.is_set():
            outcome = "cancelled"  # its pod went before the guest reported: not the guest's failure
        booting = None if started is None else end - started
        with self._log_lock:
            self.log.append(BootRecord(instance.name, max(queued, 0.0), booting, outcome))

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)


def libvirt_message(exc: Exception) -> str:
    """libvirt's own message, or the text of an error raised without one (injected faults)."""
    get = getattr(exc, "get_error_message", None)
    return str((get() if get else None) or exc)


def lease_address(connection: Any, libvirt: Any, name: str) -> str | None:
    """The IPv4 address the domain's network leased to it (what CAA polls), or None yet."""
    try:
        found = connection.lookupByName(name).interfaceAddresses(
            libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0
        )
    except libvirt.libvirtError:
        return None
    for interface in (found or {}).values():
        for entry in interface.get("addrs") or []:
            if entry.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4:
                return str(entry["addr"])
    return None


def _accepts(address: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to ``address:port`` succeeds (the forwarder's readiness)."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


class GuestBoot:
    """Starts defined domains, waits for their guests' reports, and stops them."""

    def __init__(
        self,
        connection: Any,
        libvirt: Any,
        *,
        simulated: bool,
        assets: Assets | None,
        work_dir: Path,
        report_timeout: float,
        cmdline_extra: str,
        queue: BootQueue | None,
        host_dir: Path | None = None,
        from_volume: bool = False,
    ) -> None:
        self.connection = connection
        #: Boot the image on the boot volume, ready by lease and forwarder port (CAA's way).
        self.from_volume = from_volume
        #: Where boot files are staged and consoles written, when not the host's libvirt folders
        #: (an isolated LPAR's shared folder: the same path for the suite and its libvirtd).
        self.host_dir = host_dir
        self.libvirt = libvirt
        self.simulated = simulated
        self.assets = assets
        self.work_dir = work_dir
        self.report_timeout = report_timeout
        #: Appended to the kernel command line (``rdinit=/bin/sh`` boots guests that never report).
        self.cmdline_extra = cmdline_extra
        self._queue = queue
        self._boot: domain.BootAssets | None = None

    def boot_assets(self) -> domain.BootAssets | None:
        """The kernel, initrd and command line every pod VM boots (staged once); None where the
        firmware boots the image on the volume (a silenced guest is still handed a kernel: its
        command line is how it is silenced)."""
        if self.assets is None or (self.from_volume and not self.cmdline_extra):
            return None
        if self._boot is None:
            if self.simulated:
                kernel, initrd = self.assets.kernel, self.assets.initrd
            else:
                kernel = host.stage_boot_file(self.assets.kernel, self.assets.kernel_sha256, self.host_dir)
                initrd = host.stage_boot_file(self.assets.initrd, self.assets.initrd_sha256, self.host_dir)
            self._boot = domain.BootAssets(str(kernel), str(initrd), self.assets.cmdline)
        if self.cmdline_extra:
            return domain.BootAssets(
                self._boot.kernel, self._boot.initrd, f"{self._boot.cmdline} {self.cmdline_extra}"
            )
        return self._boot

    def console_path(self, name: str) -> Path:
        directory = self.work_dir if self.simulated else (self.host_dir or host.CONSOLE_DIR)
        return directory / f"{name}.console"

    def boot_later(self, instance: Instance, step: Callable[[str], None]) -> None:
        """Queue the boot: pods created together boot together, and a pod nobody looks at
        costs no waiting (see :meth:`wait_ready`)."""
        if self._queue is None:
            self._queue = BootQueue()
        self._queue.submit(lambda: self._boot_and_report(instance, step))

    def _boot_and_report(self, instance: Instance, step: Callable[[str], None]) -> None:
        """Start the domain and read its report; on failure the domain is destroyed and the
        reason kept for the pod (a pod VM that never reports never becomes ready)."""
        try:
            with instance.lock:
                if instance.cancelled.is_set():
                    instance.failure = "deleted before it started"
                    return
                try:
                    step("start")
                    self.connection.lookupByName(instance.name).create()
                except self.libvirt.libvirtError as exc:
                    instance.failure = f"starting the domain failed: {libvirt_message(exc)}"
                    return
                except Exception as exc:
                    instance.failure = f"starting the domain failed: {exc}"
                    return
                instance.started_at = time.monotonic()
            alive = lambda: self.active(instance.name) and not instance.cancelled.is_set()  # noqa: E731
            timeout = self.report_timeout
            if self.from_volume:  # ready as CAA sees it; the report is on the console by then
                self._wait_forwarder(instance, instance.started_at + timeout, alive)
                timeout = REPORT_AFTER_READY_S
            raw = console.wait_for_report(instance.console, timeout=timeout, alive=alive)
            instance.report = report_of(raw)
            instance.reported_at = time.monotonic()
        except (TargetError, ConformanceInputError) as exc:
            instance.failure = f"pod VM {instance.name}: {exc}"
            with instance.lock:
                self.destroy(instance.name)
        finally:
            if self._queue is not None:
                self._queue.record(instance)
            instance.done.set()

    def _wait_forwarder(self, instance: Instance, deadline: float, alive: Callable[[], bool]) -> None:
        """Until ``deadline``: a DHCP lease, then the forwarder port accepting (TargetError why not)."""
        address = None
        while True:
            address = address or lease_address(self.connection, self.libvirt, instance.name)
            if address is not None and _accepts(address, FORWARDER_PORT, timeout=0.3):
                return
            if not alive():
                tail = console.tail_of(instance.console)
                raise TargetError(f"pod VM stopped before it was ready; console tail: {tail!r}")
            if time.monotonic() > deadline:
                tail = console.tail_of(instance.console)
                missing = (
                    "no DHCP lease on its network"
                    if address is None
                    else f"nothing accepted on {address}:{FORWARDER_PORT}"
                )
                within = f"{self.report_timeout:g} s"
                raise TargetError(
                    f"pod VM did not report within {within} ({missing}); console tail: {tail!r}"
                )
            time.sleep(READY_POLL_S)

    def active(self, name: str) -> bool:
        try:
            return bool(self.connection.lookupByName(name).isActive())
        except self.libvirt.libvirtError:
            return False

    def destroy(self, name: str) -> None:
        try:
            dom = self.connection.lookupByName(name)
            if dom.isActive():
                dom.destroy()
        except self.libvirt.libvirtError:
            pass

    def stop(self, instances: Iterable[Instance]) -> None:
        """Stop these pod VMs at once: libvirt's destroy waits at least 200 ms (its kill loop's
        poll), and until QEMU is reaped (1.2-1.6 s more where pid 1 reaps late and libvirtd
        runs without a subreaper, see sim.lpar.host), so a teardown waits once, not once per VM."""
        instances = list(instances)
        if not instances:
            return
        for instance in instances:
            instance.cancelled.set()  # a queued boot will not start now
        with ThreadPoolExecutor(max_workers=len(instances), thread_name_prefix="podvm-stop") as pool:
            list(pool.map(lambda instance: self.destroy(instance.name), instances))

    @staticmethod
    def wait_ready(instance: Instance) -> GuestReport | None:
        """Block until the pod VM reported (its report) or failed (TargetError with why).

        On the simulator there is nothing to wait for and no report (None)."""
        instance.done.wait()
        if instance.failure is not None:
            raise TargetError(instance.failure)
        return instance.report
