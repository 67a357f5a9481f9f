"""The IBM Z KVM host layer: preloaded into a process, libvirt there says the host is s390x,
and CAA's s390x domain (type kvm, host-model CPU) is defined and run under TCG; any other
domain passes untouched. Without it, libvirt refuses that domain on this x86_64 host.

Each probe is a subprocess with LD_PRELOAD (the layer is meant for one process only, the
adaptor's). Needs gcc and libvirt's headers; the domain tests also need an isolated LPAR
(root, libvirt's daemons), as CI has.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("libvirt")

from sim.lpar import ibmz_host, isolated
from sim.lpar.ibmz_host import HostLayerUnavailable, ibmz_host_library, preload_environment
from sim.lpar.isolated import IsolatedLpar


def _why_not_build() -> str | None:
    if isolated._which("gcc") is None:
        return "no gcc"
    if not ibmz_host.HEADER.is_file():
        return f"no libvirt headers ({ibmz_host.HEADER})"
    return None


def _why_not_host() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    missing = [tool for tool in isolated.TOOLS if isolated._which(tool) is None]
    return f"missing {', '.join(missing)}" if missing else None


pytestmark = pytest.mark.skipif(_why_not_build() is not None, reason=f"cannot build: {_why_not_build()}")
needs_host = pytest.mark.skipif(_why_not_host() is not None, reason=f"no isolated LPAR: {_why_not_host()}")

# One libvirt call in a process of its own, with or without the layer: prints JSON.
PROBE = """
import json, sys, libvirt
libvirt.registerErrorHandler(lambda context, error: None, None)
uri, call, start = sys.argv[1], sys.argv[2], sys.argv[3] == "start"
xml = sys.stdin.read()
connection = libvirt.open(uri)
result = {"model": connection.getInfo()[0]}
try:
    if call == "define":
        domain = connection.defineXML(xml)
    elif call == "define-flags":
        domain = connection.defineXMLFlags(xml, 0)
    elif call == "create":
        domain = connection.createXML(xml, 0)
    else:
        domain = None
    if domain is not None:
        result["xml"] = domain.XMLDesc(0)
        if call != "create" and start:
            domain.create()
        result["started"] = start or call == "create"
except libvirt.libvirtError as exc:
    result["error"] = exc.get_error_message()
print(json.dumps(result))
"""


def probe(uri: str, call: str, xml: str = "", *, layer: Path | None, start: bool = True) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if layer is not None:
        env = preload_environment(layer, env)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, uri, call, "start" if start else "define"],
        input=xml,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ibmz_host_library(tmp_path_factory.mktemp("cache"))


def caa_s390x(name: str, pool: Path, *, cpu: str = '<cpu mode="host-model"></cpu>', kind: str = "kvm") -> str:
    """CAA v0.22.0's s390x domain as Go's encoding/xml writes it (createDomainXMLs390x)."""
    return (
        f'<domain type="{kind}"><name>{name}</name>'
        "<description>This Virtual Machine is the peer-pod VM</description><metadata></metadata>"
        '<memory unit="MiB">256</memory><currentMemory unit="MiB">256</currentMemory><vcpu>1</vcpu>'
        '<os><type arch="s390x" machine="s390-ccw-virtio">hvm</type></os>'
        f'{cpu}<clock offset="utc"></clock><devices><emulator>/usr/bin/qemu-system-s390x</emulator>'
        '<disk type="file" device="disk"><driver name="qemu" type="qcow2" iommu="on"></driver>'
        f'<source file="{pool}/{name}-root.qcow2"></source><target dev="vda" bus="virtio"></target>'
        '<boot order="1"></boot></disk>'
        '<disk type="file" device="disk"><driver name="qemu" type="raw" iommu="on"></driver>'
        f'<source file="{pool}/{name}-cloudinit.iso"></source><target dev="vdb" bus="virtio"></target></disk>'
        '<interface type="network"><source network="default"></source><model type="virtio"></model>'
        '<driver iommu="on"></driver></interface>'
        '<console type="pty"><target type="sclp"></target></console>'
        '<memballoon model="virtio"><driver iommu="on"></driver></memballoon>'
        '<rng model="virtio"><backend model="random">/dev/urandom</backend></rng></devices></domain>'
    )


X86_64 = (
    "<domain type='kvm'><name>x86</name><uuid>{uuid}</uuid><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
    "<os><type arch='x86_64' machine='pc'>hvm</type></os><cpu mode='host-model'/><devices/></domain>"
)


def test_node_info_says_s390x_with_the_layer_only(layer: Path) -> None:
    assert probe("test:///default", "info", layer=layer)["model"] == "s390x"
    assert probe("test:///default", "info", layer=None)["model"] != "s390x"


def test_an_x86_64_domain_passes_untouched(layer: Path) -> None:
    xml = X86_64.format(uuid=uuid.uuid4())
    with_layer = probe("test:///default", "define", xml, layer=layer)
    without = probe("test:///default", "define", xml, layer=None)
    assert "error" not in with_layer and with_layer["xml"] == without["xml"]
    assert "type='kvm'" in with_layer["xml"] and "host-model" in with_layer["xml"]


def test_the_library_is_cached_by_the_sources_digest(layer: Path, tmp_path: Path) -> None:
    assert layer.parent.name == f"ibmz-kvm-host-{ibmz_host.source_digest()[:16]}"
    built = layer.stat().st_mtime_ns
    assert ibmz_host_library(layer.parent.parent) == layer
    assert layer.stat().st_mtime_ns == built


def test_a_missing_compiler_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    with pytest.raises(HostLayerUnavailable, match="gcc is not installed"):
        ibmz_host_library(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_preload_environment_puts_the_layer_first(layer: Path) -> None:
    assert preload_environment(layer)["LD_PRELOAD"] == str(layer)
    assert preload_environment(layer, {"LD_PRELOAD": "/x.so"})["LD_PRELOAD"] == f"{layer}:/x.so"


@pytest.fixture(scope="module")
def lpar() -> Iterator[IsolatedLpar]:
    if _why_not_host() is not None:
        pytest.skip(f"no isolated LPAR: {_why_not_host()}")
    base = isolated.default_base() / f"test-{uuid.uuid4().hex[:8]}"
    base.mkdir(parents=True, mode=0o755)
    with IsolatedLpar(base=base) as host:
        yield host
    shutil.rmtree(base)


def _volumes(lpar: IsolatedLpar, name: str) -> None:
    connection = lpar.connect()
    try:
        pool = connection.storagePoolLookupByName("default")
        for volume, kind in ((f"{name}-root.qcow2", "qcow2"), (f"{name}-cloudinit.iso", "raw")):
            pool.createXML(
                f"<volume><name>{volume}</name><capacity unit='MiB'>1</capacity>"
                f"<target><format type='{kind}'/></target></volume>",
                0,
            )
    finally:
        connection.close()


def _stored(lpar: IsolatedLpar, name: str) -> ET.Element:
    """The domain's definition as libvirt keeps it (read without the layer)."""
    connection = lpar.connect()
    try:
        root = ET.fromstring(connection.lookupByName(name).XMLDesc(2))  # VIR_DOMAIN_XML_INACTIVE
    finally:
        connection.close()
    for volatile in ("uuid", "name"):
        element = root.find(volatile)
        assert element is not None
        root.remove(element)
    for mac in root.iter("mac"):
        mac.set("address", "-")
    return root


@needs_host
def test_without_the_layer_libvirt_refuses_caas_s390x_domain(lpar: IsolatedLpar) -> None:
    _volumes(lpar, "plain")
    refused = probe(lpar.uri, "define", caa_s390x("plain", lpar.pool_dir), layer=None)
    assert refused["model"] == "x86_64"
    assert refused["error"] == (
        "unsupported configuration: Emulator '/usr/bin/qemu-system-s390x' does not support virt type 'kvm'"
    )
    as_qemu = probe(lpar.uri, "define", caa_s390x("plain", lpar.pool_dir, kind="qemu"), layer=None)
    assert as_qemu["error"] == (
        "unsupported configuration: CPU mode 'host-model' for s390x qemu domain on x86_64 host "
        "is not supported by hypervisor"
    )


@pytest.mark.parametrize(
    ("call", "cpu"),
    [
        ("define", '<cpu mode="host-model"></cpu>'),  # what CAA sends
        ("define-flags", "<cpu mode='host-model'/>"),
        ("create", "<cpu mode='host-model' check='partial'><model fallback='allow'/></cpu>"),
    ],
)
@needs_host
def test_with_the_layer_caas_s390x_domain_runs_under_tcg(
    lpar: IsolatedLpar, layer: Path, call: str, cpu: str
) -> None:
    name = f"caa-{call}"
    _volumes(lpar, name)
    xml = caa_s390x(name, lpar.pool_dir, cpu=cpu)
    if call == "create":  # a transient domain: kept when its firmware stops on the empty disk
        xml = xml.replace("<devices>", "<on_crash>preserve</on_crash><devices>")
    result = probe(lpar.uri, call, xml, layer=layer)
    assert result["model"] == "s390x"
    assert "error" not in result and result["started"], result
    seen = ET.fromstring(result["xml"])
    assert seen.get("type") == "qemu"
    cpu_element = seen.find("cpu")
    assert cpu_element is not None and cpu_element.get("mode") == "custom"
    assert cpu_element.findtext("model") == "qemu"
    qemu_command = (lpar.qemu_log_dir / f"{name}.log").read_text()
    assert "-accel tcg" in qemu_command and "-cpu qemu" in qemu_command
    if call == "create":
        return  # transient: gone once it stops
    # nothing else changed: the same as libvirt's reading of the hand-translated XML
    tcg_cpu = "<cpu mode='custom'><model>qemu</model></cpu>"
    by_hand = caa_s390x(name, lpar.pool_dir, kind="qemu", cpu=tcg_cpu).replace(
        f"<name>{name}<", "<name>by-hand<"
    )
    reference = probe(lpar.uri, "define", by_hand, layer=None, start=False)
    assert "error" not in reference, reference
    assert ET.tostring(_stored(lpar, name)) == ET.tostring(_stored(lpar, "by-hand"))
    connection = lpar.connect()
    try:
        for leftover in ("by-hand", name):
            domain = connection.lookupByName(leftover)
            if domain.isActive():
                domain.destroy()
            domain.undefine()
    finally:
        connection.close()


@needs_host
def test_the_host_offers_an_s390x_hvm_guest(lpar: IsolatedLpar) -> None:
    """CAA's getGuestForArchType(caps, "s390x", "hvm") needs it; TCG is its only domain type."""
    connection = lpar.connect()
    try:
        caps = ET.fromstring(connection.getCapabilities())
    finally:
        connection.close()
    s390x = [
        guest
        for guest in caps.iter("guest")
        if guest.findtext("os_type") == "hvm" and [a.get("name") for a in guest.iter("arch")] == ["s390x"]
    ]
    assert len(s390x) == 1
    assert [d.get("type") for d in s390x[0].iter("domain")] == ["qemu"]
    machines = [m.text for m in s390x[0].iter("machine")]
    assert "s390-ccw-virtio" in machines
