"""Ownership instead of sweeping: a run removes only its own pod VMs, or a dead run's.

On libvirt's simulator (test:///default, one per process): two owners in one pool stand for two
runs (or two workers) on one libvirt host; a dead owner is a process that has exited.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("libvirt")

from sim.lpar import host
from sim.lpar.ownership import NAMESPACE, OWNER_DIR_ENV, OwnerRecords, RunOwner, owner_of_domain
from sim.peerpods.providers import InstanceSpec
from sim.peerpods.providers.libvirt import LibvirtProvider, LibvirtSettings


@pytest.fixture(autouse=True)
def owner_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "owners"
    monkeypatch.setenv(OWNER_DIR_ENV, str(directory))
    return directory


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    connection = host.connect(host.TEST_URI)
    name = f"pool-{uuid.uuid4().hex[:8]}"
    made = host.ensure_pool(connection, name, tmp_path)
    host.ensure_base_volume(made, "podvm-base.qcow2")
    yield connection, name
    for domain in connection.listAllDomains(0):
        if domain.name().startswith("podvm-"):
            if domain.isActive():
                domain.destroy()
            if domain.isPersistent():
                domain.undefine()
    made.destroy()
    connection.close()


def dead_owner() -> RunOwner:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return RunOwner("dead-run", gone.pid, socket.gethostname(), None, None)


def provider_of(pool: tuple[Any, str], owner: RunOwner | None, tmp_path: Path) -> LibvirtProvider:
    connection, name = pool
    records = OwnerRecords(owner, host.TEST_URI) if owner is not None else None
    return LibvirtProvider(
        connection, assets=None, settings=LibvirtSettings(pool=name), work_dir=tmp_path, ownership=records
    )


def spec(pod: str) -> InstanceSpec:
    return InstanceSpec(pod, "default", uuid.uuid4().hex, 1, 512, "#cloud-config\n")


def test_the_domain_names_its_owner_in_its_metadata(pool: tuple[Any, str], tmp_path: Path) -> None:
    owner = RunOwner.current("run-a")
    name = provider_of(pool, owner, tmp_path).create_instance(spec("web"))
    xml = pool[0].lookupByName(name).XMLDesc(0)
    assert NAMESPACE in xml
    assert owner_of_domain(xml) == owner
    assert name.startswith("podvm-web-") and len(name) == len("podvm-web-") + 8


def test_two_runs_on_one_host_count_and_remove_only_their_own(pool: tuple[Any, str], tmp_path: Path) -> None:
    a = provider_of(pool, RunOwner.current("run-a"), tmp_path)
    b = provider_of(pool, RunOwner.current("run-b"), tmp_path)
    vm_a, vm_b = a.create_instance(spec("a")), b.create_instance(spec("b"))
    assert a.leftovers() == [f"domain {vm_a}", f"volume {vm_a}-cloudinit.iso", f"volume {vm_a}-root.qcow2"]
    assert b.leftovers() == [f"domain {vm_b}", f"volume {vm_b}-cloudinit.iso", f"volume {vm_b}-root.qcow2"]
    assert a.stale() == [] and b.stale() == []  # both owners alive
    a.remove_leftovers()
    assert a.leftovers() == []
    assert vm_b in [d.name() for d in pool[0].listAllDomains(0)]
    assert len(b.leftovers()) == 3


def test_only_a_dead_runs_leftovers_are_stale(pool: tuple[Any, str], tmp_path: Path) -> None:
    dead = provider_of(pool, dead_owner(), tmp_path)
    live_other = provider_of(pool, RunOwner.current("other-run"), tmp_path)
    observer = provider_of(pool, None, tmp_path)  # makes domains without an owner
    gone = dead.create_instance(spec("gone"))
    kept = live_other.create_instance(spec("kept"))
    foreign = observer.create_instance(spec("foreign"))
    me = provider_of(pool, RunOwner.current("this-run"), tmp_path)
    expected = [f"domain {gone}", f"volume {gone}-cloudinit.iso", f"volume {gone}-root.qcow2"]
    assert me.stale() == expected
    assert me.remove_stale() == expected
    assert me.stale() == []
    names = {d.name() for d in pool[0].listAllDomains(0)}
    assert gone not in names and {kept, foreign} <= names
    assert dead.ownership is not None and not dead.ownership.path.exists()  # its record went too
    assert live_other.ownership is not None and live_other.ownership.path.exists()


def test_a_volume_without_its_domain_belongs_to_its_owner_record(
    pool: tuple[Any, str], tmp_path: Path
) -> None:
    dead = provider_of(pool, dead_owner(), tmp_path)
    live = provider_of(pool, RunOwner.current("other-run"), tmp_path)
    half_dead = dead.create_instance(spec("half"))
    half_live = live.create_instance(spec("alive"))
    unrecorded = provider_of(pool, None, tmp_path).create_instance(spec("unrecorded"))
    for name in (half_dead, half_live, unrecorded):  # killed between the volumes and the domain
        domain = pool[0].lookupByName(name)
        domain.destroy()
        domain.undefine()
    me = provider_of(pool, RunOwner.current("this-run"), tmp_path)
    assert me.stale() == [f"volume {half_dead}-cloudinit.iso", f"volume {half_dead}-root.qcow2"]
    me.remove_stale()
    left = pool[0].storagePoolLookupByName(pool[1]).listVolumes()
    assert f"{half_dead}-root.qcow2" not in left
    assert {f"{half_live}-root.qcow2", f"{unrecorded}-root.qcow2"} <= set(left)
    assert live.leftovers() == [f"volume {half_live}-cloudinit.iso", f"volume {half_live}-root.qcow2"]


def test_the_lpar_target_removes_a_dead_runs_pod_vms_at_start_and_keeps_a_live_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sim.harness.targets.lpar import LparTarget

    connection = host.connect(host.TEST_URI)

    def define(name: str, owner: RunOwner | None) -> None:
        metadata = ""
        if owner is not None:
            import xml.etree.ElementTree as ET

            metadata = f"<metadata>{ET.tostring(owner.element(), encoding='unicode')}</metadata>"
        connection.defineXML(
            f"<domain type='test'><name>{name}</name>{metadata}<memory>1024</memory>"
            "<os><type>hvm</type></os></domain>"
        )

    killed, alive, unowned = (f"podvm-{w}-{uuid.uuid4().hex[:8]}" for w in ("killed", "alive", "unowned"))
    define(killed, dead_owner())
    define(alive, RunOwner.current("a-live-run"))
    define(unowned, None)
    target = LparTarget(host.TEST_URI)
    try:
        assert target.removed_at_start == [f"domain {killed}"]
        names = {d.name() for d in connection.listAllDomains(0)}
        assert killed not in names and {alive, unowned} <= names
        assert killed in capsys.readouterr().err
        environment = target.open_environment()
        assert environment.leftovers() == []  # the other run's and the unowned domain are not ours
        environment.close()
    finally:
        target.close()
        for name in (alive, unowned):
            connection.lookupByName(name).undefine()
        connection.close()
