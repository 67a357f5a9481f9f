"""Pod VM boot on the emulated LPAR: libvirt's define-to-report beside a bare QEMU boot.

Prints, from one run on this machine:

* bare: ``qemu-system-s390x -kernel ... -initrd ...`` of the same prepared image, with the
  same cloud-init ISO, vCPUs and memory, from process start to the guest's report line --
  the physical limit of an emulated s390x guest here;
* libvirt: define-to-report of the same guest through the LibvirtProvider on
  qemu:///system (volumes, ISO upload, domain definition, start, console read);
* parallel: as many independent pod VMs as cores, created at once, wall time until all
  reported;
* with ``--whole-run``: the wall time of the lpar features (``--target lpar``) on
  test:///default and qemu:///system.

Goals: libvirt within 1.5x of bare; the lpar features under 10 s on test:///default and
under 90 s on qemu:///system. Usage: python benchmarks/bench_lpar.py [--repeat N] [--whole-run]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sim.cloudconfig import build_user_data
from sim.initdata import encode
from sim.lpar import cidata, host
from sim.lpar.assets import find_assets
from sim.lpar.console import REPORT_PREFIX
from sim.providers import InstanceSpec
from sim.targets.lpar import LparTarget

ROOT = Path(__file__).resolve().parent.parent
TOML = b'algorithm = "sha384"\nversion = "0.1.0"\n\n[data]\n"aa.toml" = "bench"\n'
#: The lpar features' requirement ids, as a pytest marker expression.
LPAR_MARKERS = " or ".join(
    [f"LP-00{i}" for i in range(1, 5)]
    + [f"VM-00{i}" for i in range(1, 9)]
    + [f"GI-00{i}" for i in range(1, 6)]
)


def user_data(tag: str) -> str:
    return build_user_data(apf_json="{}", initdata=encode(TOML.replace(b"bench", tag.encode())))


def bare_boot(vcpus: int, memory_mib: int) -> float:
    """Seconds from starting QEMU by hand to the guest's report line on its console."""
    assets = find_assets()
    with tempfile.TemporaryDirectory() as tmp:
        iso = Path(tmp) / "cidata.iso"
        iso.write_bytes(cidata.build_nocloud_iso(user_data("bare"), hostname="bare"))
        root = Path(tmp) / "root.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(root), "256M"], check=True)
        command = [
            "qemu-system-s390x", "-M", "s390-ccw-virtio", "-nodefaults", "-nographic", "-no-reboot",
            "-smp", str(vcpus), "-m", str(memory_mib),
            "-kernel", str(assets.kernel), "-initrd", str(assets.initrd), "-append", assets.cmdline,
            "-drive", f"file={root},format=qcow2,if=none,id=vda", "-device", "virtio-blk-ccw,drive=vda",
            "-drive", f"file={iso},format=raw,if=none,id=vdb,readonly=on",
            "-device", "virtio-blk-ccw,drive=vdb",
            "-serial", "none", "-chardev", "stdio,id=c", "-device", "sclpconsole,chardev=c",
        ]  # fmt: skip
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            if REPORT_PREFIX in line:
                elapsed = time.perf_counter() - start
                break
        else:
            raise RuntimeError("the bare guest printed no report")
        process.kill()
        process.wait()
    return elapsed


def libvirt_boot(
    target: LparTarget, vcpus: int, memory_mib: int, count: int = 1
) -> tuple[float, list[float]]:
    """Wall seconds for ``count`` pod VMs created at once, and each one's define-to-report."""
    provider = target.provider()
    start = time.perf_counter()
    names = [
        provider.create_instance(InstanceSpec(f"bench{i}", "bench", os.urandom(8).hex(), vcpus, memory_mib,
                                              user_data(str(i))))
        for i in range(count)
    ]  # fmt: skip
    for name in names:
        report = provider.wait_ready(name)
        assert report is not None and report.error is None, report
    wall = time.perf_counter() - start
    each = [float(provider.timings(name)["report"] or 0.0) for name in names]
    for name in names:
        provider.delete_instance(name)
    assert provider.leftovers() == []
    return wall, each


def whole_run(uri: str) -> tuple[float, str]:
    """Wall seconds of the lpar features (every LP, VM and GI scenario) on ``uri``."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "steps", "--target", "lpar",
         "--libvirt-uri", uri, "-m", LPAR_MARKERS],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    return elapsed, (done.stdout.strip().splitlines() or ["(no output)"])[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--vcpus", type=int, default=2, help="LIBVIRT_CPU default")
    parser.add_argument("--memory", type=int, default=8192, help="LIBVIRT_MEMORY default (MiB)")
    parser.add_argument("--whole-run", action="store_true", help="also time the lpar features on both URIs")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    target = LparTarget(host.SYSTEM_URI)
    try:
        bare: list[float] = []
        single: list[float] = []
        for _ in range(args.repeat):  # interleaved, so a busy moment of the host hits both alike
            bare.append(bare_boot(args.vcpus, args.memory))
            single.append(libvirt_boot(target, args.vcpus, args.memory)[1][0])
        wall, each = libvirt_boot(target, args.vcpus, args.memory, count=cores)
    finally:
        target.close()
    bare_median, libvirt_median = statistics.median(bare), statistics.median(single)
    print(f"pod VM: {args.vcpus} vCPUs, {args.memory} MiB, {args.repeat} runs each, {cores} cores")
    print(f"bare qemu-system-s390x boot to report   median {bare_median:6.2f} s  (runs {_fmt(bare)})")
    print(f"libvirt define-to-report (qemu:///system) median {libvirt_median:6.2f} s  (runs {_fmt(single)})")
    ratio = libvirt_median / bare_median
    verdict = "met" if ratio <= 1.5 else "MISSED"
    print(f"ratio libvirt/bare                      {ratio:6.2f}x  (goal <= 1.5x: {verdict})")
    print(f"{cores} pod VMs at once: all reported in  {wall:6.2f} s  (each {_fmt(each)})")
    if args.whole_run:
        for uri, goal in ((host.TEST_URI, 10.0), (host.SYSTEM_URI, 90.0)):
            elapsed, summary = whole_run(uri)
            verdict = "met" if elapsed <= goal else "MISSED"
            print(f"lpar features on {uri:17} {elapsed:6.2f} s  (goal < {goal:g} s: {verdict}; {summary})")
    return 0


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


if __name__ == "__main__":
    sys.exit(main())
