"""Pod VMs booted from their volume, as CAA boots them: the domain's boot order, the readiness
(a DHCP lease, then the forwarder port accepting) and the report of either boot."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sim.errors import TargetError
from sim.lpar import domain
from sim.lpar.assets import Assets
from sim.peerpods.diskreport import report_of
from sim.peerpods.podvm import GuestReportError
from sim.peerpods.providers import libvirt_boot
from sim.peerpods.providers.libvirt_boot import GuestBoot, Instance

from .test_lpar_disks import spec

DIRECT_REPORT = {
    "arch": "s390x",
    "machine": "8561",
    "algorithm": "sha256",
    "digest": "ab" * 32,
    "dummy": False,
    "written": {},
    "ignored": [],
    "error": None,
}
DISK_KEYS = {
    "mode": "disk",
    "address": "192.168.150.7/24",
    "router": "192.168.150.1",
    "pod_network": None,
    "network_error": None,
    "listening": True,
}


def test_without_a_kernel_the_boot_volume_is_first_in_the_boot_order() -> None:
    facts = domain.domain_facts(domain.build_domain_xml(dataclasses.replace(spec(), boot=None)))
    assert facts["kernel"] is None
    assert [(d["dev"], d["boot_order"]) for d in facts["disks"]] == [("vda", 1), ("vdb", None)]


def test_a_kernel_handed_over_gives_no_boot_order() -> None:
    facts = domain.domain_facts(domain.build_domain_xml(spec()))
    assert [d["boot_order"] for d in facts["disks"]] == [None, None]


def test_either_boots_report_is_read_and_the_disk_keys_are_checked() -> None:
    assert report_of(DIRECT_REPORT).digest == "ab" * 32
    assert report_of({**DIRECT_REPORT, **DISK_KEYS}).digest == "ab" * 32
    with pytest.raises(GuestReportError, match="listening"):
        report_of({**DIRECT_REPORT, **DISK_KEYS, "listening": "yes"})
    with pytest.raises(GuestReportError, match="disk-mode guest report lacks"):
        report_of({**DIRECT_REPORT, "mode": "disk"})


class FakeLibvirt:
    """Just what GuestBoot reads of the libvirt module."""

    VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE = 0
    VIR_IP_ADDR_TYPE_IPV4 = 0

    class libvirtError(Exception):
        pass


class FakeDomain:
    def __init__(self, lease_after: float | None) -> None:
        self.started = time.monotonic()
        self.lease_after = lease_after

    def interfaceAddresses(self, source: int, flags: int) -> dict[str, Any]:
        if self.lease_after is None or time.monotonic() - self.started < self.lease_after:
            return {}
        return {"vnet0": {"addrs": [{"type": 0, "addr": "127.0.0.1", "prefix": 8}]}}

    def isActive(self) -> bool:
        return True


class FakeConnection:
    def __init__(self, dom: FakeDomain) -> None:
        self.dom = dom

    def lookupByName(self, name: str) -> FakeDomain:
        return self.dom


@pytest.fixture
def forwarder(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1 standing in for the guest's port 15150."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        monkeypatch.setattr(libvirt_boot, "FORWARDER_PORT", listener.getsockname()[1])
        yield listener


def _boot(tmp_path: Path, dom: FakeDomain, timeout: float) -> GuestBoot:
    assets = Assets(
        tmp_path, tmp_path / "k", tmp_path / "i", "console=ttysclp0", "key", "0" * 64, "0" * 64, {}
    )
    return GuestBoot(
        FakeConnection(dom),
        FakeLibvirt,
        simulated=True,  # boot files are used where they are, not staged for a daemon
        assets=assets,
        work_dir=tmp_path,
        report_timeout=timeout,
        cmdline_extra="",
        queue=None,
        from_volume=True,
    )


def test_volume_boot_hands_no_kernel_over_unless_the_guest_is_silenced(tmp_path: Path) -> None:
    boot = _boot(tmp_path, FakeDomain(0), 1)
    assert boot.boot_assets() is None
    boot.cmdline_extra = "rdinit=/bin/sh"
    silenced = boot.boot_assets()
    assert silenced is not None and silenced.cmdline.endswith("rdinit=/bin/sh")


def test_ready_once_leased_and_the_forwarder_accepts(tmp_path: Path, forwarder: socket.socket) -> None:
    boot = _boot(tmp_path, FakeDomain(lease_after=0.3), 5)
    instance = Instance("podvm-a-01234567", [], tmp_path / "console")
    started = time.monotonic()
    boot._wait_forwarder(instance, started + 5, lambda: True)
    assert time.monotonic() - started >= 0.3  # not before the lease


def test_no_lease_by_the_deadline_names_it(tmp_path: Path) -> None:
    boot = _boot(tmp_path, FakeDomain(lease_after=None), 0.3)
    instance = Instance("podvm-a-01234567", [], tmp_path / "console")
    with pytest.raises(TargetError, match=r"did not report within 0.3 s \(no DHCP lease on its network\)"):
        boot._wait_forwarder(instance, time.monotonic() + 0.3, lambda: True)


def test_a_lease_without_a_listener_names_the_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused
        monkeypatch.setattr(libvirt_boot, "FORWARDER_PORT", port)
        boot = _boot(tmp_path, FakeDomain(lease_after=0), 0.3)
        instance = Instance("podvm-a-01234567", [], tmp_path / "console")
        with pytest.raises(TargetError, match=f"nothing accepted on 127.0.0.1:{port}"):
            boot._wait_forwarder(instance, time.monotonic() + 0.3, lambda: True)


def test_a_guest_that_stops_fails_at_once(tmp_path: Path) -> None:
    boot = _boot(tmp_path, FakeDomain(lease_after=None), 30)
    instance = Instance("podvm-a-01234567", [], tmp_path / "console")
    (tmp_path / "console").write_text("Kernel panic\n")
    started = time.monotonic()
    with pytest.raises(TargetError, match="stopped before it was ready; console tail: 'Kernel panic"):
        boot._wait_forwarder(instance, started + 30, lambda: False)
    assert time.monotonic() - started < 5


def test_an_x86_64_pod_vm_is_shaped_as_createDomainXMLx86_64() -> None:
    x86 = dataclasses.replace(spec(), arch="x86_64", domain_type="kvm", boot=None, emulator=None)
    xml = domain.build_domain_xml(x86)
    facts = domain.domain_facts(xml)
    assert (facts["arch"], facts["type"], facts["kernel"], facts["console"]) == (
        "x86_64",
        "kvm",
        None,
        "serial",
    )
    assert [(d["dev"], d["bus"], d["format"], d["boot_order"], d["readonly"]) for d in facts["disks"]] == [
        ("sda", "sata", "qcow2", 1, False),
        ("hda", "ide", "raw", None, True),
    ]
    assert (facts["network"], facts["nic_model"], facts["launch_security"]) == ("default", "virtio", None)


def test_libvirt_accepts_the_x86_64_domain() -> None:
    libvirt = pytest.importorskip("libvirt")
    connection = libvirt.open("test:///default")
    try:
        x86 = dataclasses.replace(spec(), arch="x86_64", domain_type="test", boot=None, emulator=None)
        dom = connection.defineXML(domain.build_domain_xml(x86))
        facts = domain.domain_facts(dom.XMLDesc(0))
        assert [(d["dev"], d["boot_order"]) for d in facts["disks"]] == [("sda", 1), ("hda", None)]
        dom.undefine()
    finally:
        connection.close()
