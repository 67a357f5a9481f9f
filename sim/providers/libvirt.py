"""Pod VMs as libvirt domains on the (emulated) LPAR: CAA's libvirt provider, in Python.

Creation follows CAA's order (``src/cloud-providers/libvirt/libvirt.go`` ``CreateDomain``):
a domain of the same name that already exists counts as success; then the boot volume
backed by LIBVIRT_VOL_NAME (as large as the larger of LIBVIRT_ROOT_DISK_SIZE, 10 GiB by
default, and the base image: ``volume.go``), the cloud-init ISO, the domain definition and
start -- and then it waits for the guest's own report, the emulated counterpart of CAA
waiting for the pod VM's agent. As on s390x upstream (``createDomainXMLs390x``) the domain
carries no ``<launchSecurity>`` element: Secure Execution comes from an SE-enabled image on
an SE host. The launch security *type* is still decided as ``provider.go`` decides it
(DISABLECVM, default true, wins; else LIBVIRT_LAUNCH_SECURITY, where an unknown value fails
the pod with upstream's message; else the host's architecture).

Every step that leaves something in libvirt registers its undo first, so a failure
half-way through removes what was made (the suite's SHOULD, VM-007; upstream returns
leaving the volumes it made).

On ``test:///default`` nothing boots: the guest report is the reference pod VM logic
(:func:`sim.podvm.process_user_data`) run on the user data read back from the cloud-init
ISO the domain really has attached.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import ConformanceInputError, TargetError
from sim.lpar import cidata, console, domain, host
from sim.lpar.assets import Assets
from sim.podvm import GuestReport, process_user_data
from sim.providers import InstanceSpec, podvm_name

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
#: booting host "start" runs in the background: its failure fails the pod, not the call.
STEPS = ("root-volume", "cidata-volume", "define", "start")


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


@dataclass
class _Instance:
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


@dataclass
class _Undo:
    """Cleanup actions registered while creating, run newest first if creation fails."""

    actions: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def push(self, what: str, action: Callable[[], None]) -> None:
        self.actions.append((what, action))

    def run(self) -> list[str]:
        problems = []
        for what, action in reversed(self.actions):
            try:
                action()
            except Exception as exc:  # keep undoing; report what could not be undone
                problems.append(f"{what}: {exc}")
        self.actions.clear()
        return problems


class BootQueue:
    """Boots pod VMs in the background, as many at once as the host has cores.

    Emulated s390x guests are CPU-bound (QEMU TCG); more concurrent boots than cores only
    slow every one of them down, and their report timeouts start only once they start.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="podvm-boot")

    def submit(self, job: Callable[[], None]) -> None:
        self._pool.submit(job)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


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
    ) -> None:
        self.connection = connection
        self.libvirt = host.import_libvirt()
        self.simulated = host.is_test_driver(connection)
        self.assets = assets
        self.settings = settings or LibvirtSettings()
        self.report_timeout = report_timeout
        #: Test seam: called with each step name in STEPS; raising there simulates libvirt failing.
        self.fault = fault
        self.cmdline_extra = cmdline_extra
        self._own_work = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="peerpods-lpar-"))
        self._instances: dict[str, _Instance] = {}
        self._lock = threading.Lock()
        self._boot: domain.BootAssets | None = None
        self._queue = boot_queue
        self.config_error: LaunchSecurityError | None = None
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

    def configure(self, data: Mapping[str, str]) -> None:
        """Apply peer-pods-cm. A bad value is kept and fails every creation, naming it, as
        CAA's provider fails on it: the pod then shows the reason instead of the suite."""
        try:
            self.settings = LibvirtSettings.from_config(data)
            self.config_error = None
        except LaunchSecurityError as exc:
            self.config_error = exc

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

    def guest_caps(self) -> tuple[str, str, str | None]:
        """(domain type, machine, emulator) for s390x, from the host's capabilities."""
        if self.simulated:
            return "test", domain.S390_MACHINE, None
        import xml.etree.ElementTree as ET

        caps = ET.fromstring(self.connection.getCapabilities())
        for guest in caps.findall("guest"):
            arch = guest.find("arch")
            if guest.findtext("os_type") != "hvm" or arch is None or arch.get("name") != domain.S390_ARCH:
                continue
            types = [d.get("type") for d in arch.findall("domain")]
            machine = domain.S390_MACHINE
            for candidate in arch.findall("machine"):
                if candidate.text == domain.S390_MACHINE:
                    machine = candidate.get("canonical") or domain.S390_MACHINE
            return ("kvm" if "kvm" in types else "qemu"), machine, arch.findtext("emulator")
        raise TargetError(
            f"libvirt at {self.connection.getURI()} offers no s390x guest: qemu-system-s390x is missing "
            f"({host.PACKAGES_HINT}; restart libvirtd afterwards)"
        )

    def _boot_assets(self) -> domain.BootAssets | None:
        if self.assets is None:
            return None
        if self._boot is None:
            if self.simulated:
                kernel, initrd = self.assets.kernel, self.assets.initrd
            else:
                kernel = host.stage_boot_file(self.assets.kernel, self.assets.kernel_sha256)
                initrd = host.stage_boot_file(self.assets.initrd, self.assets.initrd_sha256)
            self._boot = domain.BootAssets(str(kernel), str(initrd), self.assets.cmdline)
        if self.cmdline_extra:
            return domain.BootAssets(
                self._boot.kernel, self._boot.initrd, f"{self._boot.cmdline} {self.cmdline_extra}"
            )
        return self._boot

    # --- Provider protocol ----------------------------------------------------------------
    def create_instance(self, spec: InstanceSpec) -> str:
        """Define, start and (on QEMU) wait for the pod VM's report; nothing remains on failure."""
        name = podvm_name(spec.pod_name, spec.sandbox_id)
        undo = _Undo()
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
                raise TargetError(f"creating {name} failed: {_message(exc)}") from None
            raise

    def _step(self, step: str) -> None:
        if self.fault is not None:
            self.fault(step)

    def _create(self, name: str, spec: InstanceSpec, undo: _Undo) -> str:
        if self.config_error is not None:
            raise self.config_error
        self.launch_security()  # an unknown LIBVIRT_LAUNCH_SECURITY fails here, as upstream
        if name in self._domain_names():
            with self._lock:  # CreateDomain: "Instance already exists" is success
                volumes = [f"{name}-root.qcow2", f"{name}-cloudinit.iso"]
                existing = _Instance(name, volumes, self._console_path(name))
                self._instances.setdefault(name, existing).done.set()
            return name
        domain_type, machine, emulator = self.guest_caps()
        pool = self._pool()
        base = self._base_volume(pool)
        self._step("root-volume")
        root = self._create_volume(pool, undo, self._root_volume_xml(f"{name}-root.qcow2", base))
        self._step("cidata-volume")
        iso = cidata.build_nocloud_iso(spec.user_data, hostname=name)
        iso_volume = self._create_volume(pool, undo, _raw_volume_xml(f"{name}-cloudinit.iso", len(iso)))
        self._upload(iso_volume, iso)
        console_path = self._console_path(name)
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
                boot=self._boot_assets(),
                launch_security=None,  # createDomainXMLs390x emits no <launchSecurity>
            )
        )
        self._step("define")
        dom = self.connection.defineXML(xml)
        undo.push(f"domain {name}", lambda: self._remove_domain(name))
        instance = _Instance(name=name, volumes=[root.name(), iso_volume.name()], console=console_path)
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
            # The boot runs in the background, at most one per core: pods created together
            # boot together, and a pod nobody looks at costs no waiting (see wait_ready).
            self._boot_queue().submit(lambda: self._boot_and_report(instance))
        return name

    def _boot_queue(self) -> BootQueue:
        if self._queue is None:
            self._queue = BootQueue()
        return self._queue

    def _boot_and_report(self, instance: _Instance) -> None:
        """Start the domain and read its report; on failure the domain is destroyed and the
        reason kept for the pod (a pod VM that never reports never becomes ready)."""
        try:
            with instance.lock:
                if instance.cancelled.is_set():
                    instance.failure = "deleted before it started"
                    return
                try:
                    self._step("start")
                    self.connection.lookupByName(instance.name).create()
                except self.libvirt.libvirtError as exc:
                    instance.failure = f"starting the domain failed: {_message(exc)}"
                    return
                except Exception as exc:
                    instance.failure = f"starting the domain failed: {exc}"
                    return
                instance.started_at = time.monotonic()
            raw = console.wait_for_report(
                instance.console,
                timeout=self.report_timeout,
                alive=lambda: self._active(instance.name) and not instance.cancelled.is_set(),
            )
            instance.report = GuestReport.from_json(_json(raw))
            instance.reported_at = time.monotonic()
        except (TargetError, ConformanceInputError) as exc:
            instance.failure = f"pod VM {instance.name}: {exc}"
            with instance.lock:
                self._destroy(instance.name)
        finally:
            instance.done.set()

    def _active(self, name: str) -> bool:
        try:
            return bool(self.connection.lookupByName(name).isActive())
        except self.libvirt.libvirtError:
            return False

    def stop_all(self) -> None:
        """Stop every pod VM of this provider at once, before they are deleted one by one.

        libvirt's destroy of an emulated s390x guest takes about 2 s, nearly all of it
        waiting; a scenario's teardown with several pod VMs waits once, not once per VM.
        """
        with self._lock:
            instances = list(self._instances.values())
        if not instances:
            return
        for instance in instances:
            instance.cancelled.set()  # a queued boot will not start now
        with ThreadPoolExecutor(max_workers=len(instances), thread_name_prefix="podvm-stop") as pool:
            list(pool.map(lambda instance: self._destroy(instance.name), instances))

    def _destroy(self, name: str) -> None:
        try:
            dom = self.connection.lookupByName(name)
            if dom.isActive():
                dom.destroy()
        except self.libvirt.libvirtError:
            pass

    def wait_ready(self, instance_id: str) -> GuestReport | None:
        """Block until the pod VM reported (its report) or failed (TargetError with why).

        On the simulator there is nothing to wait for and no report (None)."""
        instance = self._instance(instance_id)
        instance.done.wait()
        if instance.failure is not None:
            raise TargetError(instance.failure)
        return instance.report

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

    def _instance(self, instance_id: str) -> _Instance:
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
            problems.append(f"domain: {_message(exc)}")
        pool = self._pool()
        names = (
            instance.volumes if instance else [f"{instance_id}-root.qcow2", f"{instance_id}-cloudinit.iso"]
        )
        for volume in names:
            try:
                self._delete_volume(pool, volume)
            except self.libvirt.libvirtError as exc:
                problems.append(f"volume {volume}: {_message(exc)}")
        self._console_path(instance_id).unlink(missing_ok=True)
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
        facts["volumes"] = sorted(v for v in self._pool().listVolumes() if v.startswith(instance_id + "-"))
        facts["backing_store"] = self._backing(facts["volumes"])
        facts["root_capacity"] = self._capacity(f"{instance_id}-root.qcow2")
        facts["user_data"] = self._attached_user_data(instance_id, facts)
        return facts

    def _attached_user_data(self, instance_id: str, facts: Mapping[str, Any]) -> str:
        """The user data on the domain's cloud-init disk (vdb), read back from the volume."""
        iso_path = next((d["source"] for d in facts["disks"] if d["dev"] == "vdb"), None)
        if iso_path is None:
            raise TargetError(f"domain {instance_id} has no cloud-init disk (vdb)")
        return cidata.read_user_data(self._read_volume(iso_path), where=f"{instance_id} vdb ({iso_path})")

    # --- leftovers (the after-every-run check) ----------------------------------------------
    def leftovers(self) -> list[str]:
        """Every podvm-* domain and volume that exists now (should be none after a run)."""
        found = [f"domain {n}" for n in self._domain_names() if n.startswith(PODVM_PREFIX)]
        try:
            pool = self.connection.storagePoolLookupByName(self.settings.pool)
            pool.refresh(0)
            found += [
                f"volume {v}"
                for v in pool.listVolumes()
                if v.startswith(PODVM_PREFIX) and v != self.settings.base_volume
            ]
        except self.libvirt.libvirtError:
            pass
        return sorted(found)

    def remove_leftovers(self) -> None:
        """Delete every podvm-* domain and volume (teardown after a failed scenario)."""
        for entry in self.leftovers():
            kind, name = entry.split(" ", 1)
            try:
                if kind == "domain":
                    self._remove_domain(name)
                else:
                    self._delete_volume(self._pool(), name)
            except self.libvirt.libvirtError:
                continue

    def close(self) -> None:
        """Forget the work directory (files the simulated guests wrote)."""
        if self._own_work:
            import shutil

            shutil.rmtree(self.work_dir, ignore_errors=True)

    # --- libvirt helpers ----------------------------------------------------------------------
    def _domain_names(self) -> list[str]:
        return [d.name() for d in self.connection.listAllDomains(0)]

    def _pool(self) -> Any:
        try:
            pool = self.connection.storagePoolLookupByName(self.settings.pool)
        except self.libvirt.libvirtError:
            uri = self.connection.getURI()
            raise TargetError(
                f"libvirt at {uri} has no storage pool {self.settings.pool!r} (LIBVIRT_POOL)"
            ) from None
        return pool

    def _base_volume(self, pool: Any) -> Any:
        try:
            return pool.storageVolLookupByName(self.settings.base_volume)
        except self.libvirt.libvirtError:
            raise TargetError(
                f"pool {self.settings.pool!r} has no base volume {self.settings.base_volume!r} "
                "(LIBVIRT_VOL_NAME); run `peerpods-conformance lpar prepare` or upload the pod VM image"
            ) from None

    def _root_volume_xml(self, name: str, base: Any) -> str:
        capacity = max(self.settings.root_disk_gib << 30, int(base.info()[1]))
        return (
            f"<volume><name>{name}</name><capacity unit='B'>{capacity}</capacity>"
            "<target><format type='qcow2'/></target>"
            f"<backingStore><path>{base.path()}</path><format type='qcow2'/></backingStore></volume>"
        )

    def _create_volume(self, pool: Any, undo: _Undo, xml: str) -> Any:
        volume = pool.createXML(xml, 0)
        name = volume.name()
        undo.push(f"volume {name}", lambda: self._delete_volume(pool, name))
        return volume

    def _capacity(self, volume: str) -> int | None:
        try:
            return int(self._pool().storageVolLookupByName(volume).info()[1])
        except self.libvirt.libvirtError:
            return None

    def _delete_volume(self, pool: Any, name: str) -> None:
        try:
            volume = pool.storageVolLookupByName(name)
        except self.libvirt.libvirtError:
            return
        path = Path(volume.path())
        volume.delete(0)
        if self.simulated and path.is_relative_to(self.work_dir):
            path.unlink(missing_ok=True)  # the bytes _upload wrote in the driver's stead

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

    def _upload(self, volume: Any, data: bytes) -> None:
        """Stream the bytes into the volume; the test driver cannot, so write its file."""
        if self.simulated:
            path = Path(volume.path())
            if not path.parent.is_dir() or not path.is_relative_to(self.work_dir):
                raise TargetError(
                    f"test pool volume {path} is not in the provider's directory {self.work_dir}"
                )
            path.write_bytes(data)
            return
        stream = self.connection.newStream(0)
        volume.upload(stream, 0, len(data), 0)
        stream.send(data)
        stream.finish()

    def _read_volume(self, path: str) -> bytes:
        """A volume's bytes through libvirt (works for remote hosts); the test driver has no
        download, so there the file _upload wrote is read."""
        if self.simulated:
            return Path(path).read_bytes()
        volume = self.connection.storageVolLookupByPath(path)
        size = int(volume.info()[1])
        stream = self.connection.newStream(0)
        volume.download(stream, 0, size, 0)
        chunks = []
        while True:
            chunk = stream.recv(1 << 18)
            if not chunk:
                break
            chunks.append(chunk)
        stream.finish()
        return b"".join(chunks)

    def _console_path(self, name: str) -> Path:
        directory = self.work_dir if self.simulated else host.CONSOLE_DIR
        return directory / f"{name}.console"

    def _backing(self, volumes: list[str]) -> str | None:
        import xml.etree.ElementTree as ET

        for volume in volumes:
            if volume.endswith("-root.qcow2"):
                xml = self._pool().storageVolLookupByName(volume).XMLDesc(0)
                return ET.fromstring(xml).findtext("backingStore/path")
        return None


def _message(exc: Exception) -> str:
    """libvirt's own message, or the text of an error raised without one (injected faults)."""
    get = getattr(exc, "get_error_message", None)
    return str((get() if get else None) or exc)


def _raw_volume_xml(name: str, size: int) -> str:
    return (
        f"<volume><name>{name}</name><capacity unit='B'>{size}</capacity>"
        "<target><format type='raw'/></target></volume>"
    )


def _json(raw: Mapping[str, Any]) -> str:
    import json

    return json.dumps(raw)
