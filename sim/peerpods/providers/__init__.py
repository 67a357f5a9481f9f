"""How the cloud-api-adaptor creates pod VMs: the provider interface shared by every backend.

CAA talks to one cloud provider per deployment (libvirt on IBM Z). The suite keeps that
seam: :class:`Provider` is what the adaptor needs, ``memory`` is the reference backend and
``libvirt`` (lpar engineer) the real one, so the same cluster logic drives both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sim.peerpods.podvm import GuestReport

__all__ = ["InstanceSpec", "Provider", "podvm_name"]

_NOT_NAME = re.compile(r"[^a-z0-9-]")


@dataclass(frozen=True)
class InstanceSpec:
    """Everything a provider needs to create one pod VM, decided by the adaptor."""

    pod_name: str
    pod_namespace: str
    sandbox_id: str
    vcpus: int
    memory_mib: int
    user_data: str


@runtime_checkable
class Provider(Protocol):
    """A pod VM backend. ``create_instance`` must leave nothing behind when it raises."""

    def create_instance(self, spec: InstanceSpec) -> str:
        """Create and start the pod VM; return its instance id (the domain name on libvirt)."""
        ...

    def delete_instance(self, instance_id: str) -> None:
        """Delete the pod VM and everything created for it (disks, cloud-init volume)."""
        ...

    def guest_report(self, instance_id: str) -> GuestReport:
        """What the pod VM did with its user data."""
        ...

    def describe(self, instance_id: str) -> dict[str, Any]:
        """Provider-specific facts; at least ``name``, ``vcpus``, ``memory_mib``, ``user_data``."""
        ...


#: CAA's libvirt provider passes maxInstanceNameLen = 63 to GenerateInstanceName.
MAX_INSTANCE_NAME = 63


def _sanitize(text: str) -> str:
    return _NOT_NAME.sub("-", text.lower())


def podvm_name(pod_name: str, sandbox_id: str, max_length: int = MAX_INSTANCE_NAME) -> str:
    """The pod VM's name as CAA builds it (``src/cloud-providers/util/instance.go``
    ``GenerateInstanceName``).

    ``podvm-<pod>-<first 8 characters of the sandbox id>``, pod name and sandbox id each
    lower-cased with every character outside ``[a-z0-9-]`` replaced by ``-``; the pod name
    is cut so that ``podvm-`` + pod + ``-`` + 8 characters fit in ``max_length`` (63).
    """
    pod, sandbox = _sanitize(pod_name), _sanitize(sandbox_id)
    keep = len(pod)
    if max_length > 0 and len("podvm") + len(pod) + 10 > max_length:
        keep = max_length - len("podvm") - 10
    return f"podvm-{pod[:keep]}-{sandbox[:8]}"
