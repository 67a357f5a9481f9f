"""The pod VMs an adaptor under test made, as the suite reads them back from libvirt.

A :class:`~sim.peerpods.providers.Provider` for the in-process cluster's questions
(``describe``, ``guest_report``) about domains it did not create: the facts come from
libvirt's own XML and volumes (through the libvirt provider's reading side), the guest's
report from the console the domain writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.errors import TargetError
from sim.harness.targets.base import ForwarderProbe, NotApplicable
from sim.lpar import console
from sim.peerpods.diskreport import DiskGuestReport, report_of
from sim.peerpods.podvm import GuestReport
from sim.peerpods.providers import InstanceSpec
from sim.peerpods.providers.libvirt import LibvirtProvider
from sim.peerpods.providers.libvirt_boot import lease_address

__all__ = ["ObservedPodVMs"]

REPORT_TIMEOUT_S = 30.0


class ObservedPodVMs:
    """Reads pod VMs; creating or deleting them is the adaptor's job, never this one's."""

    def __init__(self, libvirt: LibvirtProvider, ask_guest: Callable[[str], str] | None = None) -> None:
        self.libvirt = libvirt
        #: Asks the guest at an address for its report (its agent answers on the forwarder port).
        self.ask_guest = ask_guest

    def create_instance(self, spec: InstanceSpec) -> str:
        raise TargetError("pod VMs are made by the cloud-api-adaptor under test, not by the suite")

    def delete_instance(self, instance_id: str) -> None:
        self.libvirt.delete_instance(instance_id)

    def describe(self, instance_id: str) -> dict[str, Any]:
        return self.libvirt.describe(instance_id)

    def guest_report(self, instance_id: str) -> GuestReport:
        """The guest's own report: from the console file the domain writes, or, for a pod VM
        whose console is a terminal (CAA's), from its agent on the forwarder port."""
        facts = self.libvirt.describe(instance_id)
        path = facts.get("console_path")
        if path:
            raw = console.wait_for_report(
                Path(path), timeout=REPORT_TIMEOUT_S, alive=lambda: self.libvirt.boot.active(instance_id)
            )
            return report_of(raw)
        if self.ask_guest is None:
            raise TargetError(f"pod VM {instance_id} writes no console file, and its guest cannot be reached")
        address = self.address(instance_id)
        answered = console.find_report(self.ask_guest(address))
        if answered is None:
            raise TargetError(f"pod VM {instance_id} at {address} answered no report on its forwarder port")
        return DiskGuestReport.from_dict(answered).guest

    def address(self, instance_id: str) -> str:
        """The pod VM's address, from the libvirt network's DHCP leases (as CAA finds it)."""
        found = self.lease(instance_id)
        if found is None:
            raise TargetError(f"pod VM {instance_id} has no DHCP lease on its network")
        return found

    def probe_forwarder(self, instance_id: str) -> ForwarderProbe:
        """Its lease now, and what its forwarder port answers when asked once from the LPAR."""
        if self.ask_guest is None:
            raise NotApplicable(
                "the pod VMs' network is that of the libvirt given with --libvirt-uri; the suite enters "
                "only networks in namespaces the run made (the adaptor target without --libvirt-uri)"
            )
        address = self.lease(instance_id)
        if address is None:
            return ForwarderProbe(None, None, "no DHCP lease on its network")
        try:
            # it accepted: its answer, empty when it said nothing
            return ForwarderProbe(address, self.ask_guest(address).strip())
        except TargetError as exc:
            return ForwarderProbe(address, None, str(exc))

    def lease(self, instance_id: str) -> str | None:
        """The pod VM's leased address now, or None."""
        return lease_address(self.libvirt.connection, self.libvirt.libvirt, instance_id)

    def domains(self) -> set[str]:
        """The names of every domain that exists now."""
        return {d.name() for d in self.libvirt.connection.listAllDomains(0)}
