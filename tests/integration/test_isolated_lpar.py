"""The isolated LPAR host: a private libvirtd in network namespaces the run made, and nothing
left once it stops (namespaces, processes, directories), even after a run that died.

Needs root and libvirt's daemons (what `.ci/setup-lpar-host` installs and CI runs as);
skipped with the reason elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest

pytest.importorskip("libvirt")

from sim.errors import TargetError
from sim.lpar import isolated, netns
from sim.lpar.isolated import IsolatedLpar, LparHostMissing


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    missing = [tool for tool in isolated.TOOLS if isolated._which(tool) is None]
    return f"missing {', '.join(missing)}" if missing else None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=f"no isolated LPAR here: {_why_not()}")


LISTEN = """import socket, sys
server = socket.create_server((sys.argv[1], 15150))
print("listening", flush=True)
server.settimeout(10)
server.accept()
"""
CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], 15150), timeout=5).close()"


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args and str(os.getpid()) != cmdline.parent.name:
            found.append(f"{cmdline.parent.name}: {args.strip()}")
    return found


def _fresh_base() -> Path:
    """A base directory of its own under the default one (pytest's tmp_path is 0700: libvirt's
    QEMU user could not reach a pool there)."""
    base = isolated.default_base() / f"test-{uuid.uuid4().hex[:8]}"
    base.mkdir(parents=True, mode=0o755)
    return base


@pytest.fixture
def base() -> Iterator[Path]:
    made = _fresh_base()
    yield made
    shutil.rmtree(made)


@pytest.fixture(scope="module")
def lpar() -> Iterator[IsolatedLpar]:
    made = _fresh_base()
    host = IsolatedLpar(base=made)
    with host:
        yield host
    assert host.leftovers() == []
    shutil.rmtree(made)


def test_the_host_has_a_private_libvirtd_with_network_and_pool_default(lpar: IsolatedLpar) -> None:
    connection = lpar.connect()
    try:
        assert connection.getURI().startswith("qemu:///system")
        network = connection.networkLookupByName("default")
        assert network.isActive()
        assert f"address='{lpar.bridge_address.ip}'" in network.XMLDesc(0)
        pool = connection.storagePoolLookupByName("default")
        assert pool.isActive()
        assert f"<path>{lpar.pool_dir}</path>" in pool.XMLDesc(0)
        pool.createXML(
            "<volume><name>podvm-base.qcow2</name><capacity unit='MiB'>1</capacity>"
            "<target><format type='qcow2'/></target></volume>",
            0,
        )
        assert (lpar.pool_dir / "podvm-base.qcow2").is_file()
    finally:
        connection.close()
    # virsh takes the same URI
    out = subprocess.run(["virsh", "-c", lpar.uri, "net-list", "--name"], capture_output=True, text=True)
    assert out.stdout.split() == ["default"], out.stderr


def test_it_shares_nothing_with_the_system_libvirt(lpar: IsolatedLpar) -> None:
    assert lpar.socket.is_socket()
    assert lpar.socket != Path("/run/libvirt/libvirt-sock")
    # the system's definitions are not in the private /etc/libvirt
    etc = lpar.run_dir / "etc"
    assert not list((etc / "qemu").glob("*.xml"))
    networks = list((etc / "qemu" / "networks").glob("*.xml"))
    assert [p.name for p in networks] == ["default.xml"]
    assert str(lpar.bridge_address.ip) in networks[0].read_text()
    # the bridge and dnsmasq are inside the namespace, not in the root one
    root_links = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert str(lpar.bridge_address.ip) not in root_links
    inside = lpar.run(["ip", "-o", "addr"])
    assert str(lpar.bridge_address.ip) in inside


def test_the_namespace_has_a_default_route_through_the_bridge(lpar: IsolatedLpar) -> None:
    assert lpar.run(["ip", "route", "show", "default"]).split()[:3] == ["default", "dev", isolated.BRIDGE]


def test_a_pod_namespace_has_an_address_and_a_default_route(lpar: IsolatedLpar) -> None:
    pod = lpar.pod_netns()
    try:
        assert pod.path == Path("/run/netns") / pod.name and pod.path.exists()
        addresses = subprocess.run(
            ["ip", "-n", pod.name, "-o", "addr", "show", pod.interface], capture_output=True, text=True
        ).stdout
        assert str(pod.address) in addresses
        routes = subprocess.run(
            ["ip", "-n", pod.name, "route", "show", "default"], capture_output=True, text=True
        ).stdout
        assert routes.split()[:5] == ["default", "via", str(pod.gateway.ip), "dev", pod.interface]
        # the LPAR reaches the pod over TCP through the veth pair; nothing leaves the namespaces
        listener = subprocess.Popen(
            ["ip", "netns", "exec", pod.name, sys.executable, "-c", LISTEN, str(pod.address.ip)],
            stdout=subprocess.PIPE,
        )
        try:
            assert listener.stdout is not None and listener.stdout.readline() == b"listening\n"
            lpar.run([sys.executable, "-c", CONNECT, str(pod.address.ip)], timeout=10)
            assert listener.wait(timeout=10) == 0
        finally:
            listener.kill()
            listener.wait()
    finally:
        lpar.remove_pod_netns(pod)
    assert pod.name not in netns.names()


def test_a_late_pod_namespace_is_visible_to_a_process_already_inside(lpar: IsolatedLpar) -> None:
    name = f"{lpar.name}-pod{99}"
    early = lpar.popen(
        ["sh", "-c", f"until ip -n {name} link show eth0 2>/dev/null; do sleep 0.05; done"],
        stdout=subprocess.PIPE,
    )
    pod = netns.add_pod(name, lpar.name, 99, lpar.pod_subnet)
    try:
        out, _ = early.communicate(timeout=10)
        assert "eth0" in out.decode()
    finally:
        netns.delete(pod.name)


def test_run_passes_the_environment_to_the_command_only(lpar: IsolatedLpar) -> None:
    assert lpar.run(["sh", "-c", "echo $PPC_PROBE"], env={"PPC_PROBE": "inside"}).strip() == "inside"
    with pytest.raises(TargetError, match="failed"):
        lpar.run(["sh", "-c", "echo no >&2; exit 3"])


def test_start_and_stop_leave_nothing(base: Path) -> None:
    host = IsolatedLpar(base=base)
    with host:
        name, run_dir = host.name, host.run_dir
        sleeper = host.popen(["sleep", "300"])
        pod = host.pod_netns()
        connection = host.connect()
        try:  # an s390x guest whose firmware finds nothing to boot, kept (paused) as it stopped
            connection.createXML(STOPPED_GUEST, 0)
        finally:
            connection.close()
        inside = {pid: _command(pid) for pid in netns.pids(name)}
        assert {"libvirtd", "virtlogd", "dnsmasq", "qemu-system-s390x", "sleep"} <= set(inside.values())
        assert name in netns.names() and run_dir.is_dir()
    sleeper.wait(timeout=5)  # ended by stop(); reaped by its parent, this test
    assert [f"{pid} {command}" for pid, command in inside.items() if _running(pid)] == []
    assert name not in netns.names() and pod.name not in netns.names()
    assert not run_dir.exists()
    assert _processes_mentioning(str(run_dir)) == []
    assert host.leftovers() == []
    host.stop()  # twice is harmless


STOPPED_GUEST = (
    "<domain type='qemu'><name>stopped</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
    "<os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os><on_crash>preserve</on_crash>"
    "<devices/></domain>"
)


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/exe").resolve().name
    except OSError:
        return "?"


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's reaping is pid 1's business)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_dead_runs_leftovers_are_removed_and_a_live_runs_kept(base: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = f"{netns.PREFIX}{dead.pid}-0"
    netns.add(stale)
    stale_dir = base / stale
    stale_dir.mkdir()
    (stale_dir / "owner.json").write_text(netns.Owner(dead.pid, None, None).to_json())
    orphan = subprocess.Popen(["ip", "netns", "exec", stale, "sleep", "300"], start_new_session=True)
    live = f"{netns.PREFIX}{os.getpid()}-990"
    netns.add(live)
    try:
        deadline = time.monotonic() + 5
        while not netns.pids(stale) and time.monotonic() < deadline:
            time.sleep(0.02)
        with IsolatedLpar(base=base):
            assert stale not in netns.names()
            assert not stale_dir.exists()
            assert orphan.wait(timeout=5) != 0  # killed
            assert live in netns.names()
    finally:
        netns.delete(live)
        netns.delete(stale)
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def test_a_libvirtd_that_does_not_answer_is_named_and_nothing_is_left(base: Path) -> None:
    before = set(netns.names())
    host = IsolatedLpar(base=base, start_timeout=0.0)
    with pytest.raises(TargetError, match=r"did not answer on .*libvirt-sock within 0 s"):
        host.start()
    assert host.leftovers() == []
    assert list(base.iterdir()) == []
    assert set(netns.names()) == before


def test_missing_prerequisites_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolated, "_which", lambda tool: None if tool == "tini" else "/bin/true")
    with pytest.raises(LparHostMissing, match="needs tini"):
        IsolatedLpar(base=tmp_path).start()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LparHostMissing, match="needs root"):
        IsolatedLpar(base=tmp_path).start()


def test_a_socket_path_too_long_is_refused_before_anything_is_made(base: Path) -> None:
    long = base / ("x" * 90)
    with pytest.raises(LparHostMissing, match="longer than 107 bytes"):
        IsolatedLpar(base=long).start()
    assert not long.exists()


def test_a_base_qemu_cannot_reach_is_refused(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(LparHostMissing, match=r"cannot enter \(mode 700, no o\+x\)"):
        IsolatedLpar(base=private / "lpar").start()
    assert list(private.iterdir()) == []


X86_64_KVM = (
    "<domain type='kvm'><name>kvm-probe</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
    "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices/></domain>"
)


@pytest.mark.skipif(not Path("/dev/kvm").exists(), reason="no /dev/kvm on this machine")
def test_an_x86_64_kvm_guest_runs_inside(lpar: IsolatedLpar) -> None:
    """QEMU runs as libvirt's user, which a root-only /dev/kvm (no udev) would refuse: "Could
    not access KVM kernel module: Permission denied". The host's private node lets it in."""
    mode = os.stat("/dev/kvm").st_mode
    connection = lpar.connect()
    try:
        domain = connection.createXML(X86_64_KVM, 0)
        try:
            assert domain.isActive()
        finally:
            domain.destroy()
    finally:
        connection.close()
    assert os.stat("/dev/kvm").st_mode == mode  # the system's node is as it was


def test_the_emulated_pod_vm_boots_inside(lpar: IsolatedLpar, monkeypatch: pytest.MonkeyPatch) -> None:
    """The `lpar` target's s390x pod VM, booted by its provider on this host's URI: kernel,
    initramfs and console in the shared directory (libvirt's own paths differ inside)."""
    from sim.harness.targets.lpar import LparTarget
    from sim.lpar import host
    from sim.lpar.assets import AssetsMissing, find_assets
    from sim.peerpods.cloudconfig import build_user_data
    from sim.peerpods.initdata import encode
    from sim.peerpods.providers import InstanceSpec

    try:
        find_assets()
    except AssetsMissing as exc:
        pytest.skip(f"no pod VM image: {exc}")
    monkeypatch.setattr(host, "BOOT_DIR", lpar.shared_dir)
    monkeypatch.setattr(host, "CONSOLE_DIR", lpar.shared_dir)
    target = LparTarget(lpar.uri)
    try:
        provider = target.provider(report_timeout=60, ownership=target.ownership)
        toml = b'algorithm = "sha384"\nversion = "0.1.0"\n\n[data]\n"aa.toml" = "x"\n'
        user_data = build_user_data(apf_json="{}", initdata=encode(toml))
        spec = InstanceSpec("inside", "default", os.urandom(16).hex(), 1, 512, user_data)
        name = provider.create_instance(spec)
        report = provider.guest_report(name)
        assert (report.arch, report.algorithm) == ("s390x", "sha384")
        provider.delete_instance(name)
        assert provider.leftovers() == []
    finally:
        target.close()


def test_a_run_killed_half_way_is_cleaned_up_by_the_next(base: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(base)], stdout=subprocess.PIPE, start_new_session=True
    )
    assert owner.stdout is not None
    name = owner.stdout.readline().decode().strip()
    assert name.startswith(netns.PREFIX) and netns.pids(name)  # libvirtd, virtlogd, dnsmasq, sleep
    owner.kill()
    owner.wait()
    assert name in netns.names()  # what a killed run leaves
    with IsolatedLpar(base=base) as host:
        assert name not in netns.names() and f"{name}-pod0" not in netns.names()
        assert not (base / name).exists()
        assert _processes_mentioning(str(base / name)) == []
        assert host.name != name


KILLED_RUN = """import sys, time
from pathlib import Path
from sim.lpar.isolated import IsolatedLpar
host = IsolatedLpar(base=Path(sys.argv[1]))
host.start()
host.pod_netns()
host.popen(["sleep", "300"])
print(host.name, flush=True)
time.sleep(300)
"""


# A DHCP client as small as a pod VM's: DISCOVER, then REQUEST what was offered; prints the address.
DHCP_CLIENT = r"""import os, socket, struct, sys
interface, mac = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", ""))
xid = os.urandom(4)
def packet(kind, options=b""):
    head = struct.pack("!BBBB4sHH16x", 1, 1, 6, 0, xid, 0, 0x8000)  # broadcast replies, no addresses
    cookie = b"\x63\x82\x53\x63"
    return head + mac + bytes(10) + bytes(192) + cookie + bytes([53, 1, kind]) + options + b"\xff"
def options(reply):
    found, at = {}, 240
    while at < len(reply) and reply[at] != 255:
        if reply[at] == 0:
            at += 1
            continue
        found[reply[at]] = reply[at + 2 : at + 2 + reply[at + 1]]
        at += 2 + reply[at + 1]
    return found
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
sock.bind(("0.0.0.0", 68))
sock.settimeout(10)
def exchange(kind, extra, want):
    sock.sendto(packet(kind, extra), ("255.255.255.255", 67))
    while True:
        reply = sock.recv(2048)
        if reply[4:8] == xid and options(reply).get(53) == bytes([want]):
            return reply
offer = exchange(1, b"", 2)
server = options(offer)[54]
ack = exchange(3, bytes([50, 4]) + offer[16:20] + bytes([54, 4]) + server, 5)
print(socket.inet_ntoa(ack[16:20]))
"""


def test_the_pod_vm_network_leases_addresses_and_libvirt_reports_them(lpar: IsolatedLpar) -> None:
    """What CAA waits for after starting a pod VM: a DHCP lease libvirt knows of."""
    guest = f"{lpar.name}-pod{77}"
    mac = "52:54:00:12:34:56"
    netns.add(guest)
    try:
        lpar.run(["ip", "link", "add", "lease0", "type", "veth", "peer", "name", "eth0", "netns", guest])
        lpar.run(["ip", "link", "set", "lease0", "master", isolated.BRIDGE, "up"])
        subprocess.run(["ip", "-n", guest, "link", "set", "eth0", "address", mac, "up"], check=True)
        client = subprocess.run(
            ["ip", "netns", "exec", guest, sys.executable, "-c", DHCP_CLIENT, "eth0", mac],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert client.returncode == 0, client.stderr
        address = client.stdout.strip()
        assert ip_address(address) in lpar.subnet and address != str(lpar.bridge_address.ip)
        # dnsmasq tells libvirt (its lease helper) after it acknowledged
        connection = lpar.connect()
        try:
            deadline = time.monotonic() + 10
            leases = connection.networkLookupByName("default").DHCPLeases()
            while not leases and time.monotonic() < deadline:
                time.sleep(0.05)
                leases = connection.networkLookupByName("default").DHCPLeases()
        finally:
            connection.close()
        assert [(lease["mac"], lease["ipaddr"]) for lease in leases] == [(mac, address)]
    finally:
        netns.delete(guest)
