"""How fast the pod VM disk images (``lpar prepare --disk``) become ready under bare QEMU.

For each architecture whose image is prepared: the seconds from starting QEMU to the
guest's report line on its console, and to 127.0.0.1:<port> (the guest's 15150, through
QEMU's user network) answering; median, min and max of ``--repeat`` boots. The devices are
CAA's (see sim/lpar/diskboot.py). x86_64 runs under KVM where this host's KVM can boot an
ordinary kernel, else under TCG, and says which and why; the goal (x86_64 under KVM, start
to ready in <= 3 s) is judged only under KVM.

    python benchmarks/bench_podvm_disk.py [--repeat 3] [--arch amd64 --arch s390x]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from sim.lpar import cidata
from sim.lpar.diskboot import boot, x86_accelerator
from sim.lpar.diskimage import ARCHES, DiskImage, DiskImageMissing, find_disk_image
from sim.peerpods.cloudconfig import build_user_data
from sim.peerpods.diskreport import DiskGuestReport
from sim.peerpods.initdata import encode

GOAL_KVM = 3.0
TOML = b'algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\n"aa.toml" = "bench"\n'
APF = json.dumps({"pod-namespace": "/run/netns/podns", "pod-network": {"interface": "eth0"}})


def one_boot(arch: str, volume: Path, accel: str, vcpus: int, memory: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        iso = Path(tmp) / "cidata.iso"
        iso.write_bytes(
            cidata.build_nocloud_iso(build_user_data(apf_json=APF, initdata=encode(TOML)), hostname="b")
        )
        with boot(arch, volume, iso, Path(tmp), accel=accel, vcpus=vcpus, memory_mib=memory) as vm:
            raw, to_report = vm.wait_report(300)
            _, to_port = vm.wait_port(300)
    report = DiskGuestReport.from_dict(raw)
    if report.guest.error or not report.listening or report.address is None:
        raise RuntimeError(f"{arch}: the guest was not ready: {raw}")
    return to_report, to_port


def _fmt(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def measure(image: DiskImage, repeat: int, vcpus: int, memory: int) -> bool:
    """Boot ``image`` ``repeat`` times and print the figures; True when a goal was missed."""
    arch = image.arch
    accel, why = x86_accelerator() if arch == "amd64" else ("tcg", "s390x on x86")
    reports: list[float] = []
    ports: list[float] = []
    for _ in range(repeat):
        to_report, to_port = one_boot(arch, image.volume, accel, vcpus, memory)
        reports.append(to_report)
        ports.append(to_port)
    size = image.volume.stat().st_size
    print(f"{arch}, {image.flavour} kernel ({accel}: {why}; {image.volume.name} {size / 2**20:.1f} MiB, "
          f"key {image.key}, {vcpus} vCPUs, {memory} MiB, {repeat} boots)")  # fmt: skip
    print(f"  QEMU start -> report on the console: {_fmt(reports)}")
    print(f"  QEMU start -> port 15150 answers:    {_fmt(ports)}")
    if arch != "amd64":
        return False
    if accel != "kvm":
        print(f"  goal <= {GOAL_KVM:g} s under KVM: not measurable here ({why})")
        return False
    met = statistics.median(ports) <= GOAL_KVM
    print(f"  goal <= {GOAL_KVM:g} s under KVM: {'met' if met else 'MISSED'}")
    return not met


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--arch", action="append", choices=("amd64", "s390x"))
    parser.add_argument("--vcpus", type=int, default=2)
    parser.add_argument("--memory", type=int, default=2048, help="MiB (CAA's default is 8192)")
    args = parser.parse_args()
    failed = False
    for arch in args.arch or ["amd64", "s390x"]:
        for kernel in ARCHES[arch].kernels:
            try:
                image = find_disk_image(arch, kernel=kernel)
            except DiskImageMissing as exc:
                print(f"{arch} ({kernel} kernel): skipped: {exc}")
                continue
            failed |= measure(image, args.repeat, args.vcpus, args.memory)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
