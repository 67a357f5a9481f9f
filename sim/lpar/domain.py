"""The libvirt domain XML of an s390x pod VM, shaped as CAA's libvirt provider shapes it.

Spec section 6 fixes the device set (virtio disks with iommu, an sclp console, a virtio NIC
on LIBVIRT_NET, a virtio RNG, a memballoon with iommu, s390-pv launch security on SE).
The console is a file, so the host can read the guest's report without a pty (CAA's is a
pty). Where :class:`DomainSpec` has no kernel to hand over, the domain boots its image from
the boot volume through the firmware, as CAA's does (``<boot order='1'/>`` on that disk:
``createDomainXMLs390x``); the ``lpar`` target hands the kernel and initramfs over instead,
on purpose and visibly in the XML (its pod VMs, on the host's own libvirt network, must
report on their console, so they never need a network the suite reaches: see the README).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

S390_ARCH = "s390x"
S390_MACHINE = "s390-ccw-virtio"
X86_ARCH = "x86_64"
LAUNCH_SECURITY_SE = "s390-pv"


@dataclass(frozen=True)
class BootAssets:
    """Where the domain boots from: kernel, initramfs and their command line."""

    kernel: str
    initrd: str
    cmdline: str


@dataclass(frozen=True)
class DomainSpec:
    """Everything that distinguishes one pod VM's domain from another's."""

    name: str
    vcpus: int
    memory_mib: int
    domain_type: str
    machine: str
    emulator: str | None
    boot_volume: str
    cidata_volume: str
    network: str
    console_path: str
    boot: BootAssets | None
    launch_security: str | None
    description: str = "peer pod VM (peerpods-conformance)"
    #: ``host-model`` on an IBM Z KVM host, as CAA's createDomainXMLs390x writes it; None: no element.
    cpu_mode: str | None = None
    #: Elements for the domain's ``<metadata>`` (each in its own XML namespace): the suite's owner.
    metadata: tuple[ET.Element, ...] = ()
    #: The guest's architecture: s390x, or x86_64 where an adaptor finds an x86_64 host (CAA's
    #: ``createDomainXML`` default branch, :func:`build_x86_domain_xml`).
    arch: str = S390_ARCH


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _virtio_disk(
    devices: ET.Element, *, path: str, fmt: str, dev: str, readonly: bool, boot_order: int | None = None
) -> None:
    disk = _sub(devices, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type=fmt, iommu="on")
    _sub(disk, "source", file=path)
    _sub(disk, "target", dev=dev, bus="virtio")
    if boot_order is not None:
        _sub(disk, "boot", order=str(boot_order))
    if readonly:
        _sub(disk, "readonly")


def _domain_head(spec: DomainSpec) -> ET.Element:
    """The domain element with its name, description, the suite's metadata and its memory."""
    domain = ET.Element("domain", type=spec.domain_type)
    _sub(domain, "name", spec.name)
    _sub(domain, "description", spec.description)
    if spec.metadata:
        _sub(domain, "metadata").extend(spec.metadata)
    _sub(domain, "memory", str(spec.memory_mib), unit="MiB")
    return domain


def build_domain_xml(spec: DomainSpec) -> str:
    """The domain definition for ``spec`` (a string libvirt's defineXML accepts)."""
    if spec.arch == X86_ARCH:
        return build_x86_domain_xml(spec)
    domain = _domain_head(spec)
    _sub(domain, "currentMemory", str(spec.memory_mib), unit="MiB")
    _sub(domain, "vcpu", str(spec.vcpus))
    os_element = _sub(domain, "os")
    _sub(os_element, "type", "hvm", arch=S390_ARCH, machine=spec.machine)
    if spec.boot is not None:
        _sub(os_element, "kernel", spec.boot.kernel)
        _sub(os_element, "initrd", spec.boot.initrd)
        _sub(os_element, "cmdline", spec.boot.cmdline)
    if spec.cpu_mode is not None:
        _sub(domain, "cpu", mode=spec.cpu_mode)
    _sub(domain, "clock", offset="utc")
    # A pod VM that stops for any reason is gone: the adaptor creates a new one, never reboots it.
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        _sub(domain, event, "destroy")
    devices = _sub(domain, "devices")
    if spec.emulator:
        _sub(devices, "emulator", spec.emulator)
    # no kernel handed over: the firmware boots the image on the boot volume (CAA's bootDisk)
    boot_order = 1 if spec.boot is None else None
    _virtio_disk(
        devices, path=spec.boot_volume, fmt="qcow2", dev="vda", readonly=False, boot_order=boot_order
    )
    _virtio_disk(devices, path=spec.cidata_volume, fmt="raw", dev="vdb", readonly=True)
    interface = _sub(devices, "interface", type="network")
    _sub(interface, "source", network=spec.network)
    _sub(interface, "model", type="virtio")
    _sub(interface, "driver", iommu="on")
    console = _sub(devices, "console", type="file")
    _sub(console, "source", path=spec.console_path)
    _sub(console, "target", type="sclp")
    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    balloon = _sub(devices, "memballoon", model="virtio")
    _sub(balloon, "driver", iommu="on")
    if spec.launch_security is not None:
        _sub(domain, "launchSecurity", type=spec.launch_security)
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode")


def build_x86_domain_xml(spec: DomainSpec) -> str:
    """An x86_64 pod VM as CAA's ``createDomainXMLx86_64`` shapes it: ``kvm`` with the host's CPU
    model, ACPI and APIC, the boot volume on SATA first in the boot order, the cidata ISO on an
    IDE CD-ROM, a virtio NIC, a serial console (a file here, as on s390x). It always boots the
    volume (SeaBIOS, then the image's bootloader) and has no launch security."""
    domain = _domain_head(spec)
    _sub(domain, "vcpu", str(spec.vcpus))
    os_element = _sub(domain, "os")
    _sub(os_element, "type", "hvm", arch=X86_ARCH)
    features = _sub(domain, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    _sub(features, "vmport", state="off")
    _sub(domain, "cpu", mode=spec.cpu_mode or "host-model")
    _sub(domain, "on_reboot", "restart")
    devices = _sub(domain, "devices")
    if spec.emulator:
        _sub(devices, "emulator", spec.emulator)
    for device, path, fmt, target, bus in (
        ("disk", spec.boot_volume, "qcow2", "sda", "sata"),
        ("cdrom", spec.cidata_volume, "raw", "hda", "ide"),
    ):
        disk = _sub(devices, "disk", type="file", device=device)
        _sub(disk, "driver", name="qemu", type=fmt)
        _sub(disk, "source", file=path)
        _sub(disk, "target", dev=target, bus=bus)
        if device == "disk":
            _sub(disk, "boot", order="1")
        else:
            _sub(disk, "readonly")
        _sub(disk, "address", type="drive", controller="0", bus="0", target="0", unit="0")
    interface = _sub(devices, "interface", type="network")
    _sub(interface, "source", network=spec.network)
    _sub(interface, "model", type="virtio")
    console = _sub(devices, "console", type="file")
    _sub(console, "source", path=spec.console_path)
    _sub(console, "target", type="serial")
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode")


def domain_facts(xml_text: str) -> dict[str, Any]:
    """What a scenario checks about a defined domain, read back from libvirt's own XML."""
    root = ET.fromstring(xml_text)
    os_type = root.find("os/type")
    memory = root.find("memory")
    disks = []
    for disk in root.findall("devices/disk"):
        driver, source, target = disk.find("driver"), disk.find("source"), disk.find("target")
        boot = disk.find("boot")
        disks.append(
            {
                "dev": target.get("dev") if target is not None else None,
                "bus": target.get("bus") if target is not None else None,
                "format": driver.get("type") if driver is not None else None,
                "iommu": driver.get("iommu") if driver is not None else None,
                "source": source.get("file") if source is not None else None,
                "readonly": disk.find("readonly") is not None,
                "boot_order": int(boot.get("order", "0")) if boot is not None else None,
            }
        )
    interface = root.find("devices/interface")
    console_target = root.find("devices/console/target")
    launch = root.find("launchSecurity")
    balloon_driver = root.find("devices/memballoon/driver")
    vcpu = root.find("vcpu")
    return {
        "name": root.findtext("name"),
        "type": root.get("type"),
        "arch": os_type.get("arch") if os_type is not None else None,
        "machine": os_type.get("machine") if os_type is not None else None,
        "vcpus": int(vcpu.text or "0") if vcpu is not None else None,
        "memory_mib": _mib(memory),
        "disks": disks,
        "console": console_target.get("type") if console_target is not None else None,
        # the file the console writes; a terminal's (pty) path is no transcript to read
        "console_path": _attr(root.find("devices/console/source"), "path")
        if _attr(root.find("devices/console"), "type") == "file"
        else None,
        "network": _attr(interface.find("source") if interface is not None else None, "network"),
        "nic_model": _attr(interface.find("model") if interface is not None else None, "type"),
        "rng": _attr(root.find("devices/rng"), "model"),
        "memballoon": _attr(root.find("devices/memballoon"), "model"),
        "memballoon_iommu": _attr(balloon_driver, "iommu"),
        "launch_security": launch.get("type") if launch is not None else None,
        "kernel": root.findtext("os/kernel"),
    }


def _attr(element: ET.Element | None, name: str) -> str | None:
    return element.get(name) if element is not None else None


_UNIT_KIB = {"KiB": 1, "k": 1, "KB": 1, "MiB": 1024, "M": 1024, "MB": 1024, "GiB": 1 << 20, "G": 1 << 20}


def _mib(memory: ET.Element | None) -> int | None:
    if memory is None or memory.text is None:
        return None
    kib = int(memory.text) * _UNIT_KIB.get(memory.get("unit", "KiB"), 1)
    return kib // 1024
