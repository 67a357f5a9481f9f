"""The reference pod VM provider: instances in a dict, the guest's logic run on real files.

It is not a fake of libvirt. It is the reference the real backends are compared with: it
keeps exactly what the adaptor asked for, and its :meth:`MemoryProvider.guest_report`
runs the pod VM's own user-data processing (:func:`sim.peerpods.podvm.process_user_data`) on the
exact cloud-config the adaptor produced, writing real files under a private temporary
directory, so initdata scenarios check what a guest would really write.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.errors import ConformanceInputError, TargetError
from sim.peerpods.providers import InstanceSpec, podvm_name

if TYPE_CHECKING:
    from sim.peerpods.podvm import GuestReport

__all__ = ["MemoryProvider", "UnknownInstanceError"]


class UnknownInstanceError(ConformanceInputError):
    """An instance id the provider never created (or already deleted)."""


class MemoryProvider:
    """Pod VMs as records; the guest side is computed on first request and kept."""

    arch = "s390x"

    def __init__(self, root: Path | None = None) -> None:
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        self._root = Path(tempfile.mkdtemp(prefix="podvms-", dir=root))
        self._instances: dict[str, InstanceSpec] = {}
        self._reports: dict[str, GuestReport] = {}

    def create_instance(self, spec: InstanceSpec) -> str:
        """Record the instance; the id is the libvirt-style pod VM name."""
        name = podvm_name(spec.pod_name, spec.sandbox_id)
        if name in self._instances:
            raise TargetError(f"pod VM {name} already exists")
        self._instances[name] = spec
        return name

    def delete_instance(self, instance_id: str) -> None:
        """Forget the instance and remove the files its guest wrote."""
        self._spec(instance_id)
        del self._instances[instance_id]
        self._reports.pop(instance_id, None)
        shutil.rmtree(self._root / instance_id, ignore_errors=True)

    def guest_report(self, instance_id: str) -> GuestReport:
        """Run the pod VM's user-data processing once, on real files, and report it."""
        if instance_id not in self._reports:
            from sim.peerpods.podvm import process_user_data

            spec = self._spec(instance_id)
            guest_root = self._root / instance_id
            guest_root.mkdir(parents=True, exist_ok=True)
            self._reports[instance_id] = process_user_data(spec.user_data, guest_root, arch=self.arch)
        return self._reports[instance_id]

    def guest_root(self, instance_id: str) -> Path:
        """Where the guest's files are (after :meth:`guest_report` ran)."""
        self._spec(instance_id)
        return self._root / instance_id

    def describe(self, instance_id: str) -> dict[str, Any]:
        """The facts of the spec the adaptor asked for, plus the instance name."""
        facts: dict[str, Any] = {"name": instance_id, "provider": "memory", "arch": self.arch}
        facts.update(asdict(self._spec(instance_id)))
        return facts

    def instances(self) -> list[str]:
        """Ids of every instance that currently exists."""
        return sorted(self._instances)

    def close(self) -> None:
        """Delete every instance and the temporary directory."""
        self._instances.clear()
        self._reports.clear()
        shutil.rmtree(self._root, ignore_errors=True)

    def _spec(self, instance_id: str) -> InstanceSpec:
        try:
            return self._instances[instance_id]
        except KeyError:
            raise UnknownInstanceError(f"no pod VM named {instance_id!r}") from None
