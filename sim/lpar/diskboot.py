"""Booting a pod VM disk image with bare QEMU, as CAA's libvirt domain would, without libvirt.

The devices follow CAA's domain XML (cloud-api-adaptor ``src/cloud-providers/libvirt/libvirt.go``):

* x86_64: machine ``pc``, the boot volume on SATA (AHCI), the cidata ISO on an IDE CD-ROM,
  a virtio-net NIC, the console on the first serial port;
* s390x: machine ``s390-ccw-virtio``, both disks on virtio-blk (ccw), a virtio-net NIC, all
  with ``iommu_platform=on`` (CAA's ``iommu='on'``), the console on SCLP.

The NIC is QEMU's user-mode network: its built-in DHCP server answers the guest, and
``hostfwd`` maps a free port on 127.0.0.1 to the guest's 15150, so the traffic never leaves
QEMU and the loopback interface. The boot volume is opened with ``snapshot=on``, so the
cached image is never written. QEMU runs through plumbum and is killed (by its own pid)
when the boot is left.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plumbum import local
from plumbum.machines.base import PopenWithAddons

from sim.errors import TargetError
from sim.lpar.console import find_report
from sim.ports import free_port

#: The agent-protocol-forwarder's port in the pod VM (CAA's -forwarder-port default).
FORWARDER_PORT = 15150
#: Set to "kvm" or "tcg" to choose how an x86_64 image is run (default: see x86_accelerator).
ACCEL_ENV = "PEERPODS_X86_ACCEL"
#: Present when the host's KVM is PVM (pagetable-based, no hardware virtualization): it runs
#: only guest kernels built for PVM; an unmodified kernel never starts (see the README).
PVM_MODULE = Path("/sys/module/kvm_pvm")


def x86_accelerator() -> tuple[str, str]:
    """("kvm" | "tcg", why): KVM when /dev/kvm is usable by an ordinary kernel, else TCG."""
    chosen = os.environ.get(ACCEL_ENV, "").strip()
    if chosen in ("kvm", "tcg"):
        return chosen, f"${ACCEL_ENV}={chosen}"
    if chosen:
        raise TargetError(f"${ACCEL_ENV}={chosen!r}: expected kvm or tcg")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "no usable /dev/kvm"
    if PVM_MODULE.exists():
        return "tcg", "this host's KVM is PVM (kvm_pvm), which boots no unmodified x86_64 kernel"
    return "kvm", "/dev/kvm"


def qemu_command(
    arch: str,
    volume: Path,
    cidata: Path,
    port: int,
    *,
    accel: str = "tcg",
    vcpus: int = 2,
    memory_mib: int = 2048,
) -> list[str]:
    """The QEMU command line (program first) for ``arch`` (amd64/x86_64 or s390x)."""
    common = ["-nodefaults", "-nographic", "-no-reboot", "-smp", str(vcpus), "-m", str(memory_mib)]
    netdev = f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:{FORWARDER_PORT}"
    root = f"file={volume},format=qcow2,if=none,id=root,snapshot=on"
    seed = f"file={cidata},format=raw,if=none,id=cidata,readonly=on"
    if arch in ("amd64", "x86_64"):
        return ["qemu-system-x86_64", "-accel", accel, "-M", "pc", *common,
                "-drive", root, "-device", "ahci,id=ahci",
                "-device", "ide-hd,drive=root,bus=ahci.0,bootindex=1",
                "-drive", f"{seed},media=cdrom", "-device", "ide-cd,drive=cidata,bus=ide.0",
                "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
                "-serial", "stdio"]  # fmt: skip
    if arch == "s390x":
        return ["qemu-system-s390x", "-M", "s390-ccw-virtio", *common,
                "-drive", root, "-device", "virtio-blk-ccw,drive=root,bootindex=1,iommu_platform=on",
                "-drive", seed, "-device", "virtio-blk-ccw,drive=cidata,iommu_platform=on",
                "-netdev", netdev, "-device", "virtio-net-ccw,netdev=n0,iommu_platform=on",
                "-serial", "none", "-chardev", "stdio,id=c", "-device", "sclpconsole,chardev=c"]  # fmt: skip
    raise TargetError(f"no QEMU command for architecture {arch!r} (known: amd64, s390x)")


@dataclass
class Boot:
    """A running pod VM: its console transcript file, its forwarded port, when QEMU started."""

    process: PopenWithAddons[Any]
    console: Path
    port: int
    started: float

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_report(self, timeout: float) -> tuple[dict[str, Any], float]:
        """The report line's JSON and the seconds from QEMU's start until it was on the console."""
        deadline = self.started + timeout
        while True:
            text = self.console.read_text(errors="replace")
            report = find_report(text)
            if report is not None:
                return report, time.perf_counter() - self.started
            if not self.alive():
                raise TargetError(
                    f"QEMU exited ({self.process.returncode}) without a report: {text[-400:]!r}"
                )
            if time.perf_counter() > deadline:
                raise TargetError(f"no report within {timeout:g} s; console tail: {text[-400:]!r}")
            time.sleep(0.02)

    def wait_port(self, timeout: float) -> tuple[bytes, float]:
        """What the guest's port 15150 answered, and the seconds from QEMU's start until it
        accepted. QEMU's user network accepts on the host side before the guest does; a
        connection the guest does not take is closed at once with nothing read, so this
        counts only a connection that carries the guest's answer."""
        deadline = self.started + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
                    answer = conn.recv(1 << 16)
                    if answer:
                        elapsed = time.perf_counter() - self.started
                        while chunk := conn.recv(1 << 16):
                            answer += chunk
                        return answer, elapsed
            except OSError:
                pass
            if not self.alive():
                raise TargetError(f"QEMU exited ({self.process.returncode}) before port {self.port} answered")
            if time.perf_counter() > deadline:
                raise TargetError(
                    f"127.0.0.1:{self.port} (guest port {FORWARDER_PORT}) did not answer within {timeout:g} s"
                )
            time.sleep(0.05)


@contextmanager
def boot(
    arch: str,
    volume: Path,
    cidata: Path,
    workdir: Path,
    *,
    accel: str = "tcg",
    vcpus: int = 2,
    memory_mib: int = 2048,
) -> Iterator[Boot]:
    """Start QEMU on ``volume`` with ``cidata`` attached; stop it (kill, wait) on leaving."""
    port = free_port()
    argv = qemu_command(arch, volume, cidata, port, accel=accel, vcpus=vcpus, memory_mib=memory_mib)
    console = workdir / f"console-{arch}-{port}.log"
    with console.open("wb") as sink:
        started = time.perf_counter()
        process = local[argv[0]][argv[1:]].popen(
            stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        yield Boot(process, console, port, started)
    finally:
        process.kill()
        process.wait()
