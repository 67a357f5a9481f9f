"""One scenario of the ``adaptor`` target: the reference control plane, the adaptor under test.

Admission, the webhook, scheduling and the Kata runtime's decisions are the suite's reference
(:class:`~sim.harness.targets.inprocess.InProcessEnvironment`); each node's cloud-api-adaptor is
a process of the kind under test (:class:`~.remote.RemoteAdaptor`), and the pod VMs are what
it made in libvirt (:class:`~.observed.ObservedPodVMs`).

libvirt failing at one creation step comes from the LPAR (:mod:`sim.lpar.libvirt_faults`,
preloaded into the adaptor's process), so any adaptor meets it, the reference and a user's
build alike. Guests that never report are a test seam of the reference adaptor only
(``PEERPODS_TEST_SILENT_GUESTS`` in its environment, never a CAA setting): a user's adaptor
is not applicable to the scenario that needs them (see :meth:`AdaptorEnvironment.silence_guests`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sim.errors import TargetError
from sim.harness.targets.adaptorprocess.host import SILENT_GUESTS_NA
from sim.harness.targets.adaptorprocess.remote import RemoteAdaptor
from sim.harness.targets.base import (
    ForwarderProbe,
    Guests,
    LibvirtFaults,
    LparCheck,
    LparInspection,
    NotApplicable,
    PodVMNetwork,
)
from sim.harness.targets.inprocess import InProcessEnvironment
from sim.peerpods.adaptorservice import SEAM_SILENT
from sim.peerpods.providers import Provider

if TYPE_CHECKING:
    from sim.harness.targets.adaptor.target import AdaptorTarget

__all__ = ["AdaptorEnvironment"]


class AdaptorEnvironment(InProcessEnvironment, Guests, LparInspection, LibvirtFaults, PodVMNetwork):
    """The reference cluster whose nodes' adaptors are processes under test."""

    def __init__(self, target: AdaptorTarget) -> None:
        self._target = target
        self._observed = target.observed()
        self._adaptors: list[RemoteAdaptor] = []
        self._seams: dict[str, str] = {}
        self._fault: dict[str, str] = {}  # the LPAR's libvirt failing, for the adaptors' processes
        super().__init__(self._observed, adaptor_factory=self._adaptor)

    def _adaptor(self, node: str, _provider: Provider) -> RemoteAdaptor:
        adaptor = RemoteAdaptor(
            node,
            self._target.launcher,
            environment=self._process_environment,
            domains=self._observed.domains,
            netns=self._target.pod_netns,
            reclaim=self._observed.delete_instance,
        )
        self._adaptors.append(adaptor)
        return adaptor

    def _process_environment(self, deployment: Mapping[str, str]) -> dict[str, str]:
        """What the adaptor's process gets: the deployment's keys, then what this LPAR fixes."""
        return {**deployment, **self._target.adaptor_overrides(), **self._fault, **self._seams}

    # --- the LPAR and the test seams ----------------------------------------------------------
    def lpar_checks(self, description: Path | None) -> list[LparCheck]:
        """The LPAR's prerequisites do not involve the adaptor: judged on the ``lpar`` target."""
        raise NotApplicable(
            "the LPAR's prerequisites are not the adaptor's doing; the lpar target judges them "
            "(the pod VM scenarios here still run on the LPAR the run made)"
        )

    def silence_guests(self, timeout: float) -> None:
        """Guests that never report: the reference adaptor's seam (its guests boot into a shell).

        A user's binary boots the pod VM image from disk, whose agent always answers; CAA's
        only bound on the wait is PROXY_TIMEOUT (default 5 min, settable from peer-pods-cm)
        after a lease wait that checks at 0, 6, 18, 42 ... s, so it could be judged in about
        6 s + PROXY_TIMEOUT. That needs an LPAR that keeps the guest's port 15150 from the
        adaptor, which this target does not build, and a scenario that does not expect the
        reference's words ("did not report within N s"): not applicable
        (:data:`SILENT_GUESTS_NA`)."""
        if not self._target.launcher.reference:
            raise NotApplicable(SILENT_GUESTS_NA)
        if self._target.podvm_arch != "s390x":
            raise NotApplicable(
                "the reference adaptor silences a guest through the s390x pod VM kernel's command line; "
                f"its pod VMs here are {self._target.podvm_arch}"
            )
        self._seams[SEAM_SILENT] = f"{timeout:g}"
        self.restart_adaptors()

    def inject_libvirt_fault(self, step: str) -> None:
        """The LPAR's libvirt fails the pod VM's ``step``: the adaptors restart with the fault
        layer preloaded (their first pod VM meets it)."""
        self._fault = self._target.libvirt_fault(step)
        self.restart_adaptors()

    def probe_forwarder(self, namespace: str, name: str) -> ForwarderProbe:
        return self._observed.probe_forwarder(self._vm(namespace, name))

    # --- what libvirt holds -------------------------------------------------------------------
    def leftovers(self) -> list[str]:
        return self._observed.libvirt.leftovers()

    def pod_vms(self) -> list[str]:
        return [entry.split(" ", 1)[1] for entry in self.leftovers() if entry.startswith("domain ")]

    def close(self) -> None:
        try:
            super().close()  # every pod deleted: StopVM for each pod VM
        finally:
            for adaptor in self._adaptors:
                adaptor.stop()
            self._target.release_pod_namespaces()
            left = self._observed.libvirt.leftovers()
            if left:
                self._observed.libvirt.remove_leftovers()
                raise TargetError(
                    f"pod VM resources left behind after the scenario (now removed): {', '.join(left)}"
                )
