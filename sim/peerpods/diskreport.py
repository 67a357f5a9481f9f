"""The report of a pod VM booted from its disk image (the agent's disk mode, podvm-agent/disk.go).

It is the direct-boot report (:class:`sim.peerpods.podvm.GuestReport`, same keys, same
checks) plus what the disk mode adds: the mode, the DHCP lease, the pod network apf.json
describes, and whether the agent listens on the agent-protocol-forwarder's port.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sim.peerpods.podvm import GuestReport, GuestReportError

#: Keys the disk mode adds to the direct-boot report, and the type each must have.
DISK_KEYS: dict[str, tuple[type, ...]] = {
    "mode": (str,),
    "address": (str, type(None)),
    "router": (str, type(None)),
    "pod_network": (dict, type(None)),
    "network_error": (str, type(None)),
    "listening": (bool,),
}


def report_of(raw: dict[str, Any]) -> GuestReport:
    """The guest's report from a parsed report line of either boot (a disk-booted guest's has
    the disk mode's keys too, checked here and set aside)."""
    if "mode" in raw:
        return DiskGuestReport.from_dict(raw).guest
    return GuestReport.from_json(json.dumps(raw))


@dataclass(frozen=True)
class DiskGuestReport:
    """What a disk-booted pod VM did: its user data (``guest``) and its network."""

    guest: GuestReport
    mode: str
    address: str | None
    router: str | None
    pod_network: dict[str, Any] | None
    network_error: str | None
    listening: bool

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DiskGuestReport:
        """Split and type-check a parsed report line; GuestReportError names a bad field."""
        missing = sorted(set(DISK_KEYS) - set(raw))
        if missing:
            raise GuestReportError(
                f"disk-mode guest report lacks {missing} (was the image booted with peerpods.podvm=disk?)"
            )
        for key, types in DISK_KEYS.items():
            if not isinstance(raw[key], types):
                raise GuestReportError(f"guest report field {key!r} has the wrong type: {raw[key]!r}")
        base = {key: value for key, value in raw.items() if key not in DISK_KEYS}
        return cls(
            guest=GuestReport.from_json(json.dumps(base)),
            mode=raw["mode"],
            address=raw["address"],
            router=raw["router"],
            pod_network=raw["pod_network"],
            network_error=raw["network_error"],
            listening=raw["listening"],
        )

    @property
    def ip(self) -> str | None:
        """The leased address without its prefix length."""
        return self.address.split("/", 1)[0] if self.address else None
