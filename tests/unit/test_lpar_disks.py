"""The cloud-init disk, the console report reader and the domain XML."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sim.errors import TargetError
from sim.lpar import cidata, console, domain

USER_DATA = "#cloud-config\nwrite_files:\n- path: /run/peerpod/apf.json\n  content: '{}'\n"


def test_nocloud_iso_round_trip() -> None:
    iso = cidata.build_nocloud_iso(USER_DATA, hostname="podvm-web-01234567")
    assert iso[16 * 2048 + 1 : 16 * 2048 + 6] == b"CD001"
    assert iso[16 * 2048 + 40 : 16 * 2048 + 46] == b"cidata"
    assert cidata.read_user_data(iso, where="test") == USER_DATA


def test_reading_something_else_names_the_disk() -> None:
    with pytest.raises(TargetError, match="vdb of podvm-x: not an ISO 9660"):
        cidata.read_user_data(b"\0" * 4096, where="vdb of podvm-x")


def _without_path_tables(iso: bytes) -> bytes:
    """The same disk as CAA's ISO writer (kdomanski/iso9660) leaves it: no path tables."""
    image = bytearray(iso)
    pvd = 16 * 2048
    image[pvd + 132 : pvd + 156] = bytes(24)  # path table size and the four table locations
    return bytes(image)


def test_a_disk_without_path_tables_is_read_from_its_root_directory() -> None:
    iso = _without_path_tables(cidata.build_nocloud_iso("#cloud-config\nwrite_files: []\n", hostname="vm"))
    assert cidata.read_user_data(iso, where="vdb") == "#cloud-config\nwrite_files: []\n"


def test_a_disk_without_path_tables_or_user_data_names_what_is_missing() -> None:
    iso = _without_path_tables(cidata.build_nocloud_iso("x", hostname="vm"))
    broken = iso.replace(b"USER_DATA", b"OTHER_DAT").replace(b"user-data", b"other-dat")
    with pytest.raises(TargetError, match="vdb: the cloud-init disk has no user-data"):
        cidata.read_user_data(broken, where="vdb")


def test_report_is_found_among_kernel_messages() -> None:
    text = '[ 1.0] Linux version\r\nPEERPODS-GUEST-REPORT {"arch": "s390x"}\r\n[ 2.0] reboot: Power down\n'
    assert console.find_report(text) == {"arch": "s390x"}
    assert console.find_report('PEERPODS-GUEST-REPORT {"arch": "s3') is None  # still being written


def test_waiting_for_a_silent_guest_times_out(tmp_path: Path) -> None:
    log = tmp_path / "console"
    log.write_text("booting...\n")
    with pytest.raises(TargetError, match=r"did not report within 0.2 s; console tail: 'booting"):
        console.wait_for_report(log, timeout=0.2)


def test_a_guest_that_stops_without_a_report_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="stopped without a report"):
        console.wait_for_report(tmp_path / "never", timeout=30, alive=lambda: False)


def test_report_written_later_is_picked_up(tmp_path: Path) -> None:
    log = tmp_path / "console"
    timer = threading.Timer(0.1, lambda: log.write_text('PEERPODS-GUEST-REPORT {"ok": true}\n'))
    timer.start()
    assert console.wait_for_report(log, timeout=5) == {"ok": True}


def spec(*, launch_security: str | None = None) -> domain.DomainSpec:
    """A pod VM's domain spec, as the provider builds it for an s390x pod VM."""
    return domain.DomainSpec(
        name="podvm-web-01234567",
        vcpus=2,
        memory_mib=8192,
        domain_type="qemu",
        machine="s390-ccw-virtio-7.2",
        emulator="/usr/bin/qemu-system-s390x",
        boot_volume="/pool/podvm-web-01234567-root.qcow2",
        cidata_volume="/pool/podvm-web-01234567-cloudinit.iso",
        network="default",
        console_path="/var/log/libvirt/qemu/podvm-web-01234567.console",
        boot=domain.BootAssets("/boot/k", "/boot/i", "console=ttysclp0"),
        launch_security=launch_security,
    )


def test_domain_xml_has_the_s390x_shape_of_spec_section_6() -> None:
    facts = domain.domain_facts(domain.build_domain_xml(spec()))
    assert (facts["arch"], facts["machine"], facts["type"]) == ("s390x", "s390-ccw-virtio-7.2", "qemu")
    assert (facts["vcpus"], facts["memory_mib"]) == (2, 8192)
    vda, vdb = facts["disks"]
    assert (vda["dev"], vda["format"], vda["bus"], vda["iommu"]) == ("vda", "qcow2", "virtio", "on")
    assert (vdb["dev"], vdb["format"], vdb["bus"], vdb["iommu"], vdb["readonly"]) == (
        "vdb",
        "raw",
        "virtio",
        "on",
        True,
    )
    assert (facts["console"], facts["network"], facts["nic_model"]) == ("sclp", "default", "virtio")
    assert (facts["rng"], facts["memballoon"], facts["memballoon_iommu"]) == ("virtio", "virtio", "on")
    assert facts["launch_security"] is None
    assert facts["kernel"] == "/boot/k"


def test_secure_execution_domain_asks_for_s390_pv() -> None:
    facts = domain.domain_facts(domain.build_domain_xml(spec(launch_security="s390-pv")))
    assert facts["launch_security"] == "s390-pv"
