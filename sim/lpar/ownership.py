"""Who made a pod VM: the run (and process) that owns each domain and volume on a libvirt host.

Several runs of the suite, and the workers of one run, share a libvirt daemon (``qemu:///system``,
or a remote LPAR). None of them may remove what another one still uses, and what a killed run
left behind must still go. So every pod VM domain the suite defines carries its owner in the
domain's libvirt ``<metadata>``, an element in the suite's own XML namespace: the run id and the
owning process (pid, host, its start time and the host's boot id, so a reused pid is not taken
for the owner). A volume belongs to the domain of its name (``<domain>-root.qcow2``,
``<domain>-cloudinit.iso``); for the moments when a volume exists without its domain (made
before the domain is defined, or left when a run died between the two), each process keeps an
owner record, a small JSON file naming its pod VMs.

A leftover is removed only when its owner is dead. An owner on another host cannot be checked
from here and counts as alive; so does anything without an owner (made by someone else).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

from sim.lpar.netns import Owner

#: The run id a run hands its workers and its pod VMs' owner records (one home: here).
RUN_ID_ENV = "PEERPODS_RUN_ID"

#: The XML namespace of the suite's element in a domain's ``<metadata>`` (libvirt keys metadata by it).
NAMESPACE = "https://github.com/peerpods-conformance/xmlns/owner/1"
PREFIX = "peerpods"
ELEMENT = f"{{{NAMESPACE}}}owner"
#: Where each process of a run keeps its owner record (per user; ``$PEERPODS_OWNER_DIR`` overrides).
OWNER_DIR_ENV = "PEERPODS_OWNER_DIR"
VOLUME_SUFFIXES = ("-root.qcow2", "-cloudinit.iso")

ET.register_namespace(PREFIX, NAMESPACE)


@dataclass(frozen=True)
class RunOwner:
    """One process of one run: the owner of the pod VMs it makes."""

    run_id: str
    pid: int
    host: str
    start_time: int | None
    boot_id: str | None

    @classmethod
    def current(cls, run_id: str) -> RunOwner:
        here = Owner.current()
        return cls(run_id, here.pid, socket.gethostname(), here.start_time, here.boot_id)

    def same_process(self, other: RunOwner) -> bool:
        return (self.run_id, self.pid, self.host, self.start_time) == (
            other.run_id,
            other.pid,
            other.host,
            other.start_time,
        )

    def alive(self) -> bool:
        """The owning process still runs. On another host it cannot be told: counted as alive."""
        if self.host != socket.gethostname():
            return True
        return Owner(self.pid, self.start_time, self.boot_id).alive()

    def element(self) -> ET.Element:
        """The ``<peerpods:owner .../>`` element for a domain's ``<metadata>``."""
        attrs = {"run": self.run_id, "pid": str(self.pid), "host": self.host}
        if self.start_time is not None:
            attrs["start"] = str(self.start_time)
        if self.boot_id is not None:
            attrs["boot"] = self.boot_id
        return ET.Element(ELEMENT, attrs)

    def describe(self) -> str:
        return f"run {self.run_id}, pid {self.pid} on {self.host}"

    @classmethod
    def from_element(cls, element: ET.Element) -> RunOwner | None:
        try:
            start = element.get("start")
            return cls(
                run_id=element.attrib["run"],
                pid=int(element.attrib["pid"]),
                host=element.attrib["host"],
                start_time=int(start) if start is not None else None,
                boot_id=element.get("boot"),
            )
        except (KeyError, ValueError):
            return None


def owner_of_domain(xml_text: str) -> RunOwner | None:
    """The owner a domain's XML names in its ``<metadata>``, or None (not the suite's)."""
    try:
        element = ET.fromstring(xml_text).find(f"metadata/{ELEMENT}")
    except ET.ParseError:
        return None
    return RunOwner.from_element(element) if element is not None else None


def domain_of_volume(volume: str) -> str | None:
    """The pod VM a volume belongs to, by its name; None for any other volume."""
    for suffix in VOLUME_SUFFIXES:
        if volume.endswith(suffix):
            return volume.removesuffix(suffix)
    return None


def default_owner_dir() -> Path:
    configured = os.environ.get(OWNER_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"peerpods-conformance-{os.getuid()}" / "owners"


class OwnerRecords:
    """The owner records of every process on this host: ``<run id>-<pid>.json`` in one directory.

    A record names its owner, the libvirt URI and the pod VMs the process made there; it is
    written before a pod VM's first volume, so a volume whose domain is gone still has an owner.
    """

    def __init__(self, owner: RunOwner, uri: str, directory: Path | None = None) -> None:
        self.owner = owner
        self.uri = uri
        self.directory = directory or default_owner_dir()
        self.path = self.directory / f"{owner.run_id}-{owner.pid}.json"
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def add(self, pod_vm: str) -> None:
        """Record that this process is about to make ``pod_vm`` (before its first volume)."""
        with self._lock:
            if pod_vm in self._names:
                return
            self._names.add(pod_vm)
            self._write()

    def _write(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        data = {"owner": asdict(self.owner), "uri": self.uri, "pod_vms": sorted(self._names)}
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(json.dumps(data), encoding="utf-8")
        scratch.replace(self.path)

    def remove(self) -> None:
        """The process is done with this libvirt host (its own pod VMs are gone)."""
        self.path.unlink(missing_ok=True)

    def owners(self) -> dict[str, tuple[RunOwner, Path]]:
        """Pod VM name -> (owner, record file) over every readable record for this URI."""
        found: dict[str, tuple[RunOwner, Path]] = {}
        try:
            paths = sorted(self.directory.glob("*.json"))
        except OSError:
            return found
        for path in paths:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                owner = RunOwner(**data["owner"])
                if data["uri"] != self.uri:
                    continue
                for name in data["pod_vms"]:
                    found[str(name)] = (owner, path)
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return found

    def remove_dead(self, owners: dict[str, tuple[RunOwner, Path]]) -> None:
        """Delete the records of dead owners (after their pod VMs were removed)."""
        dead = {path for owner, path in owners.values() if not owner.alive()}
        for path in dead:
            path.unlink(missing_ok=True)
