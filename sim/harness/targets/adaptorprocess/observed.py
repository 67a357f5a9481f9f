"""The pod VMs an adaptor under test made, as the suite reads them back from libvirt.

A :class:`~sim.peerpods.providers.Provider` for the in-process cluster's questions
(``describe``, ``guest_report``) about domains it did not create: the facts come from
libvirt's own XML and volumes (through the libvirt provider's reading side), the guest's
report from the console the domain writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.errors import TargetError
from sim.lpar import console
from sim.peerpods.diskreport import DiskGuestReport
from sim.peerpods.podvm import GuestReport
from sim.peerpods.providers import InstanceSpec
from sim.peerpods.providers.libvirt import LibvirtProvider

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
            return GuestReport.from_json(json.dumps(raw))
        if self.ask_guest is None:
            raise TargetError(f"pod VM {instance_id} writes no console file, and its guest cannot be reached")
        address = self.address(instance_id)
        answered = console.find_report(self.ask_guest(address))
        if answered is None:
            raise TargetError(f"pod VM {instance_id} at {address} answered no report on its forwarder port")
        return DiskGuestReport.from_dict(answered).guest

    def address(self, instance_id: str) -> str:
        """The pod VM's address, from the libvirt network's DHCP leases (as CAA finds it)."""
        libvirt = self.libvirt.libvirt
        dom = self.libvirt.connection.lookupByName(instance_id)
        found = dom.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0) or {}
        for interface in found.values():
            for entry in interface.get("addrs") or []:
                if entry.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4:
                    return str(entry["addr"])
        raise TargetError(f"pod VM {instance_id} has no DHCP lease on its network")

    def domains(self) -> set[str]:
        """The names of every domain that exists now."""
        return {d.name() for d in self.libvirt.connection.listAllDomains(0)}
