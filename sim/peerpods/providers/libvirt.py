"""Pod VMs as libvirt domains on the (emulated) LPAR: CAA's libvirt provider, in Python.

Creation follows CAA's order (``src/cloud-providers/libvirt/libvirt.go`` ``CreateDomain``):
a domain of the same name that already exists counts as success; then the boot volume
backed by LIBVIRT_VOL_NAME (as large as the larger of LIBVIRT_ROOT_DISK_SIZE, 10 GiB by
default, and the base image: ``volume.go``), the cloud-init ISO, the domain definition and
start -- and then it waits for the guest's own report, the emulated counterpart of CAA
waiting for the pod VM's agent (``boot_from_volume``: booted from its image and ready by its
lease and forwarder port, exactly CAA's way; see :mod:`.libvirt_boot`). As on s390x upstream
(``createDomainXMLs390x``) the domain carries no ``<launchSecurity>`` element: Secure
Execution comes from an SE-enabled image on an SE host. The launch security *type* is still
decided as ``provider.go`` decides it (DISABLECVM, default true, wins; else
LIBVIRT_LAUNCH_SECURITY, where an unknown value fails the pod with upstream's message; else
the host's architecture).

Every step that leaves something in libvirt registers its undo first, so a failure
half-way through removes what was made (the suite's SHOULD, VM-007; upstream returns
leaving the volumes it made).

On ``test:///default`` nothing boots: the guest report is the reference pod VM logic
(:func:`sim.peerpods.podvm.process_user_data`) run on the user data read back from the cloud-init
ISO the domain really has attached.

The volumes are :mod:`sim.peerpods.providers.libvirt_storage`'s (``provider.storage``); starting the
domains and reading their guests' reports is :mod:`sim.peerpods.providers.libvirt_boot`'s
(``provider.boot``); this class decides and orders the creation, and describes the result.
"""

from __future__ import annotations

import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import ConformanceInputError, TargetError
from sim.lpar import cidata, domain, host
from sim.lpar.assets import Assets
from sim.lpar.ownership import OwnerRecords, RunOwner, domain_of_volume, owner_of_domain
from sim.peerpods.podvm import GuestReport, process_user_data
from sim.peerpods.providers import InstanceSpec, podvm_name
from sim.peerpods.providers.libvirt_boot import BootQueue, GuestBoot, Instance, libvirt_message
from sim.peerpods.providers.libvirt_storage import LibvirtStorage, Undo, raw_volume_xml

__all__ = ["STEPS", "BootQueue", "LaunchSecurityError", "LibvirtProvider", "LibvirtSettings"]

LAUNCH_SECURITY_VALUES = (domain.LAUNCH_SECURITY_SE,)
DEFAULT_POOL = "default"
#: manager.go defaultRootDiskSize (GiB)
DEFAULT_ROOT_DISK_GIB = 10
_TRUE = ("1", "t", "true")  # Go's strconv.ParseBool, lower-cased
_FALSE = ("0", "f", "false")
DEFAULT_NET = "default"
DEFAULT_VOL = "podvm-base.qcow2"
PODVM_PREFIX = "podvm-"
#: Creation steps at which a test may inject a failure (see ``LibvirtProvider.fault``). On a
#: booting host "start" runs in the background: its failure fails the pod's sandbox (seen when
#: the pod is read), not the call.
STEPS = ("root-volume", "cidata-volume", "define", "start")


#: The s390x guest each libvirt connection offers (its capabilities do not change during a run).
_GUEST_CAPS: weakref.WeakKeyDictionary[Any, tuple[str, str, str | None]] = weakref.WeakKeyDictionary()


class LaunchSecurityError(ConformanceInputError):
    """LIBVIRT_LAUNCH_SECURITY holds a value the provider does not know."""


@dataclass(frozen=True)
class LibvirtSettings:
    """The peer-pods-cm keys the libvirt provider reads (CAA ``libvirt/manager.go``)."""

    pool: str = DEFAULT_POOL
    network: str = DEFAULT_NET
    base_volume: str = DEFAULT_VOL
    disable_cvm: bool = True
    launch_security: str | None = None
    root_disk_gib: int = DEFAULT_ROOT_DISK_GIB

    @classmethod
    def from_config(cls, data: Mapping[str, str]) -> LibvirtSettings:
        """Read peer-pods-cm; a value the provider cannot start with is refused by name."""
        launch = (data.get("LIBVIRT_LAUNCH_SECURITY") or "").strip() or None
        disable = (data.get("DISABLECVM") or "").strip().lower()
        if disable and disable not in _TRUE + _FALSE:
            raise LaunchSecurityError(f"peer-pods-cm DISABLECVM={data['DISABLECVM']!r} is not a boolean")
        size = (data.get("LIBVIRT_ROOT_DISK_SIZE") or "").strip()
        if size and not size.isdigit():
            raise LaunchSecurityError(
                f"peer-pods-cm LIBVIRT_ROOT_DISK_SIZE={size!r} is not a whole number of GiB"
            )
        return cls(
            pool=data.get("LIBVIRT_POOL") or DEFAULT_POOL,
            network=data.get("LIBVIRT_NET") or DEFAULT_NET,
            base_volume=data.get("LIBVIRT_VOL_NAME") or DEFAULT_VOL,
            disable_cvm=disable not in _FALSE,
            launch_security=launch,
            root_disk_gib=int(size) if size and int(size) > 0 else DEFAULT_ROOT_DISK_GIB,
        )


class LibvirtProvider:
    """The Provider protocol over one libvirt connection."""

    def __init__(
        self,
        connection: Any,
        *,
        assets: Assets | None,
        settings: LibvirtSettings | None = None,
        report_timeout: float = 60.0,
        work_dir: Path | None = None,
        fault: Callable[[str], None] | None = None,
        cmdline_extra: str = "",
        boot_queue: BootQueue | None = None,
        host_dir: Path | None = None,
        ownership: OwnerRecords | None = None,
        boot_from_volume: bool = False,
    ) -> None:
        """``boot_from_volume``: boot the image on the boot volume and count a pod VM ready by its
        lease and forwarder port, as CAA does (:class:`GuestBoot`); else hand the kernel over."""
        self.connection = connection
        #: Whose pod VMs this provider makes (their domains' metadata, the owner record); None: an
        #: observer that owns nothing, to which every ``podvm-*`` domain and volume is a leftover.
        self.ownership = ownership
        self.libvirt = host.import_libvirt()
        self.simulated = host.is_test_driver(connection)
        self.assets = assets
        self.settings = settings or LibvirtSettings()
        #: Test seam: called with each step name in STEPS; raising there simulates libvirt failing.
        self.fault = fault
        self._own_work = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="peerpods-lpar-"))
        self._instances: dict[str, Instance] = {}
        self._lock = threading.Lock()
        self.config_error: LaunchSecurityError | None = None
        #: The pool and the volumes in it.
        self.storage = LibvirtStorage(
            connection,
            self.libvirt,
            simulated=self.simulated,
            work_dir=self.work_dir,
            settings=lambda: self.settings,
        )
        #: Starting the domains and reading their guests' reports.
        self.boot = GuestBoot(
            connection,
            self.libvirt,
            simulated=self.simulated,
            assets=assets,
            work_dir=self.work_dir,
            report_timeout=report_timeout,
            cmdline_extra=cmdline_extra,
            queue=boot_queue,
            host_dir=host_dir,
            from_volume=boot_from_volume,
        )
        if not self.simulated and assets is None:
            raise ConformanceInputError("a libvirt provider that boots guests needs the pod VM assets")

    # --- configuration ------------------------------------------------------------------
    def inject_fault(self, step: str) -> None:
        """Make libvirt fail at one creation step (one of :data:`STEPS`) from now on."""
        if step not in STEPS:
            raise ConformanceInputError(f"unknown creation step {step!r} (known: {', '.join(STEPS)})")

        def fail(at: str) -> None:
            if at == step:
                raise self.libvirt.libvirtError(f"injected libvirt failure while making the {step}")

        self.fault = fail

    def silence_guests(self, timeout: float) -> None:
        """Boot guests into a shell instead of the agent, so they never report; wait ``timeout`` s.
        Only real guests can be silenced (check :attr:`simulated` first)."""
        self.cmdline_extra = "rdinit=/bin/sh"
        self.report_timeout = timeout

    @property
    def cmdline_extra(self) -> str:
        """Appended to the guests' kernel command line."""
        return self.boot.cmdline_extra

    @cmdline_extra.setter
    def cmdline_extra(self, value: str) -> None:
        self.boot.cmdline_extra = value

    @property
    def report_timeout(self) -> float:
        """Seconds a booting guest has to report."""
        return self.boot.report_timeout

    @report_timeout.setter
    def report_timeout(self, value: float) -> None:
        self.boot.report_timeout = value

    def configure(self, data: Mapping[str, str]) -> None:
        """Apply peer-pods-cm. A bad value is kept and fails every creation, naming it, as
        CAA's provider fails on it: the pod then shows the reason instead of the suite."""
        try:
            self.settings = LibvirtSettings.from_config(data)
            self.config_error = None
        except LaunchSecurityError as exc:
            self.config_error = exc

    def check_start(self, data: Mapping[str, str]) -> str | None:
        """Why an adaptor with this environment exits at start, or None: CAA's libvirt provider
        looks its pool up by name when it starts (``NewLibvirtClient``)."""
        pool = data.get("LIBVIRT_POOL") or LibvirtSettings().pool
        try:
            self.connection.storagePoolLookupByName(pool)
        except self.libvirt.libvirtError as exc:
            return f"can't find storage pool {pool!r}: {libvirt_message(exc)}"
        return None

    def launch_security(self) -> str | None:
        """The launch security type, as provider.go's CreateInstance decides it: DISABLECVM
        wins; then LIBVIRT_LAUNCH_SECURITY (only s390-pv is known); unset means 'the host's
        architecture decides'. On s390x it names the type only: no element is emitted."""
        if self.settings.disable_cvm:
            return None
        launch = self.settings.launch_security
        if launch is not None:
            if launch not in LAUNCH_SECURITY_VALUES:
                raise LaunchSecurityError(f"[{launch}] is not a known launch security setting")
            return launch
        host_arch = str(self.connection.getInfo()[0])
        return domain.LAUNCH_SECURITY_SE if host_arch == "s390x" else None

    def _domain_kind(self) -> tuple[str, str, str, str | None, str | None]:
        """(arch, domain type, machine, emulator, CPU mode) of the pod VMs made here.

        CAA decides by libvirt's node model (``createDomainXML`` in
        src/cloud-providers/libvirt/libvirt.go): an IBM Z host gets ``createDomainXMLs390x``'s
        kvm domain with the host's CPU model, any other host ``createDomainXMLx86_64``'s. So does
        a provider that boots its pod VMs from their volume (the reference adaptor); the
        ``lpar`` target's provider emulates s390x pod VMs on any host (that is its purpose)."""
        model = "" if self.simulated else str(self.connection.getInfo()[0])
        if self.boot.from_volume and model not in ("", domain.S390_ARCH):
            return domain.X86_ARCH, "kvm", "", None, "host-model"
        domain_type, machine, emulator = self.guest_caps()
        if model == domain.S390_ARCH:
            return domain.S390_ARCH, "kvm", machine, emulator, "host-model"
        return domain.S390_ARCH, domain_type, machine, emulator, None

    def guest_caps(self) -> tuple[str, str, str | None]:
        """(domain type, machine, emulator) for s390x, asked once per connection."""
        if self.simulated:
            return "test", domain.S390_MACHINE, None
        found = _GUEST_CAPS.get(self.connection)
        if found is None:
            found = _GUEST_CAPS[self.connection] = self._read_guest_caps()
        return found

    def _read_guest_caps(self) -> tuple[str, str, str | None]:
        """From libvirt's domain capabilities for an s390x ``s390-ccw-virtio`` guest: ``kvm`` where
        the host runs it, else ``qemu`` (TCG); the canonical machine; the emulator. (The host's
        whole ``getCapabilities`` says the same, but takes the system libvirtd here 1.3 s per call,
        one caller at a time, against 1 ms for this: like ``virConnectGetVersion``, it has libvirt
        probe the host-arch QEMU again, whose KVM this PVM host cannot offer; see lparhost.)"""
        import xml.etree.ElementTree as ET

        problem = ""
        for virt_type in ("kvm", "qemu"):
            try:
                raw = self.connection.getDomainCapabilities(
                    None, domain.S390_ARCH, domain.S390_MACHINE, virt_type, 0
                )
            except self.libvirt.libvirtError as exc:  # this host cannot run that kind of guest
                problem = libvirt_message(exc)
                continue
            caps = ET.fromstring(raw)
            return virt_type, caps.findtext("machine") or domain.S390_MACHINE, caps.findtext("path")
        raise TargetError(
            f"libvirt at {self.connection.getURI()} offers no s390x guest: qemu-system-s390x is missing "
            f"({host.PACKAGES_HINT}; restart libvirtd afterwards); libvirt says: {problem}"
        )

    # --- Provider protocol ----------------------------------------------------------------
    def create_instance(self, spec: InstanceSpec) -> str:
        """Define, start and (on QEMU) wait for the pod VM's report; nothing remains on failure."""
        name = podvm_name(spec.pod_name, spec.sandbox_id)
        undo = Undo()
        try:
            return self._create(name, spec, undo)
        except BaseException as exc:
            problems = undo.run()
            if problems:
                raise TargetError(
                    f"creating {name} failed ({exc}); cleanup also failed: {'; '.join(problems)}"
                ) from exc
            if isinstance(exc, (TargetError, ConformanceInputError)):
                raise
            if isinstance(exc, self.libvirt.libvirtError):
                raise TargetError(f"creating {name} failed: {libvirt_message(exc)}") from None
            raise

    def _step(self, step: str) -> None:
        if self.fault is not None:
            self.fault(step)

    def _create(self, name: str, spec: InstanceSpec, undo: Undo) -> str:
        if self.config_error is not None:
            raise self.config_error
        self.launch_security()  # an unknown LIBVIRT_LAUNCH_SECURITY fails here, as upstream
        if name in self._domain_names():
            with self._lock:  # CreateDomain: "Instance already exists" is success
                volumes = [f"{name}-root.qcow2", f"{name}-cloudinit.iso"]
                existing = Instance(name, volumes, self.boot.console_path(name))
                self._instances.setdefault(name, existing).done.set()
            return name
        arch, domain_type, machine, emulator, cpu_mode = self._domain_kind()
        storage = self.storage
        pool = storage.pool()
        base = storage.base_volume(pool)
        if self.ownership is not None:
            self.ownership.add(name)  # before the first volume: a volume never lacks an owner
        self._step("root-volume")
        root = storage.create_volume(pool, undo, storage.root_volume_xml(f"{name}-root.qcow2", base))
        self._step("cidata-volume")
        iso = cidata.build_nocloud_iso(spec.user_data, hostname=name)
        iso_volume = storage.create_volume(pool, undo, raw_volume_xml(f"{name}-cloudinit.iso", len(iso)))
        storage.upload(iso_volume, iso)
        console_path = self.boot.console_path(name)
        undo.push(f"console {console_path}", lambda: console_path.unlink(missing_ok=True))
        xml = domain.build_domain_xml(
            domain.DomainSpec(
                name=name,
                vcpus=spec.vcpus,
                memory_mib=spec.memory_mib,
                domain_type=domain_type,
                machine=machine,
                emulator=emulator,
                boot_volume=root.path(),
                cidata_volume=iso_volume.path(),
                network=self.settings.network,
                console_path=str(console_path),
                boot=self.boot.boot_assets(),  # an x86_64 domain boots its volume whatever it is given
                launch_security=None,  # createDomainXMLs390x emits no <launchSecurity>
                arch=arch,
                cpu_mode=cpu_mode,
                metadata=(self.ownership.owner.element(),) if self.ownership is not None else (),
            )
        )
        self._step("define")
        dom = self.connection.defineXML(xml)
        undo.push(f"domain {name}", lambda: self._remove_domain(name))
        instance = Instance(name=name, volumes=[root.name(), iso_volume.name()], console=console_path)
        instance.defined_at = time.monotonic()
        if self.simulated:
            self._step("start")
            dom.create()
            instance.started_at = time.monotonic()
            instance.done.set()
        with self._lock:
            self._instances[name] = instance
        undo.actions.clear()
        if not self.simulated:
            self.boot.boot_later(instance, self._step)  # in the background, at most one per core
        return name

    def stop_all(self) -> None:
        """Stop every pod VM of this provider at once, before they are deleted one by one.

        libvirt's destroy waits at least 200 ms, nearly all of it sleeping (see
        :meth:`GuestBoot.stop`); a scenario's teardown with several pod VMs waits once.
        """
        with self._lock:
            instances = list(self._instances.values())
        self.boot.stop(instances)

    def wait_ready(self, instance_id: str) -> GuestReport | None:
        """Block until the pod VM reported (its report) or failed (TargetError with why).

        On the simulator there is nothing to wait for and no report (None)."""
        return self.boot.wait_ready(self._instance(instance_id))

    def failure(self, instance_id: str) -> str | None:
        """Why the pod VM never became ready (waits for the boot), or None."""
        try:
            self.wait_ready(instance_id)
        except TargetError as exc:
            return str(exc)
        return None

    def timings(self, instance_id: str) -> dict[str, float | None]:
        """Seconds from definition to start and to report (for the benchmark)."""
        instance = self._instance(instance_id)

        def since(mark: float | None) -> float | None:
            return None if mark is None else mark - instance.defined_at

        return {"start": since(instance.started_at), "report": since(instance.reported_at)}

    def _instance(self, instance_id: str) -> Instance:
        with self._lock:
            instance = self._instances.get(instance_id)
        if instance is None:
            raise TargetError(f"no pod VM {instance_id} on {self.connection.getURI()}")
        return instance

    def delete_instance(self, instance_id: str) -> None:
        """Destroy and undefine the domain, then delete its volumes (and the console file)."""
        with self._lock:
            instance = self._instances.pop(instance_id, None)
        problems = []
        if instance is not None:
            instance.cancelled.set()  # a queued boot will not start; a booting one stops waiting
        try:
            if instance is not None:
                with instance.lock:
                    self._remove_domain(instance_id)
            else:
                self._remove_domain(instance_id)
        except self.libvirt.libvirtError as exc:
            problems.append(f"domain: {libvirt_message(exc)}")
        pool = self.storage.pool()
        names = (
            instance.volumes if instance else [f"{instance_id}-root.qcow2", f"{instance_id}-cloudinit.iso"]
        )
        for volume in names:
            try:
                self.storage.delete_volume(pool, volume)
            except self.libvirt.libvirtError as exc:
                problems.append(f"volume {volume}: {libvirt_message(exc)}")
        self.boot.console_path(instance_id).unlink(missing_ok=True)
        if problems:
            raise TargetError(f"deleting pod VM {instance_id}: {'; '.join(problems)}")

    def guest_report(self, instance_id: str) -> GuestReport:
        """The guest's own report (QEMU) or the reference logic on the attached user data (test)."""
        instance = self._instance(instance_id)
        report = self.wait_ready(instance_id)
        if report is not None:
            return report
        dom = self.connection.lookupByName(instance_id)
        facts = domain.domain_facts(dom.XMLDesc(0))
        user_data = self._attached_user_data(instance_id, facts)
        root = Path(tempfile.mkdtemp(prefix=f"{instance_id}-", dir=self.work_dir))
        instance.report = process_user_data(user_data, root, arch=facts["arch"] or "s390x", machine=None)
        return instance.report

    def describe(self, instance_id: str) -> dict[str, Any]:
        """Facts from libvirt's own XML of the domain, plus its volumes and state."""
        try:
            dom = self.connection.lookupByName(instance_id)
        except self.libvirt.libvirtError:
            raise TargetError(f"no domain {instance_id} on {self.connection.getURI()}") from None
        facts = domain.domain_facts(dom.XMLDesc(0))
        facts["uri"] = self.connection.getURI()
        facts["host_arch"] = str(self.connection.getInfo()[0])
        facts["active"] = bool(dom.isActive())
        facts["pool"] = self.settings.pool
        facts["base_volume"] = self.settings.base_volume
        facts["volumes"] = self.storage.volumes_of(instance_id)
        facts["backing_store"] = self.storage.backing(facts["volumes"])
        facts["root_capacity"] = self.storage.capacity(f"{instance_id}-root.qcow2")
        facts["user_data"] = self._attached_user_data(instance_id, facts)
        return facts

    def _attached_user_data(self, instance_id: str, facts: Mapping[str, Any]) -> str:
        """The user data on the domain's cloud-init disk (vdb), read back from the volume."""
        iso_path = next((d["source"] for d in facts["disks"] if d["dev"] == "vdb"), None)
        if iso_path is None:
            raise TargetError(f"domain {instance_id} has no cloud-init disk (vdb)")
        data = self.storage.read_volume(iso_path)
        return cidata.read_user_data(data, where=f"{instance_id} vdb ({iso_path})")

    # --- leftovers (the after-every-run check) ----------------------------------------------
    def leftovers(self) -> list[str]:
        """This provider's own podvm-* domains and volumes that exist now (none after a scenario).

        With an owner: only what this process of this run made (other runs, other workers and
        whatever else shares the libvirt host are not counted). Without: every podvm-* one."""
        if self.ownership is None:
            found = [f"domain {n}" for n in self._domain_names() if n.startswith(PODVM_PREFIX)]
            return sorted(found + self.storage.leftovers(PODVM_PREFIX))
        mine = self.ownership.owner
        return sorted(f"{k} {n}" for k, n, o in self._owned() if o is not None and o.same_process(mine))

    def stale(self) -> list[str]:
        """podvm-* domains and volumes whose owner (a run of the suite) is dead."""
        mine = self.ownership.owner if self.ownership is not None else None
        return sorted(
            f"{k} {n}"
            for k, n, o in self._owned()
            if o is not None and not (mine is not None and o.same_process(mine)) and not o.alive()
        )

    def remove_leftovers(self) -> None:
        """Delete this provider's own leftovers (teardown after a failed scenario)."""
        self._remove(self.leftovers())

    def remove_stale(self) -> list[str]:
        """Delete what dead runs of the suite left (then their owner records); says what went."""
        stale = self.stale()
        failed = self._remove(stale)
        if self.ownership is not None and not failed:
            self.ownership.remove_dead(self.ownership.owners())
        return stale

    def _remove(self, entries: list[str]) -> list[str]:
        failed = []
        for entry in entries:
            kind, name = entry.split(" ", 1)
            try:
                if kind == "domain":
                    self._remove_domain(name)
                else:
                    self.storage.delete_volume(self.storage.pool(), name)
            except self.libvirt.libvirtError:
                failed.append(entry)
        return failed

    def _owned(self) -> list[tuple[str, str, RunOwner | None]]:
        """(kind, name, owner) of every podvm-* domain and volume: a domain's owner from its
        metadata; a volume's from its domain, else from the owner records."""
        domains: dict[str, RunOwner | None] = {}
        for dom in self.connection.listAllDomains(0):
            try:
                name = dom.name()
                if name.startswith(PODVM_PREFIX):
                    domains[name] = owner_of_domain(dom.XMLDesc(0))
            except self.libvirt.libvirtError:  # undefined meanwhile (by its owner)
                continue
        records = self.ownership.owners() if self.ownership is not None else {}
        found: list[tuple[str, str, RunOwner | None]] = [("domain", n, o) for n, o in domains.items()]
        for entry in self.storage.leftovers(PODVM_PREFIX):
            volume = entry.split(" ", 1)[1]
            pod_vm = domain_of_volume(volume)
            owner = domains.get(pod_vm) if pod_vm is not None else None
            if owner is None and pod_vm is not None and pod_vm in records:
                owner = records[pod_vm][0]
            found.append(("volume", volume, owner))
        return found

    def close(self) -> None:
        """Forget the work directory (files the simulated guests wrote)."""
        if self._own_work:
            import shutil

            shutil.rmtree(self.work_dir, ignore_errors=True)

    # --- libvirt helpers ----------------------------------------------------------------------
    def _domain_names(self) -> list[str]:
        return [d.name() for d in self.connection.listAllDomains(0)]

    def _remove_domain(self, name: str) -> None:
        try:
            dom = self.connection.lookupByName(name)
        except self.libvirt.libvirtError:
            return
        if dom.isActive():
            try:
                dom.destroy()
            except self.libvirt.libvirtError:
                if dom.isActive():
                    raise
        dom.undefine()
