"""The pod VMs an adaptor under test made, as the suite reads them back from libvirt.

A :class:`~sim.peerpods.providers.Provider` for the in-process cluster's questions
(``describe``, ``guest_report``) about domains it did not create: the facts come from
libvirt's own XML and volumes (through the libvirt provider's reading side), the guest's
report from the console the domain writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sim.errors import TargetError
from sim.lpar import console
from sim.peerpods.podvm import GuestReport
from sim.peerpods.providers import InstanceSpec
from sim.peerpods.providers.libvirt import LibvirtProvider

__all__ = ["ObservedPodVMs"]

REPORT_TIMEOUT_S = 30.0


class ObservedPodVMs:
    """Reads pod VMs; creating or deleting them is the adaptor's job, never this one's."""

    def __init__(self, libvirt: LibvirtProvider) -> None:
        self.libvirt = libvirt

    def create_instance(self, spec: InstanceSpec) -> str:
        raise TargetError("pod VMs are made by the cloud-api-adaptor under test, not by the suite")

    def delete_instance(self, instance_id: str) -> None:
        self.libvirt.delete_instance(instance_id)

    def describe(self, instance_id: str) -> dict[str, Any]:
        return self.libvirt.describe(instance_id)

    def guest_report(self, instance_id: str) -> GuestReport:
        """The report the guest's agent printed on the domain's console."""
        facts = self.libvirt.describe(instance_id)
        path = facts.get("console_path")
        if not path:
            raise TargetError(f"pod VM {instance_id} has no console file to read its guest's report from")
        raw = console.wait_for_report(
            Path(path), timeout=REPORT_TIMEOUT_S, alive=lambda: self.libvirt.boot.active(instance_id)
        )
        return GuestReport.from_json(json.dumps(raw))

    def domains(self) -> set[str]:
        """The names of every domain that exists now."""
        return {d.name() for d in self.libvirt.connection.listAllDomains(0)}
