"""The ``lpar`` target: the reference control plane driving pod VMs on an (emulated) LPAR.

The webhook, scheduler and cloud-api-adaptor are the reference ones
(:class:`~sim.harness.targets.inprocess.InProcessEnvironment`); the pod VMs are libvirt domains made
by :class:`~sim.peerpods.providers.libvirt.LibvirtProvider`. On ``test:///default`` (the default)
libvirt is its in-memory simulator; on ``qemu:///system`` every pod VM is a real s390x
guest under ``qemu-system-s390x`` whose own agent reports what it did, so this target also
offers the ``guest`` capability there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sim.errors import TargetError
from sim.harness.targets.base import (
    Guests,
    LibvirtFaults,
    LparCheck,
    LparInspection,
    NotApplicable,
    PodOutcome,
    Target,
    TargetOptions,
    provided_by,
)
from sim.harness.targets.inprocess import InProcessEnvironment
from sim.harness.targets.lparhost import LparHost, with_guest_failure
from sim.lpar import host
from sim.peerpods.providers.libvirt import LibvirtProvider


class LparEnvironment(InProcessEnvironment, Guests, LparInspection, LibvirtFaults):
    """One scenario: the reference cluster with the libvirt provider, checked for leftovers."""

    def __init__(self, target: LparTarget, provider: LibvirtProvider) -> None:
        self._target = target
        self._libvirt = provider
        super().__init__(provider)

    def lpar_checks(self, description: Path | None) -> list[LparCheck]:
        return self._target.lpar_checks(description)

    def set_peer_pods_config(self, data: Mapping[str, str]) -> None:
        super().set_peer_pods_config(data)
        # The provider reads the libvirt keys (LIBVIRT_POOL, DISABLECVM, ...) of the adaptor's environment.
        self._configure_provider()

    def set_peer_pods_secret(self, data: Mapping[str, str]) -> None:
        super().set_peer_pods_secret(data)
        self._configure_provider()

    def _configure_provider(self) -> None:
        self._libvirt.configure(self.deployment.provider_environment(self._target.cm_overrides))

    def get_pod(self, namespace: str, name: str) -> PodOutcome:
        """The pod's state once its pod VM is ready (or its guest never reported)."""
        return with_guest_failure(self._libvirt, super().get_pod(namespace, name))

    # --- test hooks only this target offers (the steps treat them as optional) --------------
    def inject_libvirt_fault(self, step: str) -> None:
        """Make libvirt fail at one creation step (see sim.peerpods.providers.libvirt.STEPS)."""
        self._libvirt.inject_fault(step)

    def silence_guests(self, timeout: float) -> None:
        """Boot guests into a shell instead of the agent, so they never report."""
        if self._libvirt.simulated:
            raise NotApplicable("the libvirt simulator boots no guests")
        self._libvirt.silence_guests(timeout)

    def leftovers(self) -> list[str]:
        """This run's podvm-* domains and volumes in libvirt now (this worker's, in a parallel run)."""
        return self._libvirt.leftovers()

    def pod_vms(self) -> list[str]:
        """This run's pod VMs that exist in libvirt (not what the cluster believes)."""
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


class LparTarget(LparHost, Target):
    """Pod VMs as libvirt domains; real s390x guests on qemu:///system."""

    name = "lpar"
    environment_class = LparEnvironment

    @property
    def capabilities(self) -> frozenset[str]:
        """Every capability of its environment; on libvirt's simulator, no guest boots."""
        offered = provided_by(LparEnvironment)
        return offered - {"guest"} if self.simulated else offered

    @classmethod
    def from_options(cls, options: TargetOptions) -> LparTarget:
        options.refuse("lpar", "webhook_url", "webhook_ca", "webhook_config")
        cache = options.extra.get("lpar_cache")
        return cls(
            options.libvirt_uri or host.TEST_URI,
            cache=Path(cache) if cache else None,
            boot_concurrency=options.extra.get("boot_concurrency"),
        )

    def open_environment(self) -> LparEnvironment:
        return LparEnvironment(self, self.provider(ownership=self.ownership))
