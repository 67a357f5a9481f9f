"""The pod VM disk images (``lpar prepare --disk``) booted by bare QEMU as CAA's domain boots them.

Each image boots from its qcow2 volume alone (no ``-kernel``) with a cidata ISO made by the
suite's own code; the guest must print its report with the user data applied as the
reference pod VM applies it, hold a DHCP lease from QEMU's user network, and answer on
port 15150 (forwarded from 127.0.0.1). Skipped, with the reason, where an image or QEMU
is missing. x86_64 runs under KVM where the host's KVM can boot it, else under TCG.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from sim.errors import TargetError
from sim.lpar import cidata
from sim.lpar.console import REPORT_PREFIX
from sim.lpar.diskboot import boot, x86_accelerator
from sim.lpar.diskimage import DiskImage, DiskImageMissing, find_disk_image
from sim.peerpods.cloudconfig import build_user_data
from sim.peerpods.diskreport import DiskGuestReport
from sim.peerpods.initdata import encode
from sim.peerpods.podvm import process_user_data

TOML = (
    b'algorithm = "sha384"\nversion = "0.1.0"\n\n[data]\n"aa.toml" = "x"\n"policy.rego" = "p"\n"../x" = "e"\n'
)
POD_NETWORK = {"interface": "eth0", "pod-ip": "10.244.1.5/24", "tunnel-type": "vxlan"}
APF = json.dumps({"pod-namespace": "/run/netns/podns", "pod-name": "disk", "pod-network": POD_NETWORK})
QEMU = {"amd64": "qemu-system-x86_64", "s390x": "qemu-system-s390x"}
TIMEOUT = 180  # TCG on two shared cores; a KVM boot takes seconds


def image_or_skip(arch: str) -> DiskImage:
    if shutil.which(QEMU[arch]) is None:
        pytest.skip(f"{QEMU[arch]} is not installed (.ci/setup-lpar-host)")
    try:
        return find_disk_image(arch)
    except DiskImageMissing as exc:
        pytest.skip(str(exc))


def cidata_iso(tmp_path: Path, user_data: str) -> Path:
    iso = tmp_path / "cidata.iso"
    iso.write_bytes(cidata.build_nocloud_iso(user_data, hostname="podvm-disk"))
    return iso


@pytest.mark.parametrize("arch", ["amd64", "s390x"])
def test_the_disk_image_boots_applies_the_user_data_and_answers_on_15150(arch: str, tmp_path: Path) -> None:
    image = image_or_skip(arch)
    user_data = build_user_data(apf_json=APF, initdata=encode(TOML))
    accel = x86_accelerator()[0] if arch == "amd64" else "tcg"
    with boot(arch, image.volume, cidata_iso(tmp_path, user_data), tmp_path, accel=accel) as vm:
        raw, _ = vm.wait_report(TIMEOUT)
        answer, _ = vm.wait_port(60)
    report = DiskGuestReport.from_dict(raw)
    expected = process_user_data(user_data, tmp_path / "reference", machine=report.guest.machine)
    expected.arch = "x86_64" if arch == "amd64" else "s390x"
    assert report.guest.to_json() == expected.to_json()
    assert report.guest.error is None and report.guest.ignored == ["../x"]
    assert report.mode == "disk" and report.listening
    # QEMU's user network: 10.0.2.0/24, the guest's DHCP address 10.0.2.15, gateway 10.0.2.2.
    assert (report.address, report.router, report.network_error) == ("10.0.2.15/24", "10.0.2.2", None)
    assert report.pod_network == POD_NETWORK
    line = answer.decode().strip()
    assert line.startswith(REPORT_PREFIX) and json.loads(line[len(REPORT_PREFIX) :]) == raw


def test_a_guest_whose_user_data_fails_reports_it_and_never_listens(tmp_path: Path) -> None:
    """The forwarder needs the user data's apf.json: no port 15150 when it was not applied."""
    image = image_or_skip("s390x")
    with boot("s390x", image.volume, cidata_iso(tmp_path, "not a cloud-config\n"), tmp_path) as vm:
        raw, _ = vm.wait_report(TIMEOUT)
        report = DiskGuestReport.from_dict(raw)
        assert report.guest.error is not None and "#cloud-config" in report.guest.error
        assert not report.listening and report.address == "10.0.2.15/24"
        with pytest.raises(TargetError, match="did not answer"):
            vm.wait_port(time.perf_counter() - vm.started + 3)  # 3 s more after the report
