"""The ``lpar`` target: the reference control plane driving pod VMs on an (emulated) LPAR.

The webhook, scheduler and cloud-api-adaptor are the reference ones
(:class:`~sim.targets.reference.ClusterEnvironment`); the pod VMs are libvirt domains made
by :class:`~sim.providers.libvirt.LibvirtProvider`. On ``test:///default`` (the default)
libvirt is its in-memory simulator; on ``qemu:///system`` every pod VM is a real s390x
guest under ``qemu-system-s390x`` whose own agent reports what it did, so this target also
offers the ``guest`` capability there.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from sim import __version__
from sim.catalogue import PROJECT_ROOT
from sim.errors import ConformanceInputError, TargetError
from sim.lpar import host, prerequisites
from sim.lpar.assets import Assets, AssetsMissing, find_assets
from sim.providers import InstanceSpec
from sim.providers.libvirt import STEPS, BootQueue, LibvirtProvider, LibvirtSettings
from sim.targets.base import LparCheck, NotApplicable, PodOutcome, Target, TargetOptions
from sim.targets.reference import ClusterEnvironment

#: What the emulated LPAR cannot show, and so which scenarios it leaves not applicable.
EMULATION_LIMITS = (
    "QEMU's TCG emulates at most an IBM z15 CPU (gen15a): the guest reports machine type 8561, so the "
    "'Emperor 4 or later' prerequisite fails on the emulated LPAR; IBM Secure Execution (the "
    "Ultravisor, prot_virt) is not emulated, so s390-pv guests cannot start and SE attestation "
    "is not exercised; LPAR prerequisites are certified on described LPARs (fixtures/lpar)"
)
REPORT_TIMEOUT_S = 90.0


class LparEnvironment(ClusterEnvironment):
    """One scenario: the reference cluster with the libvirt provider, checked for leftovers."""

    def __init__(self, target: LparTarget, provider: LibvirtProvider) -> None:
        self._target = target
        self._libvirt = provider
        super().__init__(provider, lpar_checks=target.lpar_checks)

    def set_peer_pods_config(self, data: Mapping[str, str]) -> None:
        super().set_peer_pods_config(data)
        # The provider reads the libvirt keys (LIBVIRT_POOL, DISABLECVM, ...) of the same map.
        self._libvirt.configure({**self._cm_defaults, **self._target.cm_overrides, **data})

    def get_pod(self, namespace: str, name: str) -> PodOutcome:
        """The pod's state once its pod VM is ready: a VM that never reported fails the pod."""
        outcome = super().get_pod(namespace, name)
        if outcome.vm is None or outcome.phase != "Running":
            return outcome
        failure = self._libvirt.failure(outcome.vm)
        if failure is None:
            return outcome
        return replace(outcome, phase="Failed", reason=f"pod VM for pod {namespace}/{name} failed: {failure}")

    # --- test hooks only this target offers (the steps treat them as optional) --------------
    def inject_libvirt_fault(self, step: str) -> None:
        """Make libvirt fail at one creation step (see sim.providers.libvirt.STEPS)."""
        if step not in STEPS:
            raise ConformanceInputError(f"unknown creation step {step!r} (known: {', '.join(STEPS)})")

        def fail(at: str) -> None:
            if at == step:
                raise self._libvirt.libvirt.libvirtError(f"injected libvirt failure while making the {step}")

        self._libvirt.fault = fail

    def silence_guests(self, timeout: float) -> None:
        """Boot guests into a shell instead of the agent, so they never report."""
        if self._libvirt.simulated:
            raise NotApplicable("the libvirt simulator boots no guests")
        self._libvirt.cmdline_extra = "rdinit=/bin/sh"
        self._libvirt.report_timeout = timeout

    def leftovers(self) -> list[str]:
        """Every podvm-* domain and volume in libvirt now."""
        return self._libvirt.leftovers()

    def pod_vms(self) -> list[str]:
        """The pod VMs that exist in libvirt (not what the cluster believes)."""
        return [entry.split(" ", 1)[1] for entry in self._libvirt.leftovers() if entry.startswith("domain ")]

    def close(self) -> None:
        try:
            self._libvirt.stop_all()
            super().close()
        finally:
            left = self._libvirt.leftovers()
            if left:
                self._libvirt.remove_leftovers()
                raise TargetError(
                    f"pod VM resources left behind after the scenario (now removed): {', '.join(left)}"
                )


class LparTarget(Target):
    """Pod VMs as libvirt domains; real s390x guests on qemu:///system."""

    name = "lpar"
    base_capabilities = frozenset({"mutation", "webhook-settings", "cluster", "podvm", "lpar-host"})

    def __init__(self, uri: str, *, cache: Path | None = None, kernel: str | None = None) -> None:
        self.uri = uri
        self.libvirt = host.import_libvirt()
        self.connection = host.connect(uri)
        self.simulated = host.is_test_driver(self.connection)
        self.work_dir = Path(tempfile.mkdtemp(prefix="peerpods-lpar-"))
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
        self.capabilities = self.base_capabilities | (frozenset() if self.simulated else frozenset({"guest"}))
        self._emulated_machine: str | None = None
        self.boot_queue = BootQueue()
        self._probe = self.provider()
        self._probe.guest_caps()  # a missing s390x emulator fails here, before any scenario

    @classmethod
    def from_options(cls, options: TargetOptions) -> LparTarget:
        unused = [name for name in ("webhook_url", "webhook_ca", "webhook_config") if getattr(options, name)]
        if unused:
            raise ConformanceInputError(
                f"the lpar target takes no {', '.join('--' + n.replace('_', '-') for n in unused)}"
            )
        cache = options.extra.get("lpar_cache")
        return cls(options.libvirt_uri or host.TEST_URI, cache=Path(cache) if cache else None)

    def provider(self, **kwargs: Any) -> LibvirtProvider:
        """A provider on this target's connection (one per scenario; tests add fault seams)."""
        kwargs.setdefault("report_timeout", REPORT_TIMEOUT_S)
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
            "hypervisor": f"{self.connection.getType()} {self._hypervisor_version()}",
        }
        if self.simulated:
            facts["pod VMs"] = (
                "libvirt test driver (in-memory simulator); guest side by the reference pod VM logic"
            )
        else:
            facts["emulator"] = _emulator_version(self._probe.guest_caps()[2])
            facts["pod VMs"] = "real s390x guests; report from the guest's own agent"
            facts["emulated LPAR limits"] = EMULATION_LIMITS
        if self.assets is not None:
            packages = sorted(self.assets.packages.items())
            built_from = ", ".join(
                f"{k} {v}" for k, v in packages if k.startswith(("linux-image", "linux-source", "busybox"))
            )
            facts["pod VM image"] = f"{self.assets.key} ({self.assets.flavour} kernel; {built_from})"
        return facts

    def _hypervisor_version(self) -> str:
        # qemu:///system answers from the host-arch emulator, which an s390x-only host lacks.
        try:
            return _dotted(int(self.connection.getVersion()))
        except self.libvirt.libvirtError:
            return "(no host-arch emulator; see emulator)"

    def open_environment(self) -> LparEnvironment:
        return LparEnvironment(self, self.provider())

    # --- LPAR prerequisites -----------------------------------------------------------------
    def lpar_checks(self, description: Path | None) -> list[LparCheck]:
        """Judge a described LPAR, or this emulated one (what QEMU and libvirt really offer)."""
        if description is not None:
            path = description if description.is_absolute() else PROJECT_ROOT / description
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
        left = self._probe.leftovers()
        self._probe.remove_leftovers()
        try:
            if self.simulated:  # the simulator's pool lives in our work dir, which goes now
                self._probe._pool().destroy()
            self.connection.close()
        finally:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        if left:
            raise TargetError(f"pod VM resources left behind at {self.uri} (now removed): {', '.join(left)}")


def _dotted(version: int) -> str:
    """libvirt's packed version number (1000000*major + 1000*minor + micro) as text."""
    return f"{version // 1000000}.{version // 1000 % 1000}.{version % 1000}"


def _emulator_version(emulator: str | None) -> str:
    if not emulator:
        return "none"
    try:
        out = subprocess.run([emulator, "--version"], capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{emulator} (version unknown: {exc})"
    return out.stdout.splitlines()[0] if out.stdout else emulator
