"""The LPAR prerequisites of doc 4.1.1, judged from the same evidence a KVM host offers.

An LPAR is described by what its files and libvirt say -- ``/proc/sysinfo`` (machine
type), ``/proc/cmdline`` (``prot_virt=1``), ``/sys/firmware/uv/prot_virt_host`` and libvirt's
domain capabilities (``<s390-pv supported='yes'/>``) -- so the checks that judge a fixture
in ``fixtures/lpar/`` are exactly the checks that judge a live host, or the emulated LPAR
whose "machine" is whatever QEMU's s390x CPU model reports.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.bounds import read_text_bounded
from sim.errors import ConformanceInputError
from sim.yamlload import load_one


@dataclass(frozen=True)
class LparCheck:
    """The verdict on one LPAR prerequisite (doc 4.1.1)."""

    name: str
    satisfied: bool
    detail: str


MACHINE_TYPE = "machine type"
SECURE_UNPACK = "Secure Unpack Facility (prot_virt)"
LIBVIRT_PV = "libvirt s390-pv launch security"
CHECK_NAMES = (MACHINE_TYPE, SECURE_UNPACK, LIBVIRT_PV)

#: Machine type -> (generation rank, marketing name). Rank 16 = IBM z16 / LinuxONE Emperor 4.
MACHINES: dict[str, tuple[int, str]] = {
    "2964": (13, "IBM z13 / LinuxONE Emperor"),
    "2965": (13, "IBM z13s / LinuxONE Rockhopper"),
    "3906": (14, "IBM z14 / LinuxONE Emperor II"),
    "3907": (14, "IBM z14 ZR1 / LinuxONE Rockhopper II"),
    "8561": (15, "IBM z15 T01 / LinuxONE III LT1"),
    "8562": (15, "IBM z15 T02 / LinuxONE III LT2"),
    "3931": (16, "IBM z16 A01 / LinuxONE Emperor 4"),
    "3932": (16, "IBM z16 A02, AGZ / LinuxONE Rockhopper 4"),
    "9175": (17, "IBM z17 ME1 / LinuxONE Emperor 5"),
}
MINIMUM_RANK = 16
REQUIREMENT = "LinuxONE Emperor 4 or later (IBM z16, machine type 3931/3932, or newer)"


@dataclass(frozen=True)
class LparEvidence:
    """What a KVM host shows about itself; None where the evidence is absent."""

    name: str
    sysinfo: str | None
    kernel_cmdline: str | None
    prot_virt_host: str | None
    domain_capabilities: str | None


class LparDescriptionError(ConformanceInputError):
    """A fixture describing an LPAR is malformed; the message names the file and field."""


def load_description(path: Path) -> LparEvidence:
    """Read an LPAR description (YAML) from ``fixtures/lpar/``."""
    try:
        raw: Any = load_one(read_text_bounded(path, what="LPAR description"), source=str(path))
    except ConformanceInputError as exc:
        raise LparDescriptionError(f"cannot read LPAR description: {exc}") from None
    if not isinstance(raw, dict):
        raise LparDescriptionError(f"{path}: an LPAR description is a mapping")
    fields = ("sysinfo", "kernel_cmdline", "prot_virt_host", "domain_capabilities")
    unknown = sorted(set(raw) - {"description", *fields})
    if unknown:
        raise LparDescriptionError(f"{path}: unknown field(s) {', '.join(unknown)}")
    values: dict[str, str | None] = {}
    for field in fields:
        value = raw.get(field)
        if value is not None and not isinstance(value, (str, int)):
            raise LparDescriptionError(f"{path}: {field} must be text")
        values[field] = None if value is None else str(value)
    return LparEvidence(name=str(raw.get("description") or path.stem), **values)


def machine_type(sysinfo: str | None) -> str | None:
    """The ``Type:`` line of /proc/sysinfo (the CPC's machine type)."""
    if not sysinfo:
        return None
    match = re.search(r"^Type:\s*(\S+)", sysinfo, re.M)
    return match.group(1) if match else None


def s390_pv_supported(domain_capabilities: str | None) -> bool | None:
    """libvirt's verdict on IBM Secure Execution guests; None when there is no answer."""
    if not domain_capabilities:
        return None
    feature = ET.fromstring(domain_capabilities).find("features/s390-pv")
    return None if feature is None else feature.get("supported") == "yes"


def check_machine(evidence: LparEvidence) -> LparCheck:
    """Doc 4.1.1: LinuxONE Emperor 4 (z16) or later; older machines lack what peer pods on IBM Z need."""
    found = machine_type(evidence.sysinfo)
    if found is None:
        return LparCheck(
            MACHINE_TYPE, False, f"machine type unknown (no /proc/sysinfo Type); needs {REQUIREMENT}"
        )
    if found not in MACHINES:
        known = ", ".join(sorted(MACHINES))
        return LparCheck(
            MACHINE_TYPE,
            False,
            f"machine type {found} is unknown: it is not in the suite's table of IBM Z machine types "
            f"(sim/lpar/prerequisites.py MACHINES: {known}), so {REQUIREMENT} cannot be judged; "
            "if it is a newer machine, add it to the table",
        )
    rank, model = MACHINES[found]
    if rank >= MINIMUM_RANK:
        return LparCheck(MACHINE_TYPE, True, f"{found} is {model}: meets {REQUIREMENT}")
    return LparCheck(MACHINE_TYPE, False, f"{found} is {model}: needs {REQUIREMENT}")


def check_secure_unpack(evidence: LparEvidence) -> LparCheck:
    """The host side of IBM Secure Execution: the kernel asked for it and the Ultravisor granted it."""
    cmdline = evidence.kernel_cmdline or ""
    in_cmdline = re.search(r"(^|\s)prot_virt=(1|y|yes|on)(\s|$)", cmdline) is not None
    host_flag = (evidence.prot_virt_host or "").strip() == "1"
    if host_flag:
        flag = "reads 1"
    elif evidence.prot_virt_host is None:
        flag = "is absent"
    else:
        flag = f"is not 1 ({evidence.prot_virt_host.strip()!r})"
    detail = (
        f"kernel parameter prot_virt=1 {'set' if in_cmdline else 'missing'}; "
        f"/sys/firmware/uv/prot_virt_host {flag}"
    )
    if in_cmdline and host_flag:
        return LparCheck(SECURE_UNPACK, True, "Secure Execution host support on: " + detail)
    return LparCheck(SECURE_UNPACK, False, "Secure Execution prerequisite not met: " + detail)


def check_libvirt_pv(evidence: LparEvidence) -> LparCheck:
    """libvirt must be able to start s390-pv guests, or CAA's SE pod VMs cannot be defined."""
    supported = s390_pv_supported(evidence.domain_capabilities)
    if supported:
        return LparCheck(LIBVIRT_PV, True, "libvirt domain capabilities: <s390-pv supported='yes'/>")
    said = "no domain capabilities" if supported is None else "<s390-pv supported='no'/>"
    return LparCheck(LIBVIRT_PV, False, f"Secure Execution prerequisite not met: libvirt reports {said}")


def evaluate(evidence: LparEvidence) -> list[LparCheck]:
    """Every prerequisite, in the doc's order."""
    return [check_machine(evidence), check_secure_unpack(evidence), check_libvirt_pv(evidence)]


def read_file(path: Path) -> str | None:
    """A host file's text, or None when the host has no such file."""
    try:
        return path.read_text()
    except OSError:
        return None
