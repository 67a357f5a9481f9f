"""The libvirt provider's storage: pod VM volumes in a libvirt pool (CAA ``volume.go``).

The boot volume is a qcow2 overlay on the base image (LIBVIRT_VOL_NAME), as large as the
larger of LIBVIRT_ROOT_DISK_SIZE and the base; the cloud-init ISO is a raw volume whose
bytes are uploaded through libvirt. Every volume made registers its removal in an
:class:`Undo`, so a creation that fails half-way leaves nothing behind.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.errors import TargetError
from sim.lpar import host

if TYPE_CHECKING:
    from sim.peerpods.providers.libvirt import LibvirtSettings

__all__ = ["LibvirtStorage", "Undo", "raw_volume_xml"]


@dataclass
class Undo:
    """Cleanup actions registered while creating, run newest first if creation fails."""

    actions: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def push(self, what: str, action: Callable[[], None]) -> None:
        self.actions.append((what, action))

    def run(self) -> list[str]:
        problems = []
        for what, action in reversed(self.actions):
            try:
                action()
            except Exception as exc:  # keep undoing; report what could not be undone
                problems.append(f"{what}: {exc}")
        self.actions.clear()
        return problems


def raw_volume_xml(name: str, size: int) -> str:
    return (
        f"<volume><name>{name}</name><capacity unit='B'>{size}</capacity>"
        "<target><format type='raw'/></target></volume>"
    )


class LibvirtStorage:
    """The pool named by the provider's current settings, and the volumes in it."""

    def __init__(
        self,
        connection: Any,
        libvirt: Any,
        *,
        simulated: bool,
        work_dir: Path,
        settings: Callable[[], LibvirtSettings],
    ) -> None:
        self.connection = connection
        self.libvirt = libvirt
        self.simulated = simulated
        self.work_dir = work_dir
        self._settings = settings

    def pool(self) -> Any:
        settings = self._settings()
        try:
            pool = self.connection.storagePoolLookupByName(settings.pool)
        except self.libvirt.libvirtError:
            uri = self.connection.getURI()
            raise TargetError(
                f"libvirt at {uri} has no storage pool {settings.pool!r} (LIBVIRT_POOL)"
            ) from None
        return pool

    def base_volume(self, pool: Any) -> Any:
        settings = self._settings()
        try:
            return pool.storageVolLookupByName(settings.base_volume)
        except self.libvirt.libvirtError:
            raise TargetError(
                f"pool {settings.pool!r} has no base volume {settings.base_volume!r} "
                "(LIBVIRT_VOL_NAME); run `peerpods-conformance lpar prepare` or upload the pod VM image"
            ) from None

    def root_volume_xml(self, name: str, base: Any) -> str:
        capacity = max(self._settings().root_disk_gib << 30, int(base.info()[1]))
        return (
            f"<volume><name>{name}</name><capacity unit='B'>{capacity}</capacity>"
            "<target><format type='qcow2'/></target>"
            f"<backingStore><path>{base.path()}</path><format type='qcow2'/></backingStore></volume>"
        )

    def create_volume(self, pool: Any, undo: Undo, xml: str) -> Any:
        volume = pool.createXML(xml, 0)
        name = volume.name()
        undo.push(f"volume {name}", lambda: self.delete_volume(pool, name))
        return volume

    def capacity(self, volume: str) -> int | None:
        try:
            return int(self.pool().storageVolLookupByName(volume).info()[1])
        except self.libvirt.libvirtError:
            return None

    def delete_volume(self, pool: Any, name: str) -> None:
        try:
            volume = pool.storageVolLookupByName(name)
        except self.libvirt.libvirtError:
            return
        path = Path(volume.path())
        volume.delete(0)
        if self.simulated and path.is_relative_to(self.work_dir):
            path.unlink(missing_ok=True)  # the bytes upload wrote in the driver's stead

    def upload(self, volume: Any, data: bytes) -> None:
        """Stream the bytes into the volume; the test driver cannot, so write its file."""
        if self.simulated:
            path = Path(volume.path())
            if not path.parent.is_dir() or not path.is_relative_to(self.work_dir):
                raise TargetError(
                    f"test pool volume {path} is not in the provider's directory {self.work_dir}"
                )
            path.write_bytes(data)
            return
        stream = self.connection.newStream(0)
        volume.upload(stream, 0, len(data), 0)
        stream.send(data)
        stream.finish()

    def read_volume(self, path: str) -> bytes:
        """A volume's bytes through libvirt (works for remote hosts); the test driver has no
        download, so there the file upload wrote is read."""
        if self.simulated:
            return Path(path).read_bytes()
        volume = self.connection.storageVolLookupByPath(path)
        size = int(volume.info()[1])
        stream = self.connection.newStream(0)
        volume.download(stream, 0, size, 0)
        chunks = []
        while True:
            chunk = stream.recv(1 << 18)
            if not chunk:
                break
            chunks.append(chunk)
        stream.finish()
        return b"".join(chunks)

    def backing(self, volumes: list[str]) -> str | None:
        for volume in volumes:
            if volume.endswith("-root.qcow2"):
                xml = self.pool().storageVolLookupByName(volume).XMLDesc(0)
                return ET.fromstring(xml).findtext("backingStore/path")
        return None

    def volumes_of(self, instance_id: str) -> list[str]:
        return sorted(v for v in self.pool().listVolumes() if v.startswith(instance_id + "-"))

    def leftovers(self, prefix: str) -> list[str]:
        """Every volume named ``prefix...`` except the base image."""
        settings = self._settings()
        try:
            pool = self.connection.storagePoolLookupByName(settings.pool)
        except self.libvirt.libvirtError:
            return []  # no pool, no volume in it
        try:
            host.refresh_pool(pool)  # volumes written beside libvirt's API count too
            names = pool.listVolumes()
        except self.libvirt.libvirtError as exc:  # not "none left": that would pass a leftover check
            raise TargetError(
                f"cannot list the volumes of pool {settings.pool!r} at {self.connection.getURI()}: "
                f"{exc.get_error_message() or exc}"
            ) from None
        return [f"volume {v}" for v in names if v.startswith(prefix) and v != settings.base_volume]
