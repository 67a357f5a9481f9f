"""The libvirt provider on libvirt's own simulator (test:///default): real libvirt calls,
no daemon, nothing boots. Creation, read-back, deletion, and failures half-way through."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("libvirt")

from sim.errors import TargetError
from sim.lpar import host
from sim.peerpods.cloudconfig import build_user_data
from sim.peerpods.initdata import encode
from sim.peerpods.podvm import process_user_data
from sim.peerpods.providers import InstanceSpec
from sim.peerpods.providers.libvirt import STEPS, LaunchSecurityError, LibvirtProvider, LibvirtSettings

TOML = b'algorithm = "sha384"\nversion = "0.1.0"\n\n[data]\n"aa.toml" = "x"\n"../../etc/x" = "no"\n'


@pytest.fixture
def connection() -> Iterator[Any]:
    conn = host.connect(host.TEST_URI)
    yield conn
    conn.close()


@pytest.fixture
def provider(connection: Any, tmp_path: Path) -> Iterator[LibvirtProvider]:
    """A provider with its own pool (unique name: the simulator's state is per process)."""
    pool_name = f"pool-{uuid.uuid4().hex[:8]}"
    pool = host.ensure_pool(connection, pool_name, tmp_path / "pool")
    host.ensure_base_volume(pool, "podvm-base.qcow2")
    made = LibvirtProvider(
        connection, assets=None, settings=LibvirtSettings(pool=pool_name), work_dir=tmp_path
    )
    yield made
    made.remove_leftovers()
    pool.destroy()


def spec(pod: str = "web", user_data: str | None = None) -> InstanceSpec:
    data = user_data if user_data is not None else build_user_data(apf_json="{}", initdata=encode(TOML))
    return InstanceSpec(pod, "default", "0123456789abcdef" * 4, 3, 5120, data)


def test_pod_vm_is_a_domain_with_its_volumes(provider: LibvirtProvider) -> None:
    name = provider.create_instance(spec())
    assert name == "podvm-web-01234567"
    facts = provider.describe(name)
    assert (facts["vcpus"], facts["memory_mib"], facts["arch"]) == (3, 5120, "s390x")
    assert facts["volumes"] == [f"{name}-cloudinit.iso", f"{name}-root.qcow2"]
    assert str(facts["backing_store"]).endswith("/podvm-base.qcow2")
    assert facts["user_data"] == spec().user_data
    provider.delete_instance(name)
    assert provider.leftovers() == []


def test_guest_report_is_the_reference_logic_on_the_attached_user_data(
    provider: LibvirtProvider, tmp_path: Path
) -> None:
    name = provider.create_instance(spec())
    expected = process_user_data(spec().user_data, tmp_path / "expected", machine=None)
    assert provider.guest_report(name).to_json() == expected.to_json()
    assert provider.guest_report(name).ignored == ["../../etc/x"]


def test_pod_names_are_made_valid_domain_names(provider: LibvirtProvider) -> None:
    assert provider.create_instance(spec(pod="Web_App.1")) == "podvm-web-app-1-01234567"


@pytest.mark.parametrize("step", STEPS)
def test_failure_half_way_leaves_no_domain_and_no_volume(
    provider: LibvirtProvider, tmp_path: Path, step: str
) -> None:
    def fail(at: str) -> None:
        if at == step:
            raise provider.libvirt.libvirtError(f"injected at {at}")

    provider.fault = fail
    with pytest.raises(TargetError, match=f"injected at {step}"):
        provider.create_instance(spec())
    assert provider.leftovers() == []
    assert not [p.name for p in (tmp_path / "pool").iterdir() if p.name.startswith("podvm-web")]


def test_unknown_launch_security_fails_creation_with_upstreams_message(provider: LibvirtProvider) -> None:
    provider.configure(
        {"LIBVIRT_POOL": provider.settings.pool, "DISABLECVM": "false", "LIBVIRT_LAUNCH_SECURITY": "tdx"}
    )
    with pytest.raises(LaunchSecurityError, match=r"^\[tdx\] is not a known launch security setting$"):
        provider.create_instance(spec())
    assert provider.leftovers() == []


def test_disablecvm_defaults_to_true_and_wins_over_an_unknown_value(provider: LibvirtProvider) -> None:
    provider.configure({"LIBVIRT_POOL": provider.settings.pool, "LIBVIRT_LAUNCH_SECURITY": "tdx"})
    assert provider.settings.disable_cvm is True
    assert provider.launch_security() is None
    assert provider.describe(provider.create_instance(spec()))["launch_security"] is None


@pytest.mark.parametrize(
    ("config", "decided"),
    [
        ({"DISABLECVM": "true", "LIBVIRT_LAUNCH_SECURITY": "s390-pv"}, None),
        ({"DISABLECVM": "false", "LIBVIRT_LAUNCH_SECURITY": "s390-pv"}, "s390-pv"),
        ({"DISABLECVM": "false"}, None),  # the simulator's host is i686: no Secure Execution
    ],
)
def test_launch_security_is_decided_but_s390x_domains_carry_no_element(
    provider: LibvirtProvider, config: dict[str, str], decided: str | None
) -> None:
    provider.configure({"LIBVIRT_POOL": provider.settings.pool, **config})
    assert provider.launch_security() == decided
    assert provider.describe(provider.create_instance(spec()))["launch_security"] is None


def test_root_volume_is_the_larger_of_the_setting_and_the_base_image(provider: LibvirtProvider) -> None:
    provider.configure({"LIBVIRT_POOL": provider.settings.pool})
    assert provider.describe(provider.create_instance(spec()))["root_capacity"] == 10 << 30
    provider.configure({"LIBVIRT_POOL": provider.settings.pool, "LIBVIRT_ROOT_DISK_SIZE": "12"})
    assert provider.describe(provider.create_instance(spec("second")))["root_capacity"] == 12 << 30


def test_an_existing_domain_of_the_same_name_is_success(provider: LibvirtProvider) -> None:
    provider.configure({"LIBVIRT_POOL": provider.settings.pool})
    first = provider.create_instance(spec())
    before = provider.leftovers()
    assert provider.create_instance(spec()) == first
    assert provider.leftovers() == before


class FakeS390Connection:
    """Fake: the simulator's connection, reporting an s390x host (an LPAR) in getInfo."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def getInfo(self) -> list[Any]:
        return ["s390x", *self._real.getInfo()[1:]]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_an_s390x_host_decides_secure_execution(provider: LibvirtProvider) -> None:
    provider.configure({"LIBVIRT_POOL": provider.settings.pool, "DISABLECVM": "false"})
    provider.connection = FakeS390Connection(provider.connection)
    assert provider.launch_security() == "s390-pv"


def test_missing_base_volume_and_pool_are_named(provider: LibvirtProvider) -> None:
    provider.configure({"LIBVIRT_POOL": provider.settings.pool, "LIBVIRT_VOL_NAME": "nope.qcow2"})
    with pytest.raises(TargetError, match=r"no base volume 'nope.qcow2' .LIBVIRT_VOL_NAME"):
        provider.create_instance(spec())
    provider.configure({"LIBVIRT_POOL": "missing-pool"})
    with pytest.raises(TargetError, match=r"no storage pool 'missing-pool' .LIBVIRT_POOL"):
        provider.create_instance(spec())


def test_unreachable_libvirt_names_the_uri() -> None:
    with pytest.raises(TargetError, match=r"cannot connect to libvirt at qemu\+tcp://192\.0\.2\.1/system"):
        host.connect("qemu+tcp://192.0.2.1/system?no_verify=1&connect_timeout=1", start=False)


def test_daemons_not_running_as_non_root_say_how(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "_running", lambda name: False)
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(TargetError, match=r"sudo virtlogd -d && sudo libvirtd -d"):
        host.start_daemons()


def test_libvirtd_starts_under_a_subreaper_when_tini_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """libvirtd's QEMU processes are reaped by tini at once, not late by pid 1 (host's docstring)."""
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    command = host._daemon_command("libvirtd", "/usr/sbin/libvirtd").formulate()
    assert command[:2] == ["/usr/bin/setsid", "-f"]
    assert command[-3:-1] == ["/usr/bin/tini", "/usr/sbin/libvirtd"]
    assert "-s --" in command[4]
    assert host._daemon_command("virtlogd", "/usr/sbin/virtlogd").formulate() == ["/usr/sbin/virtlogd", "-d"]
    monkeypatch.setattr("shutil.which", lambda name: None if name == "tini" else f"/usr/bin/{name}")
    assert host._daemon_command("libvirtd", "/usr/sbin/libvirtd").formulate() == ["/usr/sbin/libvirtd", "-d"]


def test_lpar_target_on_the_simulator_leaves_nothing() -> None:
    from sim.harness.targets import create_target
    from sim.harness.targets.base import TargetOptions

    target = create_target("lpar", TargetOptions())
    assert "guest" not in target.capabilities and "podvm" in target.capabilities
    assert target.identity()["libvirt URI"] == host.TEST_URI
    target.close()


class FakeX86OnlyConnection:
    """Fake: a QEMU host connection that offers no s390x guest (no emulator)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def getDomainCapabilities(self, *args: Any) -> str:  # libvirt's name
        raise host.import_libvirt().libvirtError("unable to find any emulator to serve 's390x' architecture")

    def getURI(self) -> str:
        return "qemu:///system"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_missing_s390x_emulator_says_what_to_install(provider: LibvirtProvider) -> None:
    provider.connection = FakeX86OnlyConnection(provider.connection)
    provider.simulated = False
    with pytest.raises(
        TargetError, match=r"offers no s390x guest: qemu-system-s390x is missing.*qemu-system-misc"
    ):
        provider.guest_caps()
