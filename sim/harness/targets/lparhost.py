"""The LPAR (KVM host) pod VMs run on: a libvirt connection, its pool and the pod VM image.

Not a target: the ``lpar`` target is one of these, and the ``cluster`` target uses one for
its node agents' pod VMs when given ``--libvirt-uri``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from plumbum import CommandNotFound, ProcessTimedOut, local

from sim import __version__
from sim.errors import TargetError
from sim.harness.targets import bootconcurrency
from sim.harness.targets.base import LparCheck, NotApplicable, PodOutcome
from sim.lpar import host, isolated, prerequisites
from sim.lpar.assets import Assets, AssetsMissing, find_assets
from sim.lpar.ownership import RUN_ID_ENV, OwnerRecords, RunOwner
from sim.paths import DATA_ROOT
from sim.peerpods.kata import sandbox_failed
from sim.peerpods.providers import InstanceSpec
from sim.peerpods.providers.libvirt import BootQueue, LibvirtProvider, LibvirtSettings

#: What the emulated LPAR cannot show, and so which scenarios it leaves not applicable.
EMULATION_LIMITS = (
    "QEMU's TCG emulates at most an IBM z15 CPU (gen15a): the guest reports machine type 8561, so the "
    "'Emperor 4 or later' prerequisite fails on the emulated LPAR; IBM Secure Execution (the "
    "Ultravisor, prot_virt) is not emulated, so s390-pv guests cannot start and SE attestation "
    "is not exercised; LPAR prerequisites are certified on described LPARs (fixtures/lpar)"
)
REPORT_TIMEOUT_S = 90.0


def current_run_id() -> str:
    return os.environ.get(RUN_ID_ENV) or str(uuid.uuid4())


class LparHost:
    """One libvirt connection prepared for pod VMs (pool, network, base volume, boot queue)."""

    #: Every fact of :meth:`identity` but the suite's own (implementation, version).
    per_lpar_facts: ClassVar[frozenset[str]] = frozenset(
        {
            "libvirt URI",
            "libvirt version",
            "hypervisor",
            "KVM host",
            "emulator",
            "pod VMs",
            "emulated LPAR limits",
            "pod VM image",
            "boot concurrency",
        }
    )

    def __init__(
        self,
        uri: str,
        *,
        cache: Path | None = None,
        kernel: str | None = None,
        run_id: str | None = None,
        boot_concurrency: str | None = None,
    ) -> None:
        self.uri = uri
        #: This process of this run, the owner of the pod VMs it makes here (see sim.lpar.ownership).
        self.ownership = OwnerRecords(RunOwner.current(run_id or current_run_id()), uri)
        self.libvirt = host.import_libvirt()
        self.connection = host.connect(uri)
        self.simulated = host.is_test_driver(self.connection)
        self.work_dir = Path(tempfile.mkdtemp(prefix="peerpods-lpar-"))
        #: An isolated LPAR's shared folder (boot files, consoles) when ``uri`` is one's, else None.
        self.host_dir = isolated.shared_dir_for(uri)
        self.settings = LibvirtSettings()
        self.assets: Assets | None
        try:
            self.assets = find_assets(cache, kernel=kernel)  # kernel None: $PEERPODS_KERNEL, else minimal
        except AssetsMissing:
            if not self.simulated:
                raise
            self.assets = None  # the simulator boots nothing; the XML then has no kernel
        if self.simulated:
            pool = host.ensure_pool(self.connection, self.settings.pool, self.work_dir / "pool")
        else:
            pool = host.ensure_pool(self.connection, self.settings.pool, host.DEFAULT_POOL_PATH)
            host.ensure_network(self.connection, self.settings.network)
        host.ensure_base_volume(pool, self.settings.base_volume)
        #: peer-pods-cm keys this LPAR needs whatever the scenario sets (none so far).
        self.cm_overrides: dict[str, str] = {}
        self._emulated_machine: str | None = None
        self._boot_setting = bootconcurrency.check_setting(boot_concurrency)
        self.boot_concurrency: bootconcurrency.Concurrency | None = None
        self.boot_queue = BootQueue(choose=self._choose_boot_concurrency)
        self._probe = self.provider(ownership=self.ownership)
        self._probe.guest_caps()  # a missing s390x emulator fails here, before any scenario
        self.removed_at_start = self._remove_stale()

    def _remove_stale(self) -> list[str]:
        """Pod VM domains and volumes a dead run of the suite left behind (killed half-way) are
        removed before the first scenario; a live run's, and what others made, stay. Says what it
        removed."""
        stale = self._probe.remove_stale()
        if stale:
            print(
                f"peerpods-conformance: removed what an earlier run left on {self.uri}: {', '.join(stale)}",
                file=sys.stderr,
            )
        return stale

    def _choose_boot_concurrency(self) -> int:
        """At the first boot: given, measured, or one per core (printed with the reason)."""
        self.boot_concurrency = bootconcurrency.choose(self, self._boot_setting)
        return self.boot_concurrency.count

    def boot_summary(self) -> str | None:
        """One line on this LPAR's pod VM boots: how many, how long queued and booting."""
        log = list(self.boot_queue.log)
        if not log:
            return None
        outcomes = {o: sum(1 for r in log if r.outcome == o) for o in ("reported", "failed", "cancelled")}
        queued = sorted(r.queued for r in log)
        booting = sorted(r.booting for r in log if r.booting is not None)

        def spread(values: list[float]) -> str:
            return f"median {values[len(values) // 2]:.2f} s, max {values[-1]:.2f} s" if values else "none"

        chosen = self.boot_concurrency
        concurrency = f"{chosen.count} at once: {chosen.reason}" if chosen else "?"
        counted = ", ".join(f"{n} {o}" for o, n in outcomes.items() if n)
        return (
            f"pod VM boots on {self.uri}: {counted}; queued {spread(queued)}; booting {spread(booting)}, "
            f"{sum(booting):.1f} s in all; boot concurrency {concurrency}"
        )

    def log_files(self) -> dict[str, Path]:
        """QEMU's log of every pod VM this run booted on the host's libvirtd (libvirt keeps it
        after the domain is gone), for the results bundle."""
        if self.simulated or self.host_dir is not None:
            return {}
        logs = {record.name: host.CONSOLE_DIR / f"{record.name}.log" for record in self.boot_queue.log}
        return {f"libvirt/qemu/{name}.log": path for name, path in sorted(logs.items()) if path.is_file()}

    def provider(self, **kwargs: Any) -> LibvirtProvider:
        """A provider on this target's connection (one per scenario; tests add fault seams).

        ``ownership=self.ownership`` makes its pod VMs this run's (and its leftovers only those);
        without it, it observes every podvm-* domain (what an adaptor under test made)."""
        kwargs.setdefault("report_timeout", REPORT_TIMEOUT_S)
        if self.host_dir is not None:
            kwargs.setdefault("host_dir", self.host_dir)
        kwargs.setdefault("boot_queue", self.boot_queue)
        return LibvirtProvider(
            self.connection, assets=self.assets, settings=self.settings, work_dir=self.work_dir, **kwargs
        )

    def identity(self) -> dict[str, str]:
        libvirt_version = _dotted(int(self.connection.getLibVersion()))
        facts = {
            "implementation": "peerpods-conformance reference control plane + libvirt provider",
            "version": __version__,
            "libvirt URI": self.uri,
            "libvirt version": libvirt_version,
            "KVM host": self._host_machine(),
        }
        if self.simulated:
            facts["hypervisor"] = f"{self.connection.getType()} {_dotted(int(self.connection.getVersion()))}"
            facts["pod VMs"] = (
                "libvirt test driver (in-memory simulator); guest side by the reference pod VM logic"
            )
        else:
            emulator = _emulator_version(self._probe.guest_caps()[2])
            facts["hypervisor"] = f"{self.connection.getType()} {_version_number(emulator)}"
            facts["emulator"] = emulator
            facts["pod VMs"] = "real s390x guests; report from the guest's own agent"
            facts["emulated LPAR limits"] = EMULATION_LIMITS
        if self.assets is not None:
            packages = sorted(self.assets.packages.items())
            built_from = ", ".join(
                f"{k} {v}" for k, v in packages if k.startswith(("linux-image", "linux-source", "busybox"))
            )
            facts["pod VM image"] = f"{self.assets.key} ({self.assets.flavour} kernel; {built_from})"
        chosen = self.boot_concurrency  # chosen at the first boot: known once a pod VM booted
        if chosen is not None:
            facts["boot concurrency"] = f"{chosen.count} at once: {chosen.reason}"
        return facts

    def _host_machine(self) -> str:
        """The LPAR's architecture, CPUs and memory, as its libvirt reports them (virNodeGetInfo)."""
        model, memory_mib, cpus, *_ = self.connection.getInfo()
        return f"{model}, {cpus} CPUs, {memory_mib} MiB"

    # --- LPAR prerequisites -----------------------------------------------------------------
    def lpar_checks(self, description: Path | None) -> list[LparCheck]:
        """Judge a described LPAR, or this emulated one (what QEMU and libvirt really offer)."""
        if description is not None:
            path = description if description.is_absolute() else DATA_ROOT / description
            return prerequisites.evaluate(prerequisites.load_description(path))
        return prerequisites.evaluate(self.emulated_evidence())

    def emulated_evidence(self) -> prerequisites.LparEvidence:
        """The emulated LPAR's evidence: a probe guest's /proc/sysinfo, this host's kernel
        files, libvirt's domain capabilities for s390x."""
        if self.simulated:
            raise NotApplicable(
                "the libvirt simulator has no LPAR to inspect; use qemu:///system or a description"
            )
        machine = self.emulated_machine()
        domain_type, machine_name, emulator = self._probe.guest_caps()
        caps = self.connection.getDomainCapabilities(emulator, "s390x", machine_name, domain_type, 0)
        return prerequisites.LparEvidence(
            name=f"emulated LPAR at {self.uri}",
            sysinfo=f"Type: {machine}\n" if machine else None,
            kernel_cmdline=prerequisites.read_file(Path("/proc/cmdline")),
            prot_virt_host=prerequisites.read_file(Path("/sys/firmware/uv/prot_virt_host")),
            domain_capabilities=caps,
        )

    def emulated_machine(self) -> str | None:
        """The machine type a real guest of this LPAR reads from /proc/sysinfo (one probe boot)."""
        if self._emulated_machine is None:
            spec = InstanceSpec("lpar-probe", "kube-system", "probe0000000", 1, 512, "")
            name = self._probe.create_instance(spec)
            try:
                self._emulated_machine = self._probe.guest_report(name).machine
            finally:
                self._probe.delete_instance(name)
        return self._emulated_machine

    def close(self) -> None:
        self.boot_queue.shutdown()
        summary = self.boot_summary()
        if summary is not None:
            bootconcurrency.note(summary)
        left = self._probe.leftovers()
        self._probe.remove_leftovers()
        if not left or not self._probe.leftovers():  # a record stays while its pod VMs do
            self.ownership.remove()
        try:
            if self.simulated:  # the simulator's pool lives in our work dir, which goes now
                self._probe.storage.pool().destroy()
            self.connection.close()
        finally:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        if left:
            raise TargetError(f"pod VM resources left behind at {self.uri} (now removed): {', '.join(left)}")


def with_guest_failure(provider: LibvirtProvider, outcome: PodOutcome) -> PodOutcome:
    """A Running pod whose guest never reported: the adaptor's StartVM gives up waiting for its
    agent, so the sandbox does not start and the pod stays Pending (waits for the boot)."""
    if outcome.vm is None or outcome.phase != "Running" or outcome.pod is None:
        return outcome
    failure = provider.failure(outcome.vm)
    if failure is None:
        return outcome
    reason = str(sandbox_failed(outcome.pod, f"pod VM {outcome.vm}: {failure}"))
    return replace(outcome, phase="Pending", reason=reason)


def _dotted(version: int) -> str:
    """libvirt's packed version number (1000000*major + 1000*minor + micro) as text."""
    return f"{version // 1000000}.{version // 1000 % 1000}.{version % 1000}"


@functools.cache
def _emulator_version(emulator: str | None) -> str:
    """The first line of ``emulator --version`` (asked once per process).

    It is also the hypervisor's version: libvirt's own answer (``virConnectGetVersion``) is the
    version of the host-arch emulator, not of the one pod VMs run in, and on a host whose
    ``/dev/kvm`` QEMU cannot use (PVM) libvirt re-probes that emulator at every call (0.6 s)."""
    if not emulator:
        return "none"
    try:
        _, stdout, _ = local[emulator]["--version"].run(retcode=None, timeout=10)
    except (OSError, ProcessTimedOut, CommandNotFound) as exc:
        return f"{emulator} (version unknown: {exc})"
    return stdout.splitlines()[0] if stdout else emulator


def _version_number(emulator_line: str) -> str:
    """The version in an emulator's ``--version`` line (7.2.22 in "QEMU emulator version 7.2.22
    (Debian ...)"); the whole line when it has none."""
    found = re.search(r"version (\S+)", emulator_line)
    return found.group(1) if found else emulator_line
